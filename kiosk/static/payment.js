// The storage-fee page: the service holds the fee and its payment; this page sends the taps and
// reloads itself when the payment's state changes ("payment" events, passed on by kiosk.js).
"use strict";
(function () {
  const root = document.getElementById("fee");
  if (!root) return;
  const message = document.getElementById("message");
  async function post(url, then) {
    const r = await api("POST", url, {});
    if (!r.ok) { say(message, r.data.message || ""); return; }
    location.replace(then);
  }
  document.querySelectorAll("[data-action]").forEach((b) => b.addEventListener("click", () => {
    if (b.dataset.action === "pay") post("/api/fee/pay", "/fee");
    if (b.dataset.action === "cancel") post("/api/fee/cancel", "/");
  }));
  document.addEventListener("kiosk-payment", (event) => {
    if ((event.detail.state || "") !== root.dataset.state) location.replace(event.detail.state ? "/fee" : "/");
  });
  // a change before this page's event stream opened is only seen by asking
  document.addEventListener("DOMContentLoaded", async () => {
    const r = await api("GET", "/api/fee");
    if (!r.ok) { location.replace("/"); return; }
    if (r.data.state !== root.dataset.state) location.replace("/fee");
  });
})();
