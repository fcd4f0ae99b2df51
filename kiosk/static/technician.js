// Technician page: polls the technician API (every door once a second, the rest every few seconds)
// and posts the door test, printer test, self-test and open-all actions. A 401 means the session
// ended (120 s idle): back to the login form.
"use strict";
const page = document.body.dataset.page;
const texts = document.getElementById("texts") ? document.getElementById("texts").dataset : {};
const messageBox = document.getElementById("message");

function say(text, ok) {
  if (!messageBox) return;
  messageBox.textContent = text || "";
  messageBox.classList.toggle("ok", !!ok);
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(method, url, body) {
  const r = await fetch(url, {method, headers: body ? {"Content-Type": "application/json"} : {},
                              body: body ? JSON.stringify(body) : undefined, credentials: "same-origin"});
  if (r.status === 401 && page === "technician") { location.replace("/technician"); throw new Error("logged out"); }
  const data = r.headers.get("content-type", "").includes("json") ? await r.json() : null;
  if (!r.ok) throw new Error((data && data.message) || r.statusText);
  return data;
}

if (page === "technician-login") {
  document.getElementById("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", "/api/technician/session", {login: document.getElementById("login").value,
                                                   password: document.getElementById("password").value});
      location.replace("/technician");
    } catch (err) { say(err.message); document.getElementById("password").value = ""; }
  });
}

function doorCell(d) {
  const word = texts["door" + d.door.charAt(0).toUpperCase() + d.door.slice(1)] || d.door;
  const item = d.item === true ? " ▣" : d.item === false ? " □" : "";
  const last = d.last_command ? new Date(d.last_command.at * 1000).toLocaleTimeString() + " " + d.last_command.what : "";
  return el("div", {class: "door " + d.door, "data-label": d.label, "data-door": d.door, title: last},
            el("span", {class: "label"}, d.label + item),
            el("span", {class: "state-word"}, word),
            el("span", {class: "cstate"}, d.state),
            last ? el("small", {}, last) : null);
}

async function refreshDoors() {
  const doors = await api("GET", "/api/tech/doors");
  const boards = new Map();
  for (const d of doors) {
    const key = d.bank + " · " + (texts.board || "board") + " " + d.board;
    if (!boards.has(key)) boards.set(key, []);
    boards.get(key).push(d);
  }
  const wall = document.getElementById("wall");
  wall.replaceChildren(...[...boards].map(([key, list]) =>
    el("div", {class: "board"}, el("h3", {}, key), el("div", {class: "doors"}, ...list.map(doorCell)))));
  const select = document.getElementById("pulse-label");
  if (select.options.length !== doors.length) {
    select.replaceChildren(...doors.map((d) => el("option", {value: d.label}, d.label)));
  }
}

function histogram(h) {
  const values = Object.values(h), top = Math.max(1, ...values);
  return el("div", {class: "hist", title: Object.entries(h).map(([k, v]) => k + ": " + v).join(", ")},
            ...values.map((v) => el("span", {style: "height:" + Math.max(2, Math.round(46 * v / top)) + "px"})));
}

async function refreshBus() {
  const banks = await api("GET", "/api/tech/bus");
  const box = document.getElementById("bus");
  box.replaceChildren(...banks.map((b) => {
    if (!b.available) return el("p", {}, b.bank + " (" + b.protocol + "): " + texts.noStats);
    const head = el("p", {}, `${b.bank} (${b.protocol}): ${b.frames_per_second} ${texts.fps}, ${b.replies} ${texts.replies}, ` +
                    `${b.timeouts} ${texts.timeouts}, ${b.checksum_errors} ${texts.checksumErrors}, ${b.retries} ${texts.retries}, ` +
                    `${b.dropped_bytes} ${texts.dropped}`);
    const rows = Object.entries(b.boards).map(([board, s]) => el("tr", {},
      el("td", {}, texts.board + " " + board), el("td", {}, s.replies), el("td", {}, s.timeouts),
      el("td", {}, histogram(s.latency_histogram))));
    return el("div", {}, head, el("table", {}, el("tr", {}, el("th", {}, texts.board), el("th", {}, texts.replies),
                                                   el("th", {}, texts.timeouts), el("th", {}, "ms")), ...rows));
  }));
}

function okMark(ok) { return el("span", {class: ok ? "ok" : "fail"}, ok ? texts.ok : texts.fail); }

async function refreshDevices() {
  const st = await api("GET", "/api/tech/station");
  const rows = [];
  for (const b of st.banks) {
    rows.push(el("tr", {}, el("td", {}, b.name), el("td", {}, (b.model || b.protocol) + (b.firmware ? " " + b.firmware : "")),
                 el("td", {}, b.url || ""), el("td", {}, okMark(b.ok))));
  }
  for (const d of st.devices) {
    rows.push(el("tr", {}, el("td", {}, d.name), el("td", {}, d.model || d.backend || d.kind), el("td", {}, d.url || ""),
                 el("td", {}, okMark(d.ok))));
  }
  rows.push(el("tr", {}, el("td", {}, "database"), el("td", {}, "schema " + st.database.schema),
               el("td", {}, st.database.file), el("td", {}, okMark(true))));
  document.getElementById("devices").replaceChildren(el("table", {}, ...rows));
  const printers = st.devices.filter((d) => d.name.endsWith("_printer")).map((d) => d.name);
  const choice = document.getElementById("printer-choice");
  if (choice.options.length !== printers.length) {
    choice.replaceChildren(...printers.map((name) => el("option", {value: name}, name)));
  }
  document.getElementById("printer-test").disabled = printers.length === 0;
}

async function refreshLogs() {
  const events = await api("GET", "/api/tech/logs?limit=30");
  document.getElementById("logs").replaceChildren(el("table", {}, ...events.map((e) => el("tr", {},
    el("td", {}, new Date(e.at * 1000).toLocaleString()), el("td", {}, e.kind), el("td", {}, e.actor),
    el("td", {}, e.compartment || ""), el("td", {}, JSON.stringify(e.detail))))));
}

async function loop(fn, ms) {
  for (;;) {
    try { await fn(); } catch (err) { if (err.message !== "logged out") say(err.message); }
    await new Promise((r) => setTimeout(r, ms));
  }
}

if (page === "technician") {
  loop(refreshDoors, 1000);
  loop(refreshBus, 2000);
  loop(refreshDevices, 5000);
  loop(refreshLogs, 5000);
  document.getElementById("pulse-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const label = document.getElementById("pulse-label").value;
    try {
      await api("POST", `/api/tech/doors/${encodeURIComponent(label)}/pulse`,
                {reason: document.getElementById("pulse-reason").value});
      say(texts.pulsed.replace("{label}", label), true);
    } catch (err) { say(err.message); }
  });
  document.getElementById("printer-test").addEventListener("click", async () => {
    const printer = document.getElementById("printer-choice").value || null;
    try { await api("POST", "/api/tech/printer/test", {printer}); say(texts.printed, true); } catch (err) { say(err.message); }
  });
  document.getElementById("selftest").addEventListener("click", async () => {
    try {
      const report = await api("GET", "/api/tech/selftest");
      document.getElementById("selftest-result").replaceChildren(el("table", {}, ...report.checks.map((c) =>
        el("tr", {}, el("td", {}, okMark(c.ok)), el("td", {}, c.check), el("td", {}, c.detail)))));
    } catch (err) { say(err.message); }
  });
  document.getElementById("open-all-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("POST", "/api/tech/open-all", {reason: document.getElementById("open-all-reason").value,
                                                         confirmation: document.getElementById("open-all-confirm").value});
      const opened = Object.values(r.results).filter((v) => v === "opened").length;
      say(texts.opened.replace("{n}", opened), true);
    } catch (err) { say(err.message); }
  });
  document.getElementById("logout").addEventListener("click", async () => {
    try { await api("DELETE", "/api/technician/session"); } catch (err) { /* already over */ }
    location.replace("/technician");
  });
}
