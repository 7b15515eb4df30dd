// Entries that are never lost (a module, no framework; run-page.js binds it to the run page).
//
// Each entry is made in the browser with its own idempotency key and the device's time, kept
// in localStorage (one queue per tenant, user and batch) BEFORE it is sent, and removed only
// when the server has it (201, or 200 for a retry of the same key, which returns the first
// entry) or refused it (409, 422 and other 4xx: the page shows why). A dropped connection, a
// timeout, 408, 429 or a 5xx keeps it: it is sent again on the "online" event, on a timer
// that backs off, when the page is shown again and when the page loads (entries left from
// before a reload). 401 and 403 keep it too (a session to renew, a stale CSRF token, which is
// read again from a fresh page once).

const STORE_PREFIX = "opencdmo.entries.";
const SEND_TIMEOUT_MS = 20000;
const RETRY_FIRST_MS = 2000;
const RETRY_MAX_MS = 60000;

// --- the queue: read fresh at every change (another tab of the same batch may share it) ----

export class EntryQueue {
  constructor(key) {
    this.key = key;
    this.memory = [];
    this.durable = EntryQueue.storageWorks();
  }

  static storageWorks() {
    try {
      const probe = STORE_PREFIX + "probe";
      window.localStorage.setItem(probe, "1");
      window.localStorage.removeItem(probe);
      return true;
    } catch (error) {
      return false;
    }
  }

  items() {
    if (!this.durable) { return this.memory.slice(); }
    try {
      const parsed = JSON.parse(window.localStorage.getItem(this.key) || "[]");
      return Array.isArray(parsed) ? parsed : [];
    } catch (error) {
      return [];
    }
  }

  save(items) {
    if (this.durable) {
      try {
        window.localStorage.setItem(this.key, JSON.stringify(items));
        return;
      } catch (error) {
        this.durable = false; // full or refused: kept in this page at least (the banner says so)
      }
    }
    this.memory = items.slice();
  }

  add(item) {
    const items = this.items();
    items.push(item);
    this.save(items);
  }

  remove(idempotencyKey) {
    this.save(this.items().filter((item) => item.payload.idempotency_key !== idempotencyKey));
  }

  count() { return this.items().length; }
}

// --- what an entry is made with ----------------------------------------------------------

export function newKey() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") {
    return window.crypto.randomUUID();
  }
  // Outside a secure context (plain http on a plant network) randomUUID is missing;
  // getRandomValues is not: a version 4 UUID from it.
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function pad(n) { return String(n).padStart(2, "0"); }

// A local time with the device's offset: 2026-05-04T10:02:03+02:00.
export function withOffset(date) {
  const minutes = -date.getTimezoneOffset();
  const sign = minutes >= 0 ? "+" : "-";
  const abs = Math.abs(minutes);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

// --- sending, in the order the entries were made ------------------------------------------

// hooks: sent(item, body), refused(item, status, body) (both may be async), changed().
export class Sender {
  constructor(queue, endpoint, hooks) {
    this.queue = queue;
    this.endpoint = endpoint;
    this.hooks = hooks;
    this.sending = false;
    this.again = false;
    this.attempt = 0;
    this.timer = null;
    this.trouble = null; // null, "offline", or {status, message} (401, 403)
  }

  listen() {
    window.addEventListener("online", () => { this.trouble = null; this.retryNow(); });
    window.addEventListener("offline", () => { this.trouble = "offline"; this.hooks.changed(); });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") { this.retryNow(); }
    });
    window.addEventListener("storage", (event) => {
      if (event.key === this.queue.key) { this.hooks.changed(); }
    });
  }

  // Entries to send, and why they wait: {count, offline, auth, durable}.
  status() {
    const auth = this.trouble && this.trouble.status ? this.trouble : null;
    return {
      count: this.queue.count(),
      offline: this.trouble === "offline" || !navigator.onLine,
      auth,
      durable: this.queue.durable,
    };
  }

  add(item) {
    this.queue.add(item); // kept before it is sent
    this.hooks.changed();
    this.flush();
  }

  retryNow() {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    this.attempt = 0;
    this.flush();
  }

  schedule() {
    if (this.timer) { return; }
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(() => { this.timer = null; this.flush(); }, delay);
  }

  async flush() {
    if (this.sending) { this.again = true; return; }
    this.sending = true;
    try {
      for (const item of this.queue.items()) {
        if (await this.send(item) === "wait") { this.schedule(); break; }
      }
    } finally {
      this.sending = false;
      this.hooks.changed();
    }
    if (this.again) { this.again = false; this.flush(); }
  }

  async post(item) {
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), SEND_TIMEOUT_MS);
    try {
      return await fetch(this.endpoint, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken()},
        body: JSON.stringify(item.payload),
        signal: controller.signal,
      });
    } finally {
      clearTimeout(timeout);
    }
  }

  async send(item) {
    let response;
    try {
      response = await this.post(item);
      if (response.status === 403 && await refreshToken()) { response = await this.post(item); }
    } catch (error) {
      this.trouble = "offline";
      return "wait";
    }
    const status = response.status;
    const body = await response.json().catch(() => null);
    if (status === 200 || status === 201) {
      this.trouble = null;
      this.attempt = 0;
      this.queue.remove(item.payload.idempotency_key);
      await this.hooks.sent(item, body);
      return "sent";
    }
    if (status === 401 || status === 403) {
      const error = (body && body.error) || {};
      this.trouble = {status, message: error.message || "Not permitted."};
      return "wait";
    }
    if (status === 408 || status === 429 || status >= 500) {
      this.trouble = "offline";
      return "wait";
    }
    this.trouble = null;
    this.queue.remove(item.payload.idempotency_key);
    await this.hooks.refused(item, status, body);
    return "refused";
  }
}

// A session that outlived its page (signed in again in another tab) has a new CSRF token:
// read it from a fresh copy of the page (each page has a fresh nonce). Whether one was read.
async function refreshToken() {
  try {
    const page = await fetch(window.location.pathname, {credentials: "same-origin", headers: {"Accept": "text/html"}});
    const found = /<meta name="csrf-token" content="([0-9a-f]+)">/.exec(await page.text());
    const meta = document.querySelector('meta[name="csrf-token"]');
    if (!found || !meta || meta.content === found[1]) { return false; }
    meta.content = found[1];
    return true;
  } catch (error) {
    return false;
  }
}
