// The wasmpar dashboard: plain JS, no framework. Data comes from the JSON API
// with `Authorization: Bearer <token>`; live updates from GET /v1/events
// (server-sent events, read with fetch so the header can be sent).
// Everything from the server is inserted as text, never as markup.
"use strict";

const TOKEN_KEY = "wasmpar.token";
const MAX_TASKS = 200;
const WINDOW_S = 300;

let token = null;
let events = null; // AbortController of the event stream
let retryMs = 500;
const tasks = new Map(); // id -> brief
let selected = null;
let throughput = []; // [{at: ms, calls}]

const $ = (sel) => document.querySelector(sel);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` },
  });
  if (response.status === 401) throw new Unauthorized("the server refused this token");
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.error) message = `${body.error.kind}: ${body.error.message}`;
    } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

function setState(state, text) {
  const badge = $("#connection-state");
  badge.className = `state-${state}`;
  badge.textContent = text || state;
}

// ---- login ---------------------------------------------------------------

function showLogin(message) {
  stopEvents();
  $("#app").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  setState("offline");
  $("#token-input").focus();
}

async function tryToken(candidate) {
  token = candidate;
  try {
    await api("/v1/engines");
  } catch (e) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(e instanceof Unauthorized ? "Wrong token: the server refused it." : `Cannot reach the server: ${e.message}`);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, candidate);
  start();
}

function logout(message) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin(message);
}

// ---- engines -------------------------------------------------------------

function formatBytes(n) {
  if (typeof n !== "number") return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function renderEngines(engines) {
  const body = $("#engines tbody");
  const rows = engines.map((e) =>
    el("tr", { "data-engine-id": e.id, "data-state": e.state },
      el("td", { text: e.id }),
      el("td", { class: `state-${e.state}`, text: e.state }),
      el("td", { text: e.host || "local" }),
      el("td", { class: "queued", text: e.queued }),
      el("td", { class: "completed", text: e.completed }),
      el("td", { text: formatBytes(e.memory_bytes ?? e.memory) }),
      el("td", { text: e.restarts ?? 0 }),
      el("td", { text: (e.libraries || []).join(", ") || "—" })));
  body.replaceChildren(...rows);
  $("#engine-count").textContent = `(${engines.length})`;
}

async function loadEngines() {
  const list = await api("/v1/engines");
  renderEngines(list.engines);
}

// ---- throughput chart ----------------------------------------------------

function addSample(sample) {
  throughput.push({ at: Date.parse(sample.at), calls: sample.calls });
  const oldest = Date.now() - WINDOW_S * 1000;
  throughput = throughput.filter((s) => s.at >= oldest);
}

function drawChart() {
  const canvas = $("#throughput");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 900;
  const height = canvas.clientHeight || 160;
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const left = 44, bottom = height - 18, top = 8, right = width - 8;
  const now = Date.now();
  const max = Math.max(1, ...throughput.map((s) => s.calls));
  const x = (t) => left + (right - left) * (1 - (now - t) / (WINDOW_S * 1000));
  const y = (v) => bottom - (bottom - top) * (v / max);
  g.strokeStyle = "#d9dee3";
  g.fillStyle = "#6b7580";
  g.font = "11px system-ui, sans-serif";
  g.beginPath(); g.moveTo(left, top); g.lineTo(left, bottom); g.lineTo(right, bottom); g.stroke();
  g.fillText(String(max), 4, top + 8);
  g.fillText("0", 4, bottom);
  g.fillText("−5 min", left, height - 4);
  g.fillText("now", right - 22, height - 4);
  if (throughput.length === 0) return;
  g.beginPath();
  throughput.forEach((s, i) => (i ? g.lineTo(x(s.at), y(s.calls)) : g.moveTo(x(s.at), y(s.calls))));
  g.strokeStyle = "#2563eb";
  g.lineWidth = 1.5;
  g.stroke();
  g.lineTo(x(throughput[throughput.length - 1].at), bottom);
  g.lineTo(x(throughput[0].at), bottom);
  g.closePath();
  g.fillStyle = "rgba(37, 99, 235, .12)";
  g.fill();
  canvas.dataset.samples = String(throughput.length);
  canvas.dataset.max = String(max);
}

// ---- tasks ---------------------------------------------------------------

// A task from an event (brief), a query (stored record) or GET (view), as a brief.
function brief(t) {
  const progress = t.progress || {};
  const timing = t.timing || {};
  return {
    id: t.id,
    op: t.op,
    component: t.component,
    function: t.function,
    status: t.status,
    done: t.done ?? progress.done ?? 0,
    total: t.total ?? progress.total ?? 0,
    submitted: t.submitted ?? timing.submitted,
    completed: t.completed ?? timing.completed,
    wall_ms: t.wall_ms ?? timing.wall_ms,
    error: typeof t.error === "string" ? t.error : t.error && t.error.message,
  };
}

function upsertTask(t) {
  const b = brief(t);
  for (const k of Object.keys(b)) if (b[k] === undefined) delete b[k];
  const old = tasks.get(b.id);
  // A late progress event must not undo a finish.
  if (old && ["done", "failed", "cancelled", "lost"].includes(old.status) && !["done", "failed", "cancelled", "lost"].includes(b.status)) return;
  tasks.set(b.id, { ...old, ...b });
  renderTasks();
}

function renderTasks() {
  const sorted = [...tasks.values()].sort((a, b) => Date.parse(b.submitted || 0) - Date.parse(a.submitted || 0));
  for (const t of sorted.slice(MAX_TASKS)) tasks.delete(t.id);
  const items = sorted.slice(0, MAX_TASKS).map((t) => {
    const pct = t.total ? Math.min(100, (100 * t.done) / t.total) : t.status === "done" ? 100 : 0;
    const fill = el("div");
    fill.style.width = `${pct}%`;
    const item = el("li", { class: `status-${t.status}${t.id === selected ? " selected" : ""}`, "data-task-id": t.id, "data-status": t.status, title: t.error || "" },
      el("span", { class: "id", text: t.id.slice(0, 8) }),
      el("span", { class: "name", text: `${t.component}/${t.function} (${t.op})` }),
      el("span", { class: `status status-${t.status}`, text: t.status }),
      el("div", { class: "bar", title: `${t.done}/${t.total}` }, fill),
      el("span", { class: "wall", text: typeof t.wall_ms === "number" ? `${t.wall_ms.toFixed(1)} ms` : "" }));
    item.addEventListener("click", () => showDetail(t.id));
    return item;
  });
  $("#tasks").replaceChildren(...items);
}

async function loadTasks() {
  try {
    const page = await api("/v1/tasks?limit=50");
    for (const t of page.tasks || []) upsertTask(t);
  } catch (e) {
    if (e instanceof Unauthorized) throw e;
    // An older server without the history route: the stream fills the list.
  }
}

function section(title, ...children) {
  return el("div", { class: "part" }, el("h3", { text: title }), ...children);
}

async function showDetail(id) {
  selected = id;
  renderTasks();
  $("#detail-id").textContent = id;
  let t;
  try {
    t = await api(`/v1/tasks/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e instanceof Unauthorized) return logout(e.message);
    $("#detail").replaceChildren(el("p", { class: "error", text: e.message }));
    return;
  }
  if (selected !== id) return;
  upsertTask(t);
  const timing = t.timing || {};
  const parts = [
    el("dl", {},
      el("dt", { text: "status" }), el("dd", { class: `status-${t.status}`, id: "detail-status", text: t.status }),
      el("dt", { text: "call" }), el("dd", { text: `${t.op} ${t.component}/${t.function}` }),
      el("dt", { text: "engines" }), el("dd", { text: (t.engines || []).join(", ") }),
      el("dt", { text: "progress" }), el("dd", { text: `${(t.progress || {}).done}/${(t.progress || {}).total}` }),
      el("dt", { text: "submitted" }), el("dd", { text: timing.submitted || "" }),
      el("dt", { text: "completed" }), el("dd", { text: timing.completed || "" }),
      el("dt", { text: "wall" }), el("dd", { text: typeof timing.wall_ms === "number" ? `${timing.wall_ms.toFixed(1)} ms` : "" })),
  ];
  if (t.error) {
    parts.push(section(`error: ${t.error.kind}`, el("pre", { class: "error", text: t.error.message }),
      ...(t.error.errors || []).map((f) => el("pre", { class: "error", text: `[${f.engine}] ${f.function}: ${f.message}${f.trace ? "\n" + f.trace : ""}` }))));
  }
  if (t.delivered) {
    parts.push(el("p", { class: "muted", text: "The result and outputs went to the client that waited for them and were not kept." }));
  } else if (t.result !== undefined && t.result !== null) {
    let text = JSON.stringify(t.result);
    if (text.length > 4000) text = `${text.slice(0, 4000)} … (${text.length} characters)`;
    parts.push(section("result", el("pre", { id: "detail-result", text })));
  }
  for (const out of t.outputs || []) {
    const children = [];
    if (out.stdout) children.push(el("pre", { class: "stdout", text: out.stdout }));
    if (out.stderr) children.push(el("pre", { class: "stderr error", text: out.stderr }));
    (out.images || []).forEach((png, i) =>
      children.push(el("img", { class: "output-image", src: `data:image/png;base64,${png}`, alt: `engine ${out.engine}, image ${i + 1}` })));
    parts.push(section(`[engine ${out.engine}]`, ...children));
  }
  $("#detail").replaceChildren(...parts);
}

// ---- components ----------------------------------------------------------

async function loadComponents() {
  const list = await api("/v1/components");
  const items = (list.components || []).map((c) =>
    el("div", { class: "component", "data-component": c.name },
      el("strong", { text: c.name }), " ",
      el("code", { class: "muted", text: `${(c.digest || "").slice(0, 19)} · ${formatBytes(c.size)}` }),
      el("ul", {}, ...(c.exports || []).map((f) => el("li", {}, el("code", { class: "signature", text: `${f.name}: ${f.signature || ""}` })))),
      (c.imports || []).length ? el("div", { class: "muted", text: `imports ${c.imports.join(", ")}` }) : null,
      (c.interfaces || []).length ? el("div", { class: "muted", text: `exports ${c.interfaces.join(", ")}` }) : null));
  $("#components").replaceChildren(...(items.length ? items : [el("p", { class: "muted", text: "No components uploaded." })]));
}

// ---- the event stream ----------------------------------------------------

function handle(event) {
  switch (event.type) {
    case "hello":
      throughput = [];
      (event.throughput || []).forEach(addSample);
      if ((event.engines || []).length) renderEngines(event.engines);
      drawChart();
      break;
    case "engines":
      renderEngines(event.engines);
      addSample(event.throughput);
      drawChart();
      break;
    case "task_submitted":
    case "task_finished":
      upsertTask(event.task);
      if (event.task.id === selected) showDetail(selected);
      break;
    case "task_progress": {
      const t = tasks.get(event.id);
      if (t) upsertTask({ ...t, done: event.done, total: event.total });
      break;
    }
    case "components_changed":
      loadComponents().catch(() => {});
      break;
    case "lagged":
      refresh();
      break;
  }
}

function stopEvents() {
  if (events) events.abort();
  events = null;
}

async function connect() {
  stopEvents();
  const controller = new AbortController();
  events = controller;
  try {
    const response = await fetch("/v1/events", { headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" }, signal: controller.signal });
    if (response.status === 401) return logout("The server refused the token.");
    if (!response.ok || !response.body) throw new Error(`events: ${response.status}`);
    setState("live");
    retryMs = 500;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (data) {
          try { handle(JSON.parse(data)); } catch (e) { console.error("bad event", e, data); }
        }
      }
    }
  } catch (e) {
    if (controller.signal.aborted) return;
    console.warn("event stream:", e.message);
  }
  if (events !== controller) return;
  setState("offline", "reconnecting");
  retryMs = Math.min(retryMs * 2, 10000);
  setTimeout(() => { if (events === controller && token) { refresh(); connect(); } }, retryMs);
}

function refresh() {
  Promise.all([loadEngines(), loadTasks(), loadComponents()]).catch((e) => {
    if (e instanceof Unauthorized) logout(e.message);
  });
}

function start() {
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#logout").hidden = false;
  refresh();
  drawChart();
  connect();
}

function init() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get("token");
  if (given) {
    // Out of the address bar and history at once.
    history.replaceState(null, "", location.pathname + location.search);
  }
  $("#login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = $("#token-input").value.trim();
    if (value) tryToken(value);
  });
  $("#logout").addEventListener("click", () => logout(""));
  window.addEventListener("resize", drawChart);
  setInterval(drawChart, 5000); // slide the time axis when nothing arrives
  const saved = given || sessionStorage.getItem(TOKEN_KEY);
  if (saved) tryToken(saved);
  else showLogin("");
}

document.addEventListener("DOMContentLoaded", init);
