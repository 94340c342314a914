// logmq dashboard: polls the read-only JSON API and redraws. No build step, no libraries.
"use strict";

const EVERY_MS = 2000;
const history = { topics: {}, groups: {}, queues: {} };  // key -> [[time, value], ...]
const HISTORY_SECONDS = 600;
let last = null;  // previous overview sample, for rates

function fmtNum(n) {
  if (n === null || n === undefined) return "-";
  if (Math.abs(n) >= 1e9) return (n / 1e9).toFixed(2) + "G";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}
function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}
function fmtAge(ms) {
  if (ms === null || ms === undefined) return "-";
  if (ms < 10000) return ms + " ms";
  if (ms < 3600000) return Math.round(ms / 1000) + " s";
  return (ms / 3600000).toFixed(1) + " h";
}
function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;"}[c]));
}
function push(kind, key, t, v) {
  const h = history[kind][key] || (history[kind][key] = []);
  h.push([t, v]);
  while (h.length && h[0][0] < t - HISTORY_SECONDS) h.shift();
}
function spark(points) {
  if (!points || points.length < 2) return '<svg class="spark"></svg>';
  const t0 = points[0][0], t1 = points[points.length - 1][0] || t0 + 1;
  const max = Math.max(1, ...points.map(p => p[1]));
  const pts = points.map(p => {
    const x = ((p[0] - t0) / Math.max(1e-9, t1 - t0)) * 158 + 1;
    const y = 27 - (p[1] / max) * 25;
    return x.toFixed(1) + "," + y.toFixed(1);
  }).join(" ");
  return `<svg class="spark" viewBox="0 0 160 28"><title>max ${fmtNum(max)}</title>` +
         `<polyline points="${pts}"/></svg>`;
}
function rows(tbody, html, cols, empty) {
  tbody.innerHTML = html.length ? html.join("") :
    `<tr><td class="empty" colspan="${cols}">${empty}</td></tr>`;
}

// seed the sparklines with what the server sampled before this page was opened
async function loadHistory() {
  try {
    const h = await (await fetch("/api/v1/history", {cache: "no-store"})).json();
    let prev = null;
    for (const s of h.samples) {
      if (prev) {
        const dt = Math.max(1e-3, s.time - prev.time);
        for (const [t, v] of Object.entries(s.topics)) {
          const p = prev.topics[t];
          if (p) push("topics", t, s.time, Math.max(0, (v.records - p.records) / dt));
        }
      }
      for (const [g, lag] of Object.entries(s.groups)) push("groups", g, s.time, lag);
      for (const [q, depth] of Object.entries(s.queues)) push("queues", q, s.time, depth);
      prev = s;
    }
  } catch (e) { /* no history yet: the live samples fill it */ }
}

async function refresh() {
  let o;
  try {
    o = await (await fetch("/api/v1/overview", {cache: "no-store"})).json();
  } catch (e) {
    const st = document.getElementById("status");
    st.textContent = "unreachable"; st.className = "pill bad";
    return;
  }
  const now = Date.now() / 1000;
  const st = document.getElementById("status");
  st.textContent = o.ready ? "ready" : "not ready: " + o.reason;
  st.className = "pill " + (o.ready ? "ok" : "bad");
  const cfg = o.config || {};
  document.getElementById("meta").textContent =
    `${cfg.path || cfg.data || ""} · kafka ${cfg.advertised || cfg.listen || "-"} · ` +
    `v${o.version} · up ${Math.round(o.uptime_seconds)} s` +
    (o.server ? ` · ${o.server.connections} connection(s)` : "");

  const prevTopics = last ? Object.fromEntries((last.o.topics || []).map(t => [t.name, t])) : {};
  const dt = last ? Math.max(1e-3, now - last.t) : 0;
  const topicRows = (o.topics || []).map(t => {
    const p = prevTopics[t.name];
    const rate = p ? Math.max(0, (t.records_produced - p.records_produced) / dt) : null;
    const bin = p ? Math.max(0, (t.bytes_in - p.bytes_in) / dt) : null;
    const bout = p ? Math.max(0, (t.bytes_out - p.bytes_out) / dt) : null;
    if (rate !== null) push("topics", t.name, now, rate);
    return `<tr data-topic="${esc(t.name)}"><td>${esc(t.name)}</td><td>${t.partitions}</td>` +
      `<td class="end">${fmtNum(t.end_offset)}</td><td>${fmtBytes(t.size_bytes)}</td>` +
      `<td class="rate">${rate === null ? "-" : fmtNum(rate)}</td>` +
      `<td>${bin === null ? "-" : fmtBytes(Math.round(bin)) + "/s"}</td>` +
      `<td>${bout === null ? "-" : fmtBytes(Math.round(bout)) + "/s"}</td>` +
      `<td>${spark(history.topics[t.name])}</td></tr>`;
  });
  rows(document.querySelector("#topics tbody"), topicRows, 8, "no topics yet");

  const groupRows = (o.groups || []).map(g => {
    push("groups", g.group_id, now, g.lag);
    return `<tr data-group="${esc(g.group_id)}"><td>${esc(g.group_id)}</td>` +
      `<td>${esc(g.state)}</td><td>${g.members}</td><td class="lag">${fmtNum(g.lag)}</td>` +
      `<td>${spark(history.groups[g.group_id])}</td></tr>`;
  });
  rows(document.querySelector("#groups tbody"), groupRows, 5, "no consumer groups");

  const queueRows = (o.queues || []).map(q => {
    const key = q.topic + "/" + q.group;
    push("queues", key, now, q.depth);
    return `<tr data-queue="${esc(key)}"><td>${esc(q.topic)}</td><td>${esc(q.group)}</td>` +
      `<td class="depth">${fmtNum(q.depth)}</td><td>${fmtNum(q.in_flight)}</td>` +
      `<td>${fmtNum(q.scheduled)}</td><td>${fmtAge(q.oldest_unacked_age_ms)}</td>` +
      `<td>${fmtNum(q.dlq_size)}</td><td>${spark(history.queues[key])}</td></tr>`;
  });
  rows(document.querySelector("#queues tbody"), queueRows, 8, "no share groups open");

  if (o.warnings) {
    try {
      const w = await (await fetch("/api/v1/warnings", {cache: "no-store"})).json();
      document.getElementById("warnings").innerHTML = w.slice(-10).reverse().map(x =>
        `<li>${esc(new Date(x.time * 1000).toISOString())} ${esc(x.level)} ` +
        `${esc(x.logger)}: ${esc(x.message)}</li>`).join("");
    } catch (e) { /* next time */ }
  } else {
    document.getElementById("warnings").innerHTML = '<li class="muted">none</li>';
  }
  last = {o, t: now};
}

document.getElementById("every").textContent = EVERY_MS / 1000;
loadHistory().then(refresh);
setInterval(refresh, EVERY_MS);
