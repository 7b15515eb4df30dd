// Trend charts (_kit/charts.html): each group opens one EventSource on its unit's stream and
// feeds one uPlot chart per signal. The stream sends "history" (the window so far), then
// "samples" (what was stored since) and, for a closed window, "end". A live stream ends
// after a few minutes and the browser reconnects, sending the last event's id, so nothing
// is lost or sent twice. Limits and excursions come in the chart's data attribute and are
// drawn under the line; next to each chart its text alternative says the latest value, the
// lowest and highest over the window and the count of points. The CSP allows no inline
// script: everything binds here.

const UPLOT = "/static/vendor/uplot-1.6.32/uPlot.iife.min.js";
const MOST = 10000; // points a chart keeps: beyond, the older half is thinned to every other
const LIVE_SPAN = 15 * 60 * 1000; // a live window without a start: the last 15 minutes

let loading = null;
function loadUplot() {
  if (window.uPlot) { return Promise.resolve(window.uPlot); }
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = UPLOT;
      script.onload = () => resolve(window.uPlot);
      script.onerror = () => reject(new Error("the chart library did not load"));
      document.head.append(script);
    });
  }
  return loading;
}

const numberFormat = new Intl.NumberFormat("en", {maximumSignificantDigits: 6});
const countFormat = new Intl.NumberFormat("en");

function withUnit(value, unit) {
  const text = numberFormat.format(value);
  if (!unit) { return text; }
  return unit === "°" ? text + unit : `${text} ${unit}`;
}

class Trend {
  constructor(figure, group) {
    this.figure = figure;
    this.group = group;
    this.config = JSON.parse(figure.dataset.trend);
    this.plotBox = figure.querySelector("[data-trend-plot]");
    this.summary = figure.querySelector("[data-trend-summary]");
    this.xs = [];
    this.ys = [];
    this.plot = null;
  }

  colour(name) {
    return getComputedStyle(this.figure).getPropertyValue(name).trim();
  }

  make(uPlot) {
    const zone = this.group.timeZone;
    const axis = {stroke: this.colour("--trend-axis"), grid: {stroke: this.colour("--trend-grid"), width: 1},
      ticks: {stroke: this.colour("--trend-grid"), width: 1}};
    const options = {
      width: this.plotBox.clientWidth || 320,
      height: this.plotBox.clientHeight || 200,
      ms: 1,
      tzDate: zone ? (t) => uPlot.tzDate(new Date(t), zone) : (t) => new Date(t),
      legend: {show: false},
      cursor: {drag: {x: false, y: false}, points: {show: false}},
      scales: {
        x: {time: true, range: (u, low, high) => this.group.xRange(low, high)},
        y: {range: (u, low, high) => this.yRange(low, high)},
      },
      axes: [{...axis, values: (u, splits) => this.group.tickTexts(splits)}, {...axis, size: 60}],
      series: [{}, {label: this.config.name, stroke: this.colour("--trend-line"), width: 1.5, points: {show: false}}],
      hooks: {drawClear: [(u) => this.drawBands(u)]},
    };
    this.plot = new uPlot(options, [this.xs, this.ys], this.plotBox);
  }

  // The y range: the data and every limit, with a little room.
  yRange(low, high) {
    const bounds = this.config.bands.flatMap((b) => [b.low, b.high]).filter((v) => v !== null);
    const values = [low, high, ...bounds].filter((v) => v !== null && Number.isFinite(v));
    if (!values.length) { return [0, 1]; }
    let min = Math.min(...values);
    let max = Math.max(...values);
    const room = (max - min) * 0.08 || Math.abs(max) * 0.01 || 1;
    return [min - room, max + room];
  }

  drawBands(u) {
    const ctx = u.ctx;
    const {left, top, width, height} = u.bbox;
    const pixel = devicePixelRatio || 1;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    for (const [start, end] of this.config.excursions) {
      const x0 = u.valToPos(start, "x", true);
      const x1 = u.valToPos(end, "x", true);
      ctx.fillStyle = this.colour("--trend-excursion");
      ctx.fillRect(x0, top, Math.max(pixel, x1 - x0), height);
    }
    for (const band of this.config.bands) {
      const y0 = band.high === null ? top : u.valToPos(band.high, "y", true);
      const y1 = band.low === null ? top + height : u.valToPos(band.low, "y", true);
      if (band.kind === "normal") {
        ctx.fillStyle = this.colour("--trend-normal");
        ctx.fillRect(left, y0, width, y1 - y0);
      }
      const stroke = {normal: "--trend-normal-edge", proven: "--trend-proven", limits: "--trend-limits"}[band.kind];
      ctx.strokeStyle = this.colour(stroke);
      ctx.lineWidth = (band.kind === "normal" ? 1 : 1.5) * pixel;
      ctx.setLineDash(band.kind === "proven" ? [6 * pixel, 4 * pixel] : []);
      for (const [value, y] of [[band.high, y0], [band.low, y1]]) {
        if (value === null) { continue; }
        ctx.beginPath();
        ctx.moveTo(left, y);
        ctx.lineTo(left + width, y);
        ctx.stroke();
      }
    }
    ctx.restore();
  }

  replace(points) {
    this.xs = points.map((p) => p[0]);
    this.ys = points.map((p) => p[1]);
    this.redraw();
  }

  append(points) {
    const last = this.xs.length ? this.xs[this.xs.length - 1] : -Infinity;
    for (const [t, v] of points) {
      if (t > last) { this.xs.push(t); this.ys.push(v); }
    }
    this.keepBounded();
    this.redraw();
  }

  // A live window keeps what it shows, and at most MOST points: the older half is thinned.
  keepBounded() {
    const from = this.group.liveStart(this.xs);
    if (from !== null) {
      let drop = 0;
      while (drop < this.xs.length - 1 && this.xs[drop] < from) { drop += 1; }
      if (drop) { this.xs.splice(0, drop); this.ys.splice(0, drop); }
    }
    if (this.xs.length > MOST) {
      const half = Math.floor(this.xs.length / 2);
      const keep = (_, i) => i >= half || i % 2 === 0;
      this.xs = this.xs.filter(keep);
      this.ys = this.ys.filter(keep);
    }
  }

  redraw() {
    if (this.plot) { this.plot.setData([this.xs, this.ys]); }
    this.describe();
  }

  describe() {
    const count = this.xs.length;
    if (!count) {
      this.summary.textContent = "No samples in the window yet.";
      return;
    }
    const unit = this.config.unit;
    const latest = this.ys[count - 1];
    const at = this.group.timeText(this.xs[count - 1]);
    let low = Infinity;
    let high = -Infinity;
    for (const v of this.ys) { if (v < low) { low = v; } if (v > high) { high = v; } }
    this.summary.textContent = `Latest ${withUnit(latest, unit)} at ${at}. ` +
      `Over the window: lowest ${withUnit(low, unit)}, highest ${withUnit(high, unit)}, ` +
      `${countFormat.format(count)} point${count === 1 ? "" : "s"}.`;
    this.summary.dataset.latest = String(latest);
  }

  resize() {
    if (this.plot) { this.plot.setSize({width: this.plotBox.clientWidth, height: this.plotBox.clientHeight}); }
  }
}

class Group {
  constructor(section) {
    this.section = section;
    this.url = section.dataset.stream;
    this.live = section.dataset.live === "true";
    this.timeZone = section.dataset.timeZone || undefined;
    const [start, end] = (section.dataset.window || ",").split(",");
    this.start = start ? Number(start) : null;
    this.end = end ? Number(end) : null;
    this.status = section.querySelector("[data-trends-status]");
    this.trends = new Map();
    for (const figure of section.querySelectorAll("[data-trend]")) {
      const trend = new Trend(figure, this);
      this.trends.set(trend.config.signal, trend);
    }
    const zone = {timeZone: this.timeZone, hourCycle: "h23"};
    this.clock = new Intl.DateTimeFormat("en-GB", {...zone, hour: "2-digit", minute: "2-digit", second: "2-digit"});
    this.minute = new Intl.DateTimeFormat("en-GB", {...zone, hour: "2-digit", minute: "2-digit"});
    this.day = new Intl.DateTimeFormat("en-GB", {...zone, day: "numeric", month: "short", hour: "2-digit", minute: "2-digit"});
  }

  timeText(t) { return this.clock.format(new Date(t)); }

  // The time axis in the tenant's zone, 24-hour: seconds in a short window, the day in a
  // long one.
  tickTexts(splits) {
    const span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
    const format = span > 2 * 86400000 ? this.day : span < 300000 ? this.clock : this.minute;
    return splits.map((t) => format.format(new Date(t)));
  }

  latest() {
    let found = Date.now();
    for (const trend of this.trends.values()) {
      if (trend.xs.length) { found = Math.max(found, trend.xs[trend.xs.length - 1]); }
    }
    return found;
  }

  // Where a live window starts now (null: a window with a start keeps all of it).
  liveStart() {
    if (!this.live || this.start !== null) { return null; }
    return this.latest() - LIVE_SPAN;
  }

  xRange(low, high) {
    if (this.start !== null && this.end !== null) { return [this.start, this.end]; }
    if (this.start !== null) { return [this.start, Math.max(this.latest(), this.start + 1000)]; }
    const end = this.latest();
    return [end - LIVE_SPAN, end];
  }

  say(text) { this.status.textContent = text; }

  async begin() {
    let uPlot;
    try {
      uPlot = await loadUplot();
    } catch {
      this.say("The charts could not be drawn: reload the page.");
      return;
    }
    for (const trend of this.trends.values()) { trend.make(uPlot); }
    const observer = new ResizeObserver(() => requestAnimationFrame(() => this.trends.forEach((t) => t.resize())));
    this.trends.forEach((t) => observer.observe(t.plotBox));
    this.connect();
  }

  each(event, act) {
    const data = JSON.parse(event.data);
    for (const [signal, points] of Object.entries(data)) {
      const trend = this.trends.get(signal);
      if (trend) { act(trend, points); }
    }
  }

  connect() {
    this.say("Connecting…");
    const source = new EventSource(this.url);
    source.addEventListener("open", () => this.say(this.live ? "Live" : "Loading…"));
    source.addEventListener("history", (e) => {
      this.each(e, (trend, points) => trend.replace(points));
      this.section.dataset.loaded = "true";
    });
    source.addEventListener("samples", (e) => this.each(e, (trend, points) => trend.append(points)));
    source.addEventListener("end", () => {
      source.close();
      this.say("Recorded window");
    });
    source.addEventListener("error", () => {
      this.say(source.readyState === EventSource.CLOSED ? "Disconnected: reload the page to see new samples." : "Reconnecting…");
    });
  }
}

function bindAll(root) {
  for (const section of root.querySelectorAll("[data-trends]")) {
    if (section.dataset.bound) { continue; }
    section.dataset.bound = "true";
    new Group(section).begin();
  }
}

bindAll(document);
// Charts that arrive later (a folded step of the run page opened): htmx's load event.
document.addEventListener("htmx:load", (event) => {
  if (event.target && event.target.querySelectorAll) { bindAll(event.target); }
});
