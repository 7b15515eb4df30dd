// The run page at the bench (batches/run.html): each field's form makes an entry of its kind
// and hands it to the entry queue (entry-queue.js), which keeps it until the server has it.
// The field then shows what became of it: waiting, sent with its check, or refused and why;
// once sent, the field is read back from the server (who recorded it, when, its check). The
// phase to work on follows: the first with a required field that holds nothing yet. The
// CSP allows no inline script: everything binds here.

import {EntryQueue, Sender, newKey, pad, withOffset} from "./entry-queue.js";

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
const INTEGER = /^[-+]?\d+$/;

function localInputValue(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function withUnit(text, unitDisplay) {
  if (!unitDisplay) { return text; }
  if (unitDisplay === "°") { return text + unitDisplay; }
  return unitDisplay.startsWith("10") ? `${text} × ${unitDisplay}` : `${text} ${unitDisplay}`;
}

// The value a form holds, of its field's kind, and how to show it; or what is wrong with it.
function readValue(field, form, submitter) {
  const kind = field.dataset.kind;
  const input = form.querySelector("input[data-value]:not([type=radio])");
  if (kind === "number" || kind === "duration") {
    let raw = input.value.replace(/\s/g, "");
    if (raw.includes(",") && !raw.includes(".")) { raw = raw.replace(",", "."); } // 1,5
    if (!NUMBER.test(raw)) { return {problem: "Enter a number, for example 92 or 1.5."}; }
    return {value: Number(raw), shown: withUnit(raw, field.dataset.unitDisplay)};
  }
  if (kind === "integer") {
    const raw = input.value.replace(/\s/g, "");
    if (!INTEGER.test(raw)) { return {problem: "Enter a whole number, for example 3."}; }
    return {value: parseInt(raw, 10), shown: withUnit(raw, field.dataset.unitDisplay)};
  }
  if (kind === "text") {
    const raw = input.value.trim();
    return raw ? {value: raw, shown: raw} : {problem: "Enter a value."};
  }
  if (kind === "choice") {
    const chosen = form.querySelector("input[type=radio][data-value]:checked");
    return chosen ? {value: chosen.value, shown: chosen.value} : {problem: "Choose one."};
  }
  if (kind === "boolean") {
    if (!submitter || !submitter.hasAttribute("data-value")) { return {problem: "Choose yes or no."}; }
    const yes = submitter.value === "true";
    return {value: yes, shown: yes ? "Yes" : "No"};
  }
  if (kind === "datetime") {
    const when = input.value ? new Date(input.value) : null; // the device's local time
    if (!when || isNaN(when.getTime())) { return {problem: "Enter a date and time."}; }
    return {value: withOffset(when), shown: input.value.replace("T", " ")};
  }
  return {problem: "This field cannot be recorded here."};
}

class RunPage {
  constructor(sheet) {
    this.sheet = sheet;
    this.fieldUrl = sheet.dataset.fieldUrl;
    this.checks = JSON.parse(sheet.dataset.checks || "{}"); // key: [name, tone, in a sentence]
    this.banner = sheet.querySelector("[data-queue-banner]");
    this.bannerText = sheet.querySelector("[data-queue-text]");
    this.queue = new EntryQueue(sheet.dataset.queueKey);
    this.sender = new Sender(this.queue, sheet.dataset.endpoint, {
      sent: (item, body) => this.sent(item, body),
      refused: (item, status, body) => this.refused(item, status, body),
      changed: () => this.render(),
    });
  }

  start() {
    this.sheet.addEventListener("submit", (event) => this.onSubmit(event));
    this.sheet.addEventListener("click", (event) => this.onClick(event));
    this.sender.listen();
    this.queue.items().forEach((item) => this.markPending(item)); // left from before a reload
    this.markCurrent();
    this.scrollToCurrent();
    this.render();
    this.sender.flush();
  }

  field(domId) { return document.getElementById(domId); }

  form(field, correction) {
    return field.querySelector(`form[data-entry-form=${correction ? "correction" : "entry"}]`);
  }

  // The banner: how many entries wait and why, in words (and colour).
  render() {
    if (!this.banner) { return; }
    const {count, offline, auth, durable} = this.sender.status();
    const entries = count === 1 ? "1 entry" : `${count} entries`;
    let [text, tone] = [`Sending ${entries}…`, "neutral"];
    if (count === 0) {
      [text, tone] = ["All entries sent", "success"];
    } else if (auth && auth.status === 401) {
      [text, tone] = [`${entries} waiting: sign in again to send them (they are kept in this browser).`, "danger"];
    } else if (auth) {
      [text, tone] = [`${entries} waiting: ${auth.message}`, "danger"];
    } else if (offline) {
      [text, tone] = [`Offline: ${entries} waiting`, "warning"];
    }
    if (!durable) {
      text += " This browser cannot keep entries across a reload: keep this page open until they are sent.";
      tone = count === 0 ? "warning" : tone;
    }
    if (this.bannerText.dataset.said !== text) {
      this.bannerText.dataset.said = text;
      this.bannerText.textContent = text;
      if (auth && auth.status === 401) { this.bannerText.append(" ", this.signInLink()); }
    }
    this.banner.dataset.tone = tone;
  }

  signInLink() {
    const link = document.createElement("a");
    link.href = "/login?next=" + encodeURIComponent(window.location.pathname);
    link.textContent = "Sign in";
    return link;
  }

  // The line under a field (a live region): what became of its entry, in words.
  showResult(domId, tone, message) {
    const box = this.sheet.querySelector(`[data-result-for="${domId}"]`);
    if (!box) { return; }
    box.dataset.tone = tone;
    box.textContent = message;
  }

  setDisabled(form, disabled) {
    form.querySelectorAll("input, button, select, textarea").forEach((control) => {
      control.disabled = disabled;
    });
  }

  refuse(control, domId, problem) {
    if (control) { control.setAttribute("aria-invalid", "true"); }
    this.showResult(domId, "danger", problem);
    if (control && control.focus) { control.focus(); }
  }

  // --- making an entry ---------------------------------------------------------------------

  onSubmit(event) {
    const form = event.target.closest("form[data-entry-form]");
    if (!form) { return; }
    event.preventDefault();
    const field = form.closest("[data-field]");
    const correction = form.dataset.entryForm === "correction";
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    const read = readValue(field, form, event.submitter);
    if (read.problem) { this.refuse(form.querySelector("[data-value]"), field.id, read.problem); return; }
    const payload = {
      step: field.dataset.step,
      phase: field.dataset.phase,
      field: field.dataset.fieldKey,
      value: read.value,
      idempotency_key: newKey(),
      device_time: withOffset(new Date()),
      source: "manual",
    };
    if (field.dataset.unit) { payload.unit = field.dataset.unit; }
    if (correction) {
      const reason = form.querySelector("[data-reason]");
      if (!reason.value.trim()) { this.refuse(reason, field.id, "Give a reason for the correction."); return; }
      payload.supersedes = field.dataset.entryId;
      payload.reason = reason.value.trim();
    }
    const item = {payload, domId: field.id, shown: read.shown, correction};
    this.markPending(item);
    this.markCurrent();
    this.sender.add(item);
  }

  markPending(item) {
    const field = this.field(item.domId);
    if (!field) { return; }
    const form = this.form(field, item.correction);
    if (form) { this.setDisabled(form, true); }
    if (!item.correction) { field.dataset.state = "pending"; }
    field.classList.add("is-pending");
    const what = item.correction ? "correction" : "entry";
    this.showResult(item.domId, "warning", `Waiting to send this ${what}: ${item.shown}.`);
  }

  // Sent: the check at once, in words here and as a badge (colour and words) on the field.
  async sent(item, body) {
    const check = body && body.check;
    const known = this.checks[check];
    const what = item.correction ? "Correction sent" : "Sent";
    const tone = check === "in_limits" ? "success" : "warning";
    this.showResult(item.domId, tone, `${what}: ${item.shown}${known ? ", " + known[2] : ""}.`);
    await this.reload(item.domId, item.shown, check);
  }

  async refused(item, status, body) {
    const error = (body && body.error) || {};
    const field = this.field(item.domId);
    if (status === 409 && error.details && error.details.current) {
      // Someone recorded the field first: the field shows their value, who and when; the
      // operator's own value stays here, in words.
      const name = field ? field.dataset.name : "This field";
      this.showResult(item.domId, "danger",
        `Not recorded: ${name} was recorded first by someone else (the value shown above). ` +
        `Your value was ${item.shown}; to change the record, use Correct.`);
      await this.reload(item.domId);
      return;
    }
    this.showResult(item.domId, "danger", `Not recorded: ${error.message || `the entry was refused (HTTP ${status}).`}`);
    if (!field) { return; }
    field.classList.remove("is-pending");
    if (!item.correction) { field.dataset.state = field.dataset.entryId ? "recorded" : "open"; }
    const form = this.form(field, item.correction);
    if (form) {
      this.setDisabled(form, false); // the value typed is still there, to send again
      const control = form.querySelector("[data-value]");
      if (control && status === 422) { control.setAttribute("aria-invalid", "true"); }
    }
    this.markCurrent();
  }

  // The field as the server shows it now (its current value, who, when, its check).
  async reload(domId, shown, check) {
    const old = this.field(domId);
    if (!old) { return; }
    const query = new URLSearchParams({step: old.dataset.step, phase: old.dataset.phase, field: old.dataset.fieldKey});
    try {
      const response = await fetch(`${this.fieldUrl}?${query}`, {credentials: "same-origin", headers: {"Accept": "text/html"}});
      if (!response.ok) { throw new Error(String(response.status)); }
      const template = document.createElement("template");
      template.innerHTML = await response.text();
      const fresh = template.content.querySelector("[data-field]");
      if (!fresh || fresh.id !== domId) { throw new Error("not this field"); }
      const hadFocus = old.contains(document.activeElement);
      old.replaceWith(fresh);
      if (hadFocus) {
        fresh.setAttribute("tabindex", "-1");
        fresh.focus();
      }
    } catch (error) {
      if (shown !== undefined) { this.recordedHere(old, shown, check); }
    }
    this.markCurrent();
  }

  // Without the fragment (the connection dropped again): the field shows what was sent.
  recordedHere(field, shown, check) {
    field.classList.remove("is-pending");
    field.classList.add("is-recorded");
    field.dataset.state = "recorded";
    field.querySelectorAll("form[data-entry-form]").forEach((form) => { form.hidden = true; });
    const value = document.createElement("p");
    value.className = "recorded-value";
    const strong = document.createElement("strong");
    strong.textContent = shown;
    value.appendChild(strong);
    const known = this.checks[check];
    if (known) {
      const badge = document.createElement("span");
      badge.className = `badge badge-tone badge-${known[1]} check-badge`;
      badge.textContent = known[0];
      value.append(" ", badge);
    }
    field.appendChild(value);
  }

  // --- the phase to work on ----------------------------------------------------------------

  markCurrent() {
    // The phase to work on: the running one, else the first that has not ended (as the
    // server marks it); the page reloads after a phase command.
    const phases = Array.from(this.sheet.querySelectorAll("[data-phase]"));
    const ended = ["complete", "stopped", "aborted"];
    const current = phases.find((phase) => phase.dataset.status === "running")
      || phases.find((phase) => !ended.includes(phase.dataset.status));
    phases.forEach((phase) => {
      const here = phase === current;
      phase.classList.toggle("is-current", here);
      if (here) { phase.setAttribute("aria-current", "step"); } else { phase.removeAttribute("aria-current"); }
      const mark = phase.querySelector("[data-current-mark]");
      if (mark) { mark.hidden = !here; }
    });
    this.sheet.dataset.current = current ? current.id : "";
  }

  scrollToCurrent() {
    if (window.location.hash) { return; }
    const current = this.sheet.dataset.current && document.getElementById(this.sheet.dataset.current);
    if (current) { current.scrollIntoView({block: "start"}); }
  }

  // --- buttons: now, correct, cancel -------------------------------------------------------

  onClick(event) {
    const now = event.target.closest("[data-now]");
    const correct = event.target.closest("[data-correct]");
    const cancel = event.target.closest("[data-cancel-correction]");
    if (now) {
      const input = document.getElementById(now.dataset.now);
      if (input) { input.value = localInputValue(new Date()); input.focus(); }
    } else if (correct) {
      const form = document.getElementById(correct.dataset.correct);
      if (!form) { return; }
      form.hidden = !form.hidden;
      correct.setAttribute("aria-expanded", form.hidden ? "false" : "true");
      const first = form.hidden ? null : form.querySelector("input:not([disabled])");
      if (first) { first.focus(); }
    } else if (cancel) {
      const form = cancel.closest("form");
      form.hidden = true;
      const opener = form.closest("[data-field]").querySelector("[data-correct]");
      if (opener) { opener.setAttribute("aria-expanded", "false"); opener.focus(); }
    }
  }
}

const sheet = document.querySelector("[data-run-sheet][data-can-record=true]");
const runPage = sheet ? new RunPage(sheet) : null;
if (runPage) { runPage.start(); }

// A folded step opened in place (its Open, through htmx): the keyboard's focus moves to the
// step's title, and entries still waiting to be sent for its fields show as waiting.
document.addEventListener("htmx:load", (event) => {
  const step = event.target;
  if (!(step instanceof HTMLElement) || !step.matches(".run-step")) { return; }
  const title = step.querySelector(".card-title");
  if (title) { title.setAttribute("tabindex", "-1"); title.focus(); }
  if (runPage) { runPage.queue.items().forEach((item) => runPage.markPending(item)); }
});
