// The posting page: sends what the resident tapped or typed; the service holds the flow and this
// page reloads itself when the step (or a message) changes. kiosk.js passes on "posting" events.
"use strict";
(function () {
  const root = document.getElementById("posting");
  if (!root) return;
  const message = document.getElementById("message");
  const shown = () => [root.dataset.step, root.dataset.message, root.dataset.weight, root.dataset.printer].join("|");
  let busy = false;

  async function call(url, body) {
    if (busy) return null;
    busy = true;
    try {
      const r = await api("POST", url, body || {});
      if (!r.ok) { say(message, r.data.message || ""); return null; }
      location.replace("/post");
      return r.data;
    } finally { busy = false; }
  }

  async function refresh() {
    const r = await api("GET", "/api/posting");
    if (!r.ok) return;
    const v = r.data;
    const printer = v.printer ? String(v.printer.ready) : "";
    const now = [v.step, v.message || "", v.weight_g || "", printer].join("|");
    if (now !== shown()) location.replace(v.active || v.step !== "notice" ? "/post" : "/");
  }
  document.addEventListener("kiosk-posting", refresh);

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
  if (line) {
    line.addEventListener("input", () => { clearTimeout(parseTimer); parseTimer = setTimeout(parse, 250); });
    line.addEventListener("paste", () => { clearTimeout(parseTimer); parseTimer = setTimeout(parse, 50); });
  }
  let fromPosting = null;
  document.querySelectorAll("[data-recent]").forEach((b) => b.addEventListener("click", () => {
    fromPosting = Number(b.dataset.recent);
    document.querySelectorAll("[data-recent]").forEach((x) => x.classList.toggle("on", x === b));
  }));

  // item: one category, a quantity, a size
  let category = null, quantity = 1, size = "M";
  const next = document.querySelector("[data-action=item]");
  document.querySelectorAll("[data-category]").forEach((b) => b.addEventListener("click", () => {
    category = b.dataset.category;
    document.querySelectorAll("[data-category]").forEach((x) => x.classList.toggle("on", x === b));
    if (next) next.disabled = false;
  }));
  document.querySelectorAll("[data-qty]").forEach((b) => b.addEventListener("click", () => {
    quantity = Math.min(99, Math.max(1, quantity + Number(b.dataset.qty)));
    document.getElementById("quantity").textContent = String(quantity);
  }));
  document.querySelectorAll("[data-size]").forEach((b) => b.addEventListener("click", () => {
    size = b.dataset.size;
    document.querySelectorAll("[data-size]").forEach((x) => x.classList.toggle("on", x === b));
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
    dropoff: () => call("/api/posting/dropoff"),
  };
  document.querySelectorAll("[data-action]").forEach((b) => b.addEventListener("click", () => actions[b.dataset.action]()));
})();
