// postkiosk touchscreen: on-page keypads, the deposit steps, and following the service's screen.
// The flow state lives in the service; this script only shows it and posts what was typed.
"use strict";

const page = document.body.dataset.page;
const version = Number(document.body.dataset.version);
const screenPages = new Set(["home", "door", "result"]);

async function api(method, url, body) {
  const response = await fetch(url, {
    method, headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined, credentials: "same-origin",
  });
  let data = {};
  try { data = await response.json(); } catch (e) { data = {}; }
  // an error a person meets is also said aloud (voice.js), not only shown
  if (!response.ok && data.error) document.dispatchEvent(new CustomEvent("kiosk-problem", { detail: data }));
  return { ok: response.ok, status: response.status, data };
}

function say(el, text) { if (el) el.textContent = text || ""; }

// ---- keypads: buttons with data-key write into the input named by data-keypad (or the focused one)
let activeInput = null;
function focusInput(input) {
  document.querySelectorAll(".entry, .code").forEach((el) => el.classList.remove("focus"));
  activeInput = input;
  if (input) input.classList.add("focus");
}
document.querySelectorAll(".entry, .code").forEach((input) => {
  input.addEventListener("click", () => focusInput(input));
});
document.querySelectorAll("[data-keypad]").forEach((pad) => {
  pad.addEventListener("click", (event) => {
    const key = event.target.closest("[data-key]");
    if (!key) return;
    const input = activeInput && pad.dataset.keypad !== "tracking" ? activeInput : document.getElementById(pad.dataset.keypad);
    const k = key.dataset.key;
    if (k === "clear") input.value = "";
    else if (k === "back") input.value = input.value.slice(0, -1);
    else if (input.value.length < Number(input.maxLength > 0 ? input.maxLength : 64)) input.value += k;
    input.dispatchEvent(new Event("input"));
  });
});

// ---- following the service: a screen change moves this page; door events update the door line.
// The page says which page it is, so the service routes scanned codes to it: "scan" (a waybill for the
// deposit page) and "scan_rejected" (why a read does nothing here) come as DOM events kiosk-scan and
// kiosk-scan-rejected; by default a rejection is shown in the page's message line.
let lastVersion = version;
const scanPage = document.body.dataset.scanPage || { "deposit": "courier_deposit", "courier-login": "courier_login", "retrieve": "courier_retrieve" }[page] || page;
function messageLine() {
  return document.getElementById("message") || document.querySelector(".step:not([hidden]) .message");
}
function follow() {
  const offline = document.getElementById("offline");
  const source = new EventSource("/api/events?page=" + encodeURIComponent(scanPage || ""));
  source.addEventListener("open", () => { if (offline) offline.hidden = true; });
  source.addEventListener("error", () => { if (offline) offline.hidden = false; });
  source.addEventListener("screen", (event) => {
    const screen = JSON.parse(event.data);
    if (screen.version === lastVersion) {
      // Same screen, new door state: sent first on every (re)connect, and when a flow's door opens.
      // A door event that came before this page was listening is only seen here.
      if (page === "door" && screen.name === "door") updateDoor(screen.compartment, screen.door);
      return;
    }
    lastVersion = screen.version;
    if (screenPages.has(page)) {
      const moved = screen.name !== document.body.dataset.screen || screen.name !== "door";
      if (moved) location.replace("/"); else updateDoor(screen.compartment, screen.door);
    } else if (screen.name !== "home") {
      location.replace("/");
    }
  });
  source.addEventListener("door", (event) => {
    const data = JSON.parse(event.data);
    updateDoor(data.compartment, data.door);
  });
  source.addEventListener("posting", (event) => {
    document.dispatchEvent(new CustomEvent("kiosk-posting", { detail: JSON.parse(event.data) }));
  });
  source.addEventListener("payment", (event) => {
    document.dispatchEvent(new CustomEvent("kiosk-payment", { detail: JSON.parse(event.data) }));
  });
  source.addEventListener("scan", (event) => {
    document.dispatchEvent(new CustomEvent("kiosk-scan", { detail: JSON.parse(event.data) }));
  });
  source.addEventListener("scan_rejected", (event) => {
    const data = JSON.parse(event.data);
    say(messageLine(), data.message);
    document.dispatchEvent(new CustomEvent("kiosk-scan-rejected", { detail: data }));
  });
}
function updateDoor(compartment, state) {
  const el = document.getElementById("door-state");
  if (!el || el.dataset.compartment !== compartment) return;
  const refuse = document.getElementById("refuse");
  const reasons = document.getElementById("reasons");
  if (refuse && reasons && reasons.hidden) refuse.hidden = state !== "open";
  el.className = "door-state " + state;
  // "closed" is shown as "checking" until the service has decided what the closing meant
  el.textContent = state === "open" ? el.dataset.open : el.dataset.unknown;
}
follow();

// ---- pages
if (page === "pickup") {
  const input = document.getElementById("code");
  const open = document.getElementById("open");
  const message = document.getElementById("message");
  focusInput(input);
  let pausedFor = Number(message.dataset.paused || 0);
  const tickPause = () => {
    if (pausedFor > 0) {
      say(message, message.dataset.pausedText.replace("{s}", String(pausedFor)));
      pausedFor -= 1;
      open.disabled = true;
      setTimeout(tickPause, 1000);
    } else if (message.dataset.pausedText && message.textContent.includes(message.dataset.pausedText.split("{s}")[0])) {
      say(message, "");
      open.disabled = input.value.length !== 8;
    }
  };
  tickPause();
  input.addEventListener("input", () => {
    input.value = input.value.replace(/\D/g, "").slice(0, 8);
    open.disabled = input.value.length !== 8 || pausedFor > 0;
  });
  // a scanned pickup code that was refused: too many wrong codes pause the keypad here too
  document.addEventListener("kiosk-scan-rejected", (event) => {
    if (event.detail.pay_url) { location.replace(event.detail.pay_url); return; }
    if (event.detail.retry_after) { pausedFor = event.detail.retry_after; tickPause(); }
  });
  open.addEventListener("click", async () => {
    open.disabled = true;
    const r = await api("POST", "/api/pickups", { code: input.value });
    if (r.ok) { location.replace("/"); return; }
    input.value = "";
    if (r.status === 402 && r.data.pay_url) { location.replace(r.data.pay_url); return; }
    if (r.status === 429) { pausedFor = r.data.retry_after || 30; tickPause(); return; }
    say(message, r.data.message);
  });
}

if (page === "courier-login") {
  const login = document.getElementById("login");
  const pin = document.getElementById("pin");
  const message = document.getElementById("message");
  focusInput(login);
  login.addEventListener("input", () => { if (login.value.length >= 8) focusInput(pin); });
  document.getElementById("submit").addEventListener("click", async () => {
    const r = await api("POST", "/api/courier/session", { login: login.value, pin: pin.value });
    if (r.ok) { location.replace("/courier/deposit"); return; }
    pin.value = "";
    say(message, r.data.message);
  });
}

if (page === "deposit") {
  const steps = document.querySelectorAll(".step");
  const show = (n) => {
    steps.forEach((s) => { s.hidden = s.dataset.step !== String(n); });
    const input = document.querySelector(`.step[data-step="${n}"] .entry`);
    if (input) focusInput(input);
  };
  const messageFor = (field) => document.querySelector(`.message[data-for~="${field}"]`);
  const tracking = document.getElementById("tracking");
  const phone = document.getElementById("phone");
  let size = null;
  let consent = false;
  show(1);
  document.querySelectorAll("[data-next]").forEach((b) => b.addEventListener("click", () => {
    const n = Number(b.dataset.next);
    // check what a step asked for before moving on; the service checks everything again
    if (n === 2 && b.closest(".step").dataset.step === "1" && tracking.value.length < 6) {
      say(messageFor("tracking"), tracking.dataset.short); return;
    }
    if (n === 3 && phone.value.length !== 11) { say(messageFor("phone"), phone.dataset.short); return; }
    document.querySelectorAll(".message").forEach((m) => say(m, ""));
    show(n);
  }));
  document.querySelectorAll("[data-size]").forEach((b) => b.addEventListener("click", () => {
    size = b.dataset.size;
    document.querySelectorAll("[data-size]").forEach((o) => o.setAttribute("aria-checked", String(o === b)));
  }));
  const consentBtn = document.getElementById("consent");
  consentBtn.addEventListener("click", () => {
    consent = !consent;
    consentBtn.setAttribute("aria-checked", String(consent));
  });
  let lockerIsAddress = false;
  const addressBtn = document.getElementById("locker-address");
  addressBtn.addEventListener("click", () => {
    lockerIsAddress = !lockerIsAddress;
    addressBtn.setAttribute("aria-checked", String(lockerIsAddress));
  });
  document.getElementById("deposit").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    document.querySelectorAll(".message").forEach((m) => say(m, ""));
    const r = await api("POST", "/api/deposits", {
      tracking: tracking.value, phone: phone.value, size: size || "", consent, locker_is_address: lockerIsAddress,
    });
    button.disabled = false;
    if (r.ok) { location.replace("/"); return; }
    if (r.status === 401) { location.replace("/courier"); return; }
    const field = r.data.field || (r.data.error === "consent_missing" ? "consent" : "size");
    const target = field === "tracking" ? 1 : field === "phone" ? 2 : 3;
    show(target);
    say(messageFor(field) || messageFor("size"), r.data.message);
  });
  // a waybill scanned while this page shows fills the tracking number (the service routes it here)
  document.addEventListener("kiosk-scan", (event) => {
    const data = event.detail;
    tracking.value = String(data.number || "").slice(0, tracking.maxLength > 0 ? tracking.maxLength : 32);
    tracking.dispatchEvent(new Event("input"));
    document.querySelectorAll(".message").forEach((m) => say(m, ""));
    show(1);
    say(document.getElementById("scan-note"), data.message);
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await api("DELETE", "/api/courier/session");
    location.replace("/");
  });
}

if (page === "door") {
  const refuse = document.getElementById("refuse");
  const reasons = document.getElementById("reasons");
  if (refuse) refuse.addEventListener("click", () => { reasons.hidden = false; refuse.hidden = true; });
  if (reasons) reasons.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-reason]");
    if (!button) return;
    const r = await api("POST", "/api/screen/refuse", { reason: button.dataset.reason });
    if (!r.ok) say(document.getElementById("message"), r.data.message);
  });
  const inspection = document.getElementById("inspection");
  if (inspection) inspection.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-inspect]");
    if (!button) return;
    const passed = button.dataset.inspect === "passed";
    const r = await api("POST", `/api/collections/${inspection.dataset.parcel}/inspection`,
      { passed, reason: passed ? null : button.dataset.inspect });
    say(document.getElementById("message"), r.ok ? button.textContent : r.data.message);
    if (r.ok) inspection.querySelectorAll("button").forEach((x) => x.classList.toggle("on", x === button));
  });
  const cancel = document.getElementById("cancel");
  if (cancel) cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    await api("POST", `/api/deposits/${cancel.dataset.parcel}/cancel`);
    location.replace("/");
  });
}

if (page === "result") {
  document.querySelectorAll("[data-dismiss]").forEach((el) => el.addEventListener("click", async (event) => {
    const href = el.getAttribute("href");
    event.preventDefault();
    await api("POST", "/api/screen/dismiss");
    location.replace(href || "/");
  }));
}

if (page === "retrieve") {
  document.querySelectorAll("[data-collect]").forEach((b) => b.addEventListener("click", async () => {
    b.disabled = true;
    const r = await api("POST", `/api/collections/${b.dataset.collect}`);
    if (r.ok) { location.replace("/"); return; }
    if (r.status === 401) { location.replace("/courier"); return; }
    b.disabled = false;
    say(document.getElementById("message"), r.data.message);
  }));
  document.querySelectorAll("[data-retrieve]").forEach((b) => b.addEventListener("click", async () => {
    b.disabled = true;
    const r = await api("POST", `/api/retrievals/${b.dataset.retrieve}`);
    if (r.ok) { location.replace("/"); return; }
    if (r.status === 401) { location.replace("/courier"); return; }
    b.disabled = false;
    say(document.getElementById("message"), r.data.message);
  }));
}

// ---- idle: a page left alone asks "still there?" (20 s to answer), then goes back to the start and
// forgets the session: an unpaid posting, fee or bill is dropped, a courier is logged out, large print
// goes off.
// Never on a door screen (a door may be open: the door-left-open alarm handles that) nor on a result
// (it returns by itself).
(function idle() {
  const seconds = Number(document.body.dataset.idle || 60);
  const dialog = document.getElementById("still-there");
  if (!dialog || page === "door" || page === "result") return;
  const count = document.getElementById("still-there-count");
  const ANSWER = 20;
  let timer = null, ticker = null, left = ANSWER;
  async function forget() {
    // large print off first: cancelling a posting makes its page move to "/" by itself
    await fetch("/large/off?next=/", { credentials: "same-origin", redirect: "manual" }).catch(() => null);
    await Promise.allSettled([api("POST", "/api/posting/cancel", {}), api("DELETE", "/api/courier/session"),
                              api("POST", "/api/fee/cancel", {}), api("POST", "/api/bills/end", {})]);
    location.replace("/");
  }
  function ask() {
    // a payment under way (the payer may be typing a password on their phone) is never interrupted
    if (document.querySelector('[data-state="charging"], [data-paying="charging"]')) { reset(); return; }
    if (page === "home") { if (document.body.classList.contains("large-print")) forget(); return; }
    left = ANSWER;
    dialog.hidden = false;
    const say = () => { if (count) count.textContent = count.dataset.text.replace("{s}", String(Math.max(0, left))); };
    say();
    document.dispatchEvent(new CustomEvent("kiosk-still-there"));
    ticker = setInterval(() => {
      left -= 1;
      say();
      if (left <= 0) { clearInterval(ticker); forget(); }
    }, 1000);
  }
  function reset() {
    clearTimeout(timer); clearInterval(ticker);
    dialog.hidden = true;
    timer = setTimeout(ask, Math.max(5, seconds - ANSWER) * 1000);
  }
  ["pointerdown", "keydown", "input"].forEach((type) => document.addEventListener(type, (event) => {
    if (dialog.hidden || event.target.closest("#still-there")) reset();
  }, true));
  document.getElementById("still-here").addEventListener("click", reset);
  reset();
})();
