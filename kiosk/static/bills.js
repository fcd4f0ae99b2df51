// The bill page: choose the bill, type the number on the keypad, pick the amount; the service checks
// it (and the station's prepaid balance) and then asks for the payment code. The page reloads when
// the payment's state changes ("payment" events, passed on by kiosk.js).
"use strict";
(function () {
  const root = document.getElementById("bills");
  if (!root) return;
  const message = document.getElementById("message");
  const next = document.querySelector("[data-action=quote]");
  const account = document.getElementById("account");
  let service = null;
  let amount = null;
  const ready = () => { if (next) next.disabled = !(service && amount && account && account.value.length >= 6); };
  function choose(selector, button) {
    document.querySelectorAll(selector).forEach((b) => b.setAttribute("aria-checked", String(b === button)));
  }
  document.querySelectorAll("[data-service]").forEach((b) => b.addEventListener("click", () => {
    service = b.dataset.service; choose("[data-service]", b); ready();
  }));
  document.querySelectorAll("[data-amount]").forEach((b) => b.addEventListener("click", () => {
    amount = Number(b.dataset.amount); choose("[data-amount]", b); ready();
  }));
  if (account) account.addEventListener("input", ready);
  async function post(url, body, then) {
    const r = await api("POST", url, body || {});
    if (!r.ok) { say(message, r.data.message || ""); return; }
    location.replace(then);
  }
  if (next) next.addEventListener("click", () => post("/api/bills", { service, account: account.value, amount_fen: amount }, "/bills"));
  document.querySelectorAll("[data-action=end]").forEach((b) => b.addEventListener("click", () => post("/api/bills/end", {}, "/")));
  document.addEventListener("kiosk-payment", (event) => {
    if ((event.detail.state || "") !== root.dataset.state) location.replace("/bills");
  });
  document.addEventListener("DOMContentLoaded", async () => {
    if (!root.dataset.state) return;
    const r = await api("GET", "/api/bills");
    const state = r.ok ? r.data.state : "";
    if (state !== root.dataset.state) location.replace(state ? "/bills" : "/");
  });
})();
