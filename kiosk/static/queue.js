// The counter queue: the resident's ticket page, the staff screen, and the home screen's board.
// The queue lives in the service; this script posts what was tapped and shows what comes back.
// Self-contained (its own fetch helper): the staff screen does not load kiosk.js.
"use strict";
(function () {
  const pageName = document.body.dataset.page;

  async function call(method, url, body) {
    const r = await fetch(url, {method, headers: body ? {"Content-Type": "application/json"} : {},
                                body: body ? JSON.stringify(body) : undefined, credentials: "same-origin"});
    let data = {};
    try { data = await r.json(); } catch (e) { data = {}; }
    return {ok: r.ok, status: r.status, data};
  }
  const show = (id, text) => { const el = document.getElementById(id); if (el) el.textContent = text || ""; };

  // ---- home screen: <div id="queue-board"> with data-serving/data-waiting texts ("{number}", ...)
  function board() {
    const root = document.getElementById("queue-board");
    if (!root) return;
    const refresh = async () => {
      let r;
      try { r = await call("GET", "/api/queue"); } catch (e) { return; }
      if (!r.ok) { root.hidden = true; return; }
      const b = r.data;
      root.hidden = false;
      const serving = document.getElementById("queue-serving");
      if (serving) {
        serving.textContent = b.serving
          ? root.dataset.serving.replace("{number}", b.serving.number).replace("{counter}", b.serving.counter || "")
          : root.dataset.idle;
      }
      const wait = document.getElementById("queue-wait");
      if (wait) {
        wait.textContent = b.waiting.total
          ? root.dataset.waiting.replace("{count}", b.waiting.total).replace("{minutes}", b.wait_minutes)
          : root.dataset.empty;
      }
    };
    refresh();
    setInterval(refresh, 5000);
  }

  // ---- resident: take a ticket, or a priority ticket by ID card
  function resident() {
    const root = document.getElementById("queue");
    if (!root) return;
    let busy = false;
    async function take() {
      if (busy) return;
      busy = true;
      const r = await call("POST", "/api/queue/tickets");
      if (r.ok) { location.replace(r.data.url); return; }
      busy = false;
      show("message", r.data.message);
      const result = document.getElementById("result-step");
      if (result) result.hidden = false;
    }
    async function agree() {
      if (busy) return;
      busy = true;
      document.getElementById("notice-step").hidden = true;
      document.getElementById("card-step").hidden = false;
      const r = await call("POST", "/api/queue/tickets/priority", {agreed: true});
      busy = false;
      if (r.status === 201) { location.replace(r.data.url); return; }
      if (r.ok && r.data.outcome === "cancelled") { location.replace("/queue"); return; }
      document.getElementById("card-step").hidden = true;
      document.getElementById("result-step").hidden = false;
      show("message", r.data.message);
    }
    root.addEventListener("click", (event) => {
      const action = event.target.closest("[data-action]");
      if (!action) return;
      const what = action.dataset.action;
      if (what === "take") take();
      else if (what === "agree") agree();
      else if (what === "cancel") call("DELETE", "/api/queue/card");
    });
  }

  // ---- staff screen
  function staffLogin() {
    const form = document.getElementById("staff-login-form");
    if (!form) return;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const r = await call("POST", "/api/staff/session", {login: document.getElementById("login").value,
                                                         password: document.getElementById("password").value});
      if (r.ok) { location.replace("/queue/staff"); return; }
      show("message", r.data.message);
      document.getElementById("password").value = "";
    });
  }

  function staff() {
    const texts = document.getElementById("texts").dataset;
    const counterInput = document.getElementById("counter");
    counterInput.value = localStorage.getItem("pk-queue-counter") || counterInput.value;
    counterInput.addEventListener("change", () => localStorage.setItem("pk-queue-counter", counterInput.value.trim()));
    const counter = () => counterInput.value.trim();

    function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }
    function button(label, handler) {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = label; b.addEventListener("click", handler);
      const td = document.createElement("td"); td.append(b); return td;
    }
    async function act(method, url, body) {
      const r = await call(method, url, body);
      if (r.status === 401) { location.replace("/queue/staff"); return null; }
      show("message", r.ok ? "" : r.data.message);
      await refresh();
      return r.ok ? r.data : null;
    }
    async function refresh() {
      const r = await call("GET", "/api/queue/staff");
      if (r.status === 401) { location.replace("/queue/staff"); return; }
      if (!r.ok) { show("message", r.data.message); return; }
      const s = r.data;
      document.getElementById("called").replaceChildren(...s.called.map((t) => {
        const tr = document.createElement("tr");
        tr.dataset.number = t.number;
        tr.append(cell(t.number + (t.priority ? " · " + texts.priority : "")), cell(texts.counter + " " + t.counter),
                  button(texts.recall, () => act("POST", `/api/queue/tickets/${t.number}/recall`, {counter: counter()})),
                  button(texts.skip, () => act("POST", `/api/queue/tickets/${t.number}/skip`)));
        return tr;
      }));
      document.getElementById("counts").textContent =
        `(${s.waiting.total}: ${texts.priority} ${s.waiting.priority})`;
      const estimate = document.getElementById("estimate");
      estimate.textContent = estimate.dataset.text.replace("{avg}", s.average_seconds).replace("{counters}", s.counters);
      const rows = s.waiting_tickets.map((t) => {
        const tr = document.createElement("tr");
        tr.dataset.number = t.number;
        const label = t.number + (t.priority ? " · " + texts.priority : "") + (t.state === "skipped" ? " · " + texts.skipped : "");
        tr.append(cell(label), cell(new Date(t.taken_at * 1000).toLocaleTimeString()));
        if (t.state === "skipped") {
          tr.append(button(texts.recall, () => act("POST", `/api/queue/tickets/${t.number}/recall`, {counter: counter()})));
        } else if (!t.priority) {
          tr.append(button(texts.makePriority, () => act("POST", `/api/queue/tickets/${t.number}/priority`)));
        }
        return tr;
      });
      if (!rows.length) { const tr = document.createElement("tr"); tr.append(cell(texts.none)); rows.push(tr); }
      document.getElementById("waiting").replaceChildren(...rows);
    }
    document.getElementById("call-next").addEventListener("click", () => act("POST", "/api/queue/call", {counter: counter()}));
    document.getElementById("finish").addEventListener("click", () => act("POST", "/api/queue/finish", {counter: counter()}));
    document.getElementById("issue-priority").addEventListener("click", () => act("POST", "/api/queue/staff/tickets", {priority: true}));
    document.getElementById("issue-normal").addEventListener("click", () => act("POST", "/api/queue/staff/tickets", {priority: false}));
    document.getElementById("logout").addEventListener("click", async () => {
      await call("DELETE", "/api/staff/session");
      location.replace("/queue/staff");
    });
    refresh();
    setInterval(refresh, 3000);
  }

  if (pageName === "queue") resident();
  else if (pageName === "queue-staff-login") staffLogin();
  else if (pageName === "queue-staff") staff();
  board();
})();
