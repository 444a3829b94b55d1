// ferrometal fleet view. Plain JavaScript, no libraries, nothing from another origin.
// Data: /ui/api/stream (Server-Sent Events: the whole fleet, then what changed);
// one Server's page: /ui/api/servers/<name>. Text from the API is only ever set as text.
"use strict";

const STATES = ["Error", "New", "Initial", "Discovery", "Available", "Reserved", "Released", "Parked"];
const COLOURS = {
  Available: "#2e9d5b", Discovery: "#2f6fdb", Initial: "#8a94a6", New: "#b4bccb",
  Error: "#d23c3c", Reserved: "#8350c8", Released: "#1c9aa0", Parked: "#d99a1e",
};
const STUCK = "#f07b12";
const LOCATION_LABELS = ["location", "rack", "shelf", "height"].map((part) => `metadata.metal.ironcore.dev/${part}`);
const LIST_LIMIT = 200;

const fleet = { servers: new Map(), bmcs: new Map(), counts: null, version: 0 };
let meta = null;
let source = null;
let selected = null;
let renderQueued = false;
let layout = [];
const stats = { firstRender: null, updates: 0, lastUpdateMs: 0, maxUpdateMs: 0, renders: 0 };
window.__ferrometal = stats;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// ---- login ----

async function login(token) {
  const response = await fetch("/ui/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
    credentials: "same-origin",
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `login refused (${response.status})`);
  return body;
}

function showLogin(message) {
  if (source) { source.close(); source = null; }
  $("app").hidden = true;
  $("logout").hidden = true;
  $("user").textContent = "";
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setConnection("lost", "logged out");
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  try {
    await login(token);
    $("token").value = "";
    start();
  } catch (error) {
    $("login-error").textContent = error.message;
  }
});

$("logout").addEventListener("click", async () => {
  await fetch("/ui/logout", { method: "POST", credentials: "same-origin" });
  showLogin("Logged out.");
});

// ---- the stream ----

function setConnection(state, text) {
  const node = $("connection");
  node.dataset.state = state;
  node.textContent = text;
}

async function start() {
  // Is there a session? (A 401 means no.)
  const response = await fetch("/ui/api/session", { credentials: "same-origin" });
  if (response.status === 401 || response.status === 403) {
    const body = await response.json().catch(() => ({}));
    showLogin(response.status === 403 ? body.error : "");
    return;
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  connect();
}

function connect() {
  if (source) source.close();
  setConnection("connecting", "connecting…");
  source = new EventSource("/ui/api/stream");
  source.addEventListener("meta", (event) => {
    meta = JSON.parse(event.data);
    $("user").textContent = meta.user;
    $("standby").hidden = meta.leader;
  });
  source.addEventListener("fleet", (event) => {
    const started = performance.now();
    apply(JSON.parse(event.data));
    render();
    const took = performance.now() - started;
    stats.updates += 1;
    stats.lastUpdateMs = took;
    stats.maxUpdateMs = Math.max(stats.maxUpdateMs, took);
    if (stats.firstRender === null) stats.firstRender = performance.now();
    setConnection("live", "live");
  });
  source.addEventListener("error", async () => {
    setConnection("lost", "reconnecting…");
    if (source.readyState === EventSource.CLOSED) {
      // Closed for good: perhaps the session ended.
      const response = await fetch("/ui/api/session", { credentials: "same-origin" });
      if (response.status === 401 || response.status === 403) showLogin("The session ended; log in again.");
      else setTimeout(connect, 2000);
    }
  });
}

function apply(message) {
  if (message.full) { fleet.servers.clear(); fleet.bmcs.clear(); }
  const change = message.fleet;
  for (const row of change.servers) {
    row.place = LOCATION_LABELS.map((key) => row.labels[key] || "");
    fleet.servers.set(row.name, row);
  }
  for (const name of change.removedServers) fleet.servers.delete(name);
  for (const row of change.bmcs) fleet.bmcs.set(row.name, row);
  for (const name of change.removedBmcs) fleet.bmcs.delete(name);
  fleet.counts = change.counts;
  fleet.version = message.version;
  if (selected && change.servers.some((row) => row.name === selected)) refreshDetail();
}

// ---- filters ----

function filters() {
  const labels = $("filter-label").value.split(",").map((s) => s.trim()).filter(Boolean)
    .map((pair) => { const at = pair.indexOf("="); return at < 0 ? [pair, null] : [pair.slice(0, at).trim(), pair.slice(at + 1).trim()]; });
  return {
    state: $("filter-state").value,
    bmc: $("filter-bmc").value,
    name: $("filter-name").value.trim(),
    action: $("filter-action").checked,
    labels,
  };
}

function bmcDown(row) {
  if (row.bmcReachable === false) return true;
  const bmc = row.bmc && fleet.bmcs.get(row.bmc);
  return !!(bmc && bmc.ready === false);
}

function needsAction(row) {
  return row.state === "Error" || row.stuck || bmcDown(row);
}

function matches(row, f) {
  if (f.state === "stuck") { if (!row.stuck) return false; }
  else if (f.state === "bmc-unreachable") { if (!bmcDown(row)) return false; }
  else if (f.state && row.state !== f.state) return false;
  if (f.bmc && row.bmc !== f.bmc) return false;
  if (f.name && !row.name.includes(f.name)) return false;
  if (f.action && !needsAction(row)) return false;
  for (const [key, value] of f.labels) {
    if (!(key in row.labels)) return false;
    if (value !== null && row.labels[key] !== value) return false;
  }
  return true;
}

for (const id of ["filter-state", "filter-bmc", "filter-action"]) $(id).addEventListener("change", queueRender);
for (const id of ["filter-label", "filter-name"]) $(id).addEventListener("input", queueRender);
$("filter-clear").addEventListener("click", () => {
  $("filter-state").value = ""; $("filter-bmc").value = ""; $("filter-label").value = "";
  $("filter-name").value = ""; $("filter-action").checked = false; queueRender();
});

// ---- rendering ----

function queueRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

// Plain comparisons: localeCompare is slow enough to matter at 10,000 rows.
function byName(a, b) { return a.name < b.name ? -1 : a.name > b.name ? 1 : 0; }
function byActionThenName(a, b) { return (needsAction(b) - needsAction(a)) || byName(a, b); }

function render() {
  stats.renders += 1;
  const f = filters();
  const rows = [];
  for (const row of fleet.servers.values()) if (matches(row, f)) rows.push(row);
  rows.sort(byActionThenName);
  renderCounts(f);
  renderOptions();
  renderRack(rows);
  renderList(rows);
  renderBmcProblems();
}

// Per BMC: the ones whose Ready condition is false, with the reason and message (clicking
// one filters the Servers by it).
function renderBmcProblems() {
  const down = [...fleet.bmcs.values()].filter((bmc) => bmc.ready === false).sort(byName);
  $("bmc-problems").hidden = down.length === 0;
  $("bmc-problems-count").textContent = `${down.length} of ${fleet.bmcs.size}`;
  $("bmcs").tBodies[0].replaceChildren(...down.slice(0, LIST_LIMIT).map((bmc) =>
    el("tr", { "data-bmc": bmc.name, onclick: () => { $("filter-bmc").value = bmc.name; queueRender(); } },
      el("td", { text: bmc.name }), el("td", { class: "bad", text: bmc.reason || "–" }), el("td", { text: bmc.message || "" }))));
}

function renderCounts(f) {
  const counts = fleet.counts;
  if (!counts) return;
  const box = $("counts");
  box.replaceChildren();
  const tile = (key, label, n, action, colour) => {
    const node = el("button", {
      type: "button", class: `tile${action ? " action" : ""}${n === 0 ? " zero" : ""}`,
      "data-filter": key, "aria-pressed": f.state === key ? "true" : "false",
      onclick: () => { $("filter-state").value = f.state === key ? "" : key; queueRender(); },
    }, el("span", { class: "n", text: n }), el("span", { class: "label", text: label }));
    node.style.borderLeftColor = colour;
    box.append(node);
  };
  tile("Error", "Error", counts.states.Error || 0, true, COLOURS.Error);
  tile("stuck", "Stuck", counts.needsAction.stuck, true, STUCK);
  tile("bmc-unreachable", "BMC unreachable", counts.needsAction.unreachableBmcs, true, COLOURS.Error);
  for (const state of STATES) if (state !== "Error") tile(state, state, counts.states[state] || 0, false, COLOURS[state]);
  for (const [state, n] of Object.entries(counts.states)) if (!STATES.includes(state)) tile(state, state, n, false, "#555");
  box.append(el("span", { class: "hint", text: `${counts.servers} servers, ${counts.bmcs} BMCs` }));
}

let optionsKey = "";
function renderOptions() {
  const bmcs = [...fleet.bmcs.keys()].sort();
  const key = `${bmcs.length}:${bmcs[0] || ""}:${bmcs[bmcs.length - 1] || ""}`;
  if (key === optionsKey) return;
  optionsKey = key;
  const state = $("filter-state");
  const current = state.value;
  state.replaceChildren(el("option", { value: "", text: "all" }),
    el("option", { value: "stuck", text: "stuck" }), el("option", { value: "bmc-unreachable", text: "BMC unreachable" }),
    ...STATES.map((s) => el("option", { value: s, text: s })));
  state.value = current;
  const bmc = $("filter-bmc");
  const chosen = bmc.value;
  bmc.replaceChildren(el("option", { value: "", text: "all" }), ...bmcs.slice(0, 5000).map((b) => el("option", { value: b, text: b })));
  bmc.value = chosen;
  const legend = $("legend");
  if (!legend.childElementCount) {
    for (const state of STATES) legend.append(el("span", {}, colourDot(COLOURS[state]), state));
    legend.append(el("span", {}, colourDot(STUCK), "stuck (outline)"));
    legend.append(el("span", {}, colourDot("#000"), "BMC unreachable (dark outline)"));
  }
}

function colourDot(colour) { const i = el("i"); i.style.background = colour; return i; }

// Racks: one canvas for the whole fleet (10,000 servers draw in a few milliseconds). Racks
// from the location labels show their units top to bottom; servers without labels are
// grouped by BMC, and those whose BMC has no other server share one block.
function renderRack(rows) {
  const groups = new Map();
  const perBmc = new Map();
  for (const row of rows) if (!row.place[1]) perBmc.set(row.bmc, (perBmc.get(row.bmc) || 0) + 1);
  for (const row of rows) {
    const [location, rack] = row.place;
    const key = rack ? `${location || "?"} / ${rack}`
      : perBmc.get(row.bmc) > 1 ? `BMC ${row.bmc || "none"}` : "one server per BMC, no location labels";
    if (!groups.has(key)) groups.set(key, { key, racked: !!rack, shared: !rack && perBmc.get(row.bmc) === 1, rows: [] });
    groups.get(key).rows.push(row);
  }
  const ordered = [...groups.values()].sort((a, b) => (b.racked - a.racked) || (a.shared - b.shared) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const canvas = $("rack-canvas");
  const width = canvas.clientWidth || 800;
  const cell = 12, gap = 2, pad = 10, labelHeight = 14;
  layout = [];
  // Racked groups: a column each; unracked groups flow as small blocks.
  let x = 0, y = 0, lineHeight = 0;
  const boxes = [];
  for (const group of ordered) {
    const wide = Math.max(1, Math.floor((width - 4) / (cell + gap)));
    const columns = group.racked ? 1 : group.shared ? Math.min(wide, group.rows.length)
      : Math.min(8, Math.max(1, Math.ceil(Math.sqrt(group.rows.length))));
    const lines = Math.ceil(group.rows.length / columns);
    const w = Math.max(columns * (cell + gap), group.shared ? 240 : 90);
    const h = labelHeight + lines * (cell + gap);
    if (x > 0 && x + w > width) { x = 0; y += lineHeight + pad; lineHeight = 0; }
    boxes.push({ group, x, y, w, h, columns });
    x += w + pad;
    lineHeight = Math.max(lineHeight, h);
  }
  const height = Math.max(40, y + lineHeight + 4);
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.floor(width * ratio);
  canvas.height = Math.floor(height * ratio);
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "10px sans-serif";
  ctx.textBaseline = "top";
  for (const box of boxes) {
    ctx.fillStyle = "#5d6778";
    const label = box.group.key.length * 6 > box.w ? `${box.group.key.slice(0, Math.floor(box.w / 6) - 1)}…` : box.group.key;
    ctx.fillText(`${label}`, box.x, box.y);
    const members = box.group.racked
      ? box.group.rows.slice().sort((a, b) => (Number(b.place[3]) || 0) - (Number(a.place[3]) || 0) || byName(a, b))
      : box.group.rows;
    members.forEach((row, i) => {
      const cx = box.x + (i % box.columns) * (cell + gap);
      const cy = box.y + labelHeight + Math.floor(i / box.columns) * (cell + gap);
      ctx.fillStyle = COLOURS[row.state] || "#555";
      ctx.fillRect(cx, cy, cell, cell);
      if (row.stuck || bmcDown(row)) {
        ctx.strokeStyle = row.stuck ? STUCK : "#000";
        ctx.lineWidth = 2;
        ctx.strokeRect(cx + 1, cy + 1, cell - 2, cell - 2);
      }
      if (row.name === selected) {
        ctx.strokeStyle = "#1d2430"; ctx.lineWidth = 1; ctx.strokeRect(cx - 1.5, cy - 1.5, cell + 3, cell + 3);
      }
      layout.push([cx, cy, row.name]);
    });
  }
}

function serverAt(event) {
  const canvas = $("rack-canvas");
  const bounds = canvas.getBoundingClientRect();
  const x = event.clientX - bounds.left, y = event.clientY - bounds.top;
  for (const [cx, cy, name] of layout) if (x >= cx && x < cx + 12 && y >= cy && y < cy + 12) return name;
  return null;
}

$("rack-canvas").addEventListener("click", (event) => { const name = serverAt(event); if (name) openServer(name); });
$("rack-canvas").addEventListener("mousemove", (event) => {
  const name = serverAt(event);
  const row = name && fleet.servers.get(name);
  $("rack-canvas").title = row ? `${row.name}: ${row.state}${row.stuck ? " (stuck)" : ""}` : "";
});
window.addEventListener("resize", queueRender);

function since(row) {
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(row.since)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}

function stateBadge(state) { return el("span", { class: "state", "data-state": state, text: state }); }

function renderList(rows) {
  const body = $("servers").tBodies[0];
  const shown = rows.slice(0, LIST_LIMIT);
  body.replaceChildren(...shown.map((row) => {
    const bmc = row.bmc && fleet.bmcs.get(row.bmc);
    const reachable = bmcDown(row) ? el("span", { class: "bad", text: bmc && bmc.reason ? `no (${bmc.reason})` : "no" })
      : row.bmcReachable === true || (bmc && bmc.ready) ? el("span", { class: "good", text: "yes" }) : "–";
    return el("tr", { "data-server": row.name, class: row.name === selected ? "selected" : null, onclick: () => openServer(row.name) },
      el("td", { text: row.name }),
      el("td", {}, stateBadge(row.state)),
      el("td", {}, row.stuck ? el("span", { class: "stuck", text: `${since(row)} stuck` }) : since(row)),
      el("td", { text: row.discoveryReason || "–" }),
      el("td", { text: row.power || "–" }),
      el("td", { text: row.bmc || "–" }),
      el("td", {}, reachable));
  }));
  $("shown").textContent = `${rows.length} of ${fleet.servers.size}`;
  $("more").textContent = rows.length > LIST_LIMIT ? `and ${rows.length - LIST_LIMIT} more: refine the filters` : "";
}

// The time in state moves on without updates.
setInterval(() => { if (!$("app").hidden) renderList(currentRows()); }, 5000);
function currentRows() {
  const f = filters();
  const rows = [...fleet.servers.values()].filter((row) => matches(row, f));
  rows.sort(byActionThenName);
  return rows;
}

// ---- one Server ----

function openServer(name) { location.hash = `#/server/${encodeURIComponent(name)}`; }

function route() {
  if (location.hash.startsWith("#token=")) { takeToken(); return; }
  const match = location.hash.match(/^#\/server\/(.+)$/);
  selected = match ? decodeURIComponent(match[1]) : null;
  $("detail").hidden = !selected;
  $("app").classList.toggle("with-detail", !!selected);
  if (selected) refreshDetail();
  queueRender();
}
window.addEventListener("hashchange", route);
$("detail-close").addEventListener("click", () => { history.pushState(null, "", location.pathname); route(); });

let detailTimer = null;
function refreshDetail() {
  if (detailTimer) return;
  detailTimer = setTimeout(async () => {
    detailTimer = null;
    if (!selected) return;
    const name = selected;
    const response = await fetch(`/ui/api/servers/${encodeURIComponent(name)}`, { credentials: "same-origin" });
    if (name !== selected) return;
    if (response.status === 401) { showLogin("The session ended; log in again."); return; }
    const body = await response.json().catch(() => ({}));
    renderDetail(name, response.ok ? body : null, body.error);
  }, 100);
}

function dl(pairs) {
  return el("dl", {}, ...pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v instanceof Node ? v : String(v))]));
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c instanceof Node ? c : String(c ?? "–")))))));
}

function renderDetail(name, server, error) {
  $("detail-name").textContent = name;
  $("detail-link").href = `#/server/${encodeURIComponent(name)}`;
  const body = $("detail-body");
  if (!server) { body.replaceChildren(el("p", { class: "error", text: error || "not found" })); return; }
  const row = server.row || fleet.servers.get(name) || {};
  const bmcReady = server.bmc && server.bmc.status && (server.bmc.status.conditions || []).find((c) => c.type === "Ready");
  const parts = [
    el("h3", { text: "Summary" }),
    dl([
      ["State", row.state ? stateBadge(row.state) : null],
      ["Time in state", row.since ? (row.stuck ? el("span", { class: "stuck", text: `${since(row)} — stuck` }) : since(row)) : null],
      ["Discovery", row.discoveryReason],
      ["Power", server.powerState],
      ["System UUID", server.systemUUID],
      ["Manufacturer", server.manufacturer], ["Model", server.model], ["Serial", server.serialNumber],
      ["BIOS", server.biosVersion],
      ["BMC", server.bmc ? server.bmc.name : row.bmc],
      ["BMC Ready", bmcReady ? el("span", { class: bmcReady.status === "True" ? "good" : "bad", text: `${bmcReady.status === "True" ? "yes" : "no"}: ${bmcReady.reason}` }) : null],
      ["BMC message", bmcReady && bmcReady.status !== "True" ? bmcReady.message : null],
    ]),
    el("h3", { text: "Discovery timeline" }),
    server.timeline.length
      ? el("ol", { class: "timeline", id: "timeline" }, ...server.timeline.map((s) => el("li", { "data-step": s.step }, s.step, el("time", { datetime: s.at, text: new Date(s.at).toLocaleTimeString() }))))
      : el("p", { class: "hint", text: "No discovery recorded by this operator process yet." }),
    el("h3", { text: "Inventory" }),
    dl([
      ["CPUs", server.processors.length ? server.processors.map((p) => `${p.model || p.id}${p.totalCores ? ` (${p.totalCores} cores${p.totalThreads ? `, ${p.totalThreads} threads` : ""})` : ""}`).join("; ") : null],
      ["Memory", server.totalSystemMemory],
    ]),
    server.storages.length ? table(["Storage", "Drives"], server.storages.map((s) => [s.name || "–", (s.drives || []).map((d) => `${d.name || ""} ${d.capacity || ""} ${d.mediaType || d.type || ""}`.trim()).join("; ") || "–"])) : null,
    server.networkInterfaces.length ? table(["NIC", "MAC", "IP", "Link", "LLDP neighbour"], server.networkInterfaces.map((n) => [
      n.name, n.macAddress, (n.ips && n.ips.length ? n.ips : [n.ip]).filter(Boolean).join(", ") || "–", n.carrierStatus || "–",
      (n.neighbors || []).map((x) => [x.systemName, x.portID || x.portDescription].filter(Boolean).join(" ")).join("; ") || "–",
    ])) : el("p", { class: "hint", text: "No NICs reported yet." }),
    el("h3", { text: "Conditions" }),
    server.conditions.length ? table(["Type", "Status", "Reason", "Message", "Since"], server.conditions.map((c) => [c.type, c.status, c.reason, c.message, new Date(c.lastTransitionTime).toLocaleString()])) : el("p", { class: "hint", text: "none" }),
    el("h3", { text: "Recent events" }),
    server.events.length ? table(["Type", "Reason", "Note", "At"], server.events.map((e) => [e.type, e.reason, e.note, new Date(e.at).toLocaleTimeString()])) : el("p", { class: "hint", text: "No Events published by this operator process." }),
  ];
  body.replaceChildren(...parts.filter(Boolean));
}

// ---- start ----

// `make demo` prints a link whose fragment carries a token: it never reaches any server's
// logs (fragments are not sent), and it leaves the address bar at once.
async function takeToken() {
  const fragment = location.hash.match(/^#token=(.+)$/);
  if (!fragment) return true;
  history.replaceState(null, "", location.pathname);
  try {
    await login(decodeURIComponent(fragment[1]));
    await start();
    return true;
  } catch (error) {
    showLogin(error.message);
    return false;
  }
}

(async function main() {
  if (location.hash.startsWith("#token=")) {
    await takeToken();
  } else {
    await start();
  }
  route();
})();
