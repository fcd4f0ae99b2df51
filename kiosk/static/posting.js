// The posting page: sends what the resident tapped or typed; the service holds the flow and this
// page reloads itself when the step (or a message) changes. kiosk.js passes on "posting" events.
"use strict";
(function () {
  const root = document.getElementById("posting");
  if (!root) return;
  const message = document.getElementById("message");
  // Only a message this step has a text for is a change worth a reload (a scale that says "empty"
  // while the resident is still carrying the parcel over changes nothing on screen).
  const messages = (root.dataset.messages || "").split(" ");
  const shownMessage = (key) => (key && (messages.includes("*") || messages.includes(key)) ? key : "");
  const shown = () => [root.dataset.step, shownMessage(root.dataset.message), root.dataset.weight,
    root.dataset.printer, root.dataset.paying || ""].join("|");
  let busy = false;

  // One request at a time; after a success the page is leaving, so a second tap sends nothing.
  async function call(url, body) {
    if (busy) return null;
    busy = true;
    let r;
    try {
      r = await api("POST", url, body || {});
    } catch (e) {
      busy = false;
      return null;
    }
    if (!r.ok) {
      busy = false;
      // a posting that can no longer start (the camera stopped since this page was shown): show why
      if (r.status === 503 && root.dataset.step === "notice") { location.replace("/post"); return null; }
      say(message, r.data.message || "");
      return null;
    }
    location.replace("/post");
    return r.data;
  }

  let leaving = false;
  async function refresh() {
    if (leaving) return;
    const r = await api("GET", "/api/posting");
    if (!r.ok || leaving) return;
    const v = r.data;
    const printer = v.printer ? String(v.printer.ready) : "";
    const now = [v.step, shownMessage(v.message), v.weight_g || "", printer, v.paying || ""].join("|");
    if (now !== shown()) {
      leaving = true;
      location.replace(v.active || v.step !== "notice" ? "/post" : "/");
    }
  }
  document.addEventListener("kiosk-posting", refresh);
  // A change that came before this page's event stream was open is only seen by asking: once now,
  // and every few seconds while the service is working on something the resident waits for.
  // (kiosk.js, which defines api(), runs after this script: wait for it.)
  document.addEventListener("DOMContentLoaded", () => {
    refresh();
    if (["card", "weigh", "paying", "printing", "dropoff"].includes(root.dataset.step)) setInterval(refresh, 3000);
  });

  // recipient: a pasted or dictated line fills the fields as it is typed; every field stays editable
  const line = document.getElementById("recipient-line");
  const fields = {};
  document.querySelectorAll("[data-field]").forEach((el) => { fields[el.dataset.field] = el; });
  let parseTimer = null;
  async function parse() {
    const text = line.value.trim();
    if (!text) return;
    const r = await api("POST", "/api/posting/parse", { text });
    if (!r.ok) return;
    for (const [key, el] of Object.entries(fields)) if (r.data[key]) el.value = r.data[key];
  }
  // A paste or a dictated line arrives whole: parse it at once. Typing waits for a pause.
  let lastLength = 0;
  if (line) {
    line.addEventListener("input", (event) => {
      const whole = event.inputType === "insertFromPaste" || event.inputType === "insertFromDrop"
        || line.value.length - lastLength > 4;
      lastLength = line.value.length;
      clearTimeout(parseTimer);
      parseTimer = setTimeout(parse, whole ? 0 : 300);
    });
  }
  let fromPosting = null;
  const choose = (selector, chosen) => document.querySelectorAll(selector).forEach((x) => {
    x.classList.toggle("on", x === chosen);
    x.setAttribute("aria-pressed", String(x === chosen));
  });
  document.querySelectorAll("[data-recent]").forEach((b) => b.addEventListener("click", () => {
    // tapping the chosen one again unchooses it (the fields below are used then)
    fromPosting = fromPosting === Number(b.dataset.recent) ? null : Number(b.dataset.recent);
    choose("[data-recent]", fromPosting === null ? null : b);
  }));

  // item: one category, a quantity, a size
  let category = null, quantity = 1, size = "M";
  const next = document.querySelector("[data-action=item]");
  document.querySelectorAll("[data-category]").forEach((b) => b.addEventListener("click", () => {
    category = b.dataset.category;
    choose("[data-category]", b);
    if (next) next.disabled = false;
  }));
  document.querySelectorAll("[data-qty]").forEach((b) => b.addEventListener("click", () => {
    quantity = Math.min(99, Math.max(1, quantity + Number(b.dataset.qty)));
    document.getElementById("quantity").textContent = String(quantity);
  }));
  document.querySelectorAll("[data-size]").forEach((b) => b.addEventListener("click", () => {
    size = b.dataset.size;
    choose("[data-size]", b);
  }));

  const actions = {
    agree: () => call("/api/posting", { agreed: true }),
    cancel: () => api("POST", "/api/posting/cancel", {}).then(() => location.replace("/")),
    recipient: () => {
      const body = {};
      for (const [key, el] of Object.entries(fields)) body[key] = el.value;
      const phone = document.getElementById("sender-phone");
      if (phone) body.sender_phone = phone.value;
      if (fromPosting !== null) body.from_posting = fromPosting;
      return call("/api/posting/recipient", body);
    },
    item: () => call("/api/posting/item", { category, quantity, size, declared: true }),
    weigh: () => call("/api/posting/weigh"),
    confirm: () => call("/api/posting/confirm"),
    pay: () => call("/api/posting/pay"),
    "pay-back": () => call("/api/posting/pay/back"),
    dropoff: () => call("/api/posting/dropoff"),
  };
  document.querySelectorAll("[data-action]").forEach((b) => b.addEventListener("click", () => actions[b.dataset.action]()));
})();
