// The daily close page (staff): run the close of a day, print its slip. The service does the work.
"use strict";
(function () {
  const form = document.getElementById("close-form");
  if (!form) return;
  const message = document.getElementById("message");
  async function post(url, body) {
    const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}), credentials: "same-origin" });
    let data = {};
    try { data = await r.json(); } catch (e) { /* no body */ }
    return { ok: r.ok, data };
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const day = document.getElementById("day").value || null;
    const r = await post("/api/staff/close", { day });
    if (!r.ok) { message.textContent = r.data.message || ""; return; }
    location.replace("/staff/close?day=" + encodeURIComponent(r.data.day));
  });
  const topUp = document.getElementById("top-up-form");
  if (topUp) topUp.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = document.getElementById("top-up-yuan").value.trim();
    const [yuan, fen = ""] = text.split(".");
    const amount = Number(yuan) * 100 + Number((fen + "00").slice(0, 2));  // exact: no floating point
    const r = await post("/api/staff/balance/top-ups",
      { amount_fen: amount, reference: document.getElementById("top-up-reference").value.trim() });
    if (!r.ok) { message.textContent = r.data.message || ""; return; }
    location.reload();
  });
  const print = document.getElementById("print");
  if (print) print.addEventListener("click", async () => {
    const r = await post("/api/staff/close/print?day=" + encodeURIComponent(document.body.dataset.day), {});
    message.textContent = r.ok ? "✓" : (r.data.message || "");
  });
})();
