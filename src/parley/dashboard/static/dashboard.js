// The dashboard: reads api/summary, then keeps itself current from api/stream (SSE).
// The feed says what changed; the page re-reads the summary at most once a second, so
// it stays right even when the feed drops a message. window.dashboardState is what the
// browser test reads.
"use strict";

const HISTOGRAMS = ["voice_to_voice_ms", "llm_first_token_ms", "tts_first_byte_ms", "end_of_turn_ms"];
const state = { summaries: 0, events: 0, live: null, histograms: {}, feed: "connecting" };
window.dashboardState = state;
const charts = {};
window.dashboardCharts = charts;

const $ = (sel) => document.querySelector(sel);
const fmtMs = (v) => (v == null ? "–" : `${Math.round(v)} ms`);
const fmtUsd = (v) => (v == null ? "–" : `$${Number(v).toFixed(4)}`);
const fmtScore = (v) => (v == null ? "–" : Number(v).toFixed(2));
const short = (id) => (id || "").replace(/^conv_/, "").slice(0, 10);

function cell(row, text, title) {
  const td = document.createElement("td");
  td.textContent = text;
  if (title) td.title = title;
  row.appendChild(td);
}

function fillTable(sel, rows, cols) {
  const body = $(`${sel} tbody`);
  body.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const c of cols) cell(tr, c(r));
    body.appendChild(tr);
  }
}

function bucketLabels(edges) {
  return [...edges.map((e) => `≤${e >= 1000 ? `${e / 1000}s` : `${e}ms`}`), `>${edges[edges.length - 1] / 1000}s`];
}

function histogramChart(field, h) {
  const canvas = $(`#h-${field}`);
  if (!charts[field]) {
    charts[field] = new Chart(canvas, {
      type: "bar",
      data: { labels: bucketLabels(h.edges_ms), datasets: [{ label: "turns", data: h.counts, backgroundColor: "#2f6fed" }] },
      options: { animation: false, plugins: { legend: { display: false },
        subtitle: { display: true, text: "" } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }
  const chart = charts[field];
  chart.data.datasets[0].data = h.counts;
  chart.options.plugins.subtitle.text = `${h.count} turns · p50 ${fmtMs(h.p50_ms)} · p99 ${fmtMs(h.p99_ms)}`;
  chart.update();
}

function costChart(rows) {
  const labels = rows.map((r) => r.key || "(none)");
  const data = rows.map((r) => r.cost_usd);
  if (!charts.costUser) {
    charts.costUser = new Chart($("#cost-user"), {
      type: "bar",
      data: { labels, datasets: [{ label: "USD", data, backgroundColor: "#1f8a4c" }] },
      options: { indexAxis: "y", animation: false, plugins: { legend: { display: false } } },
    });
  }
  charts.costUser.data.labels = labels;
  charts.costUser.data.datasets[0].data = data;
  charts.costUser.update();
}

function engagementChart(points) {
  const labels = points.map((p) => new Date(p.at * 1000).toLocaleTimeString());
  const data = points.map((p) => p.score);
  if (!charts.engagement) {
    charts.engagement = new Chart($("#engagement"), {
      type: "line",
      data: { labels, datasets: [{ label: "engagement", data, borderColor: "#8a4fd6", tension: 0.2, pointRadius: 2 }] },
      options: { animation: false, plugins: { legend: { display: false } }, scales: { y: { min: 0, max: 1 } } },
    });
  }
  charts.engagement.data.labels = labels;
  charts.engagement.data.datasets[0].data = data;
  charts.engagement.update();
}

function render(s) {
  state.live = s.live.count;
  $("#live-count").textContent = s.live.count;
  $("#finished-count").textContent = s.finished.count;
  $("#cost-total").textContent = Number(s.finished.cost_usd).toFixed(4);
  $("#v2v-p50").textContent = fmtMs(s.histograms.voice_to_voice_ms.p50_ms);
  $("#errors").textContent = s.incidents.errors;
  $("#failovers").textContent = s.incidents.failovers;
  fillTable("#live", s.live.calls, [
    (c) => short(c.session_id), (c) => c.user_id || "–", (c) => c.kind || "–", (c) => c.engine,
    (c) => `${Math.round(c.duration_s)} s`, (c) => c.turns, (c) => fmtMs(c.voice_to_voice_ms),
    (c) => fmtUsd(c.estimated_cost), (c) => fmtScore(c.engagement_score),
  ]);
  for (const f of HISTOGRAMS) {
    state.histograms[f] = s.histograms[f].count;
    histogramChart(f, s.histograms[f]);
  }
  costChart(s.cost_by_user);
  engagementChart(s.engagement_trend);
  fillTable("#cost-session", s.cost_by_session, [
    (r) => short(r.key), (r) => r.calls, (r) => fmtUsd(r.cost_usd), (r) => `${Math.round(r.duration_s)} s`,
  ]);
  fillTable("#context", s.context, [(r) => r.source, (r) => r.count, (r) => fmtMs(r.p50_ms), (r) => fmtMs(r.p99_ms)]);
  const list = $("#incidents");
  list.replaceChildren();
  for (const i of s.incidents.recent) {
    const li = document.createElement("li");
    li.className = i.kind === "failover" ? "failover" : "error";
    li.textContent = `${new Date(i.at * 1000).toLocaleTimeString()} ${short(i.session_id)} ${i.kind}: ${i.detail}`;
    list.appendChild(li);
  }
  fillTable("#finished", s.finished.calls, [
    (c) => short(c.session_id), (c) => c.user_id || "–", (c) => c.turns, (c) => fmtUsd(c.estimated_cost),
    (c) => fmtScore(c.engagement),
    (c) => (c.analytics ? c.analytics.sentiment_label : c.analytics_error ? "error" : "…"),
    (c) => (c.analytics ? c.analytics.resolution_status : "–"),
    (c) => (c.analytics ? c.analytics.topics.join(", ") : "–"),
  ]);
  state.summaries += 1;
}

// With authentication on, the page is opened as /dashboard/#key=KEY (a key or token
// with analytics:read): the fragment never reaches a server or a log; it is kept for
// this tab only and sent as a bearer header. EventSource cannot send headers, so with
// a key the live feed is read through fetch.
const KEY_NAME = "parley-dashboard-key";
const fromHash = new URLSearchParams(location.hash.slice(1)).get("key");
if (fromHash) {
  sessionStorage.setItem(KEY_NAME, fromHash);
  history.replaceState(null, "", location.pathname + location.search);
}
const KEY = sessionStorage.getItem(KEY_NAME);
const HEADERS = KEY ? { Authorization: `Bearer ${KEY}` } : {};

// At most one summary a second. An event that comes while a summary is being
// fetched may be newer than what the server put in it (a processor's result stored
// just after), so it asks for one more refresh once this one is done: otherwise the
// last change before a quiet spell would never be shown.
let pending = false;
let again = false;
let last = 0;
async function refresh() {
  if (pending) {
    again = true;
    return;
  }
  const wait = Math.max(0, 1000 - (Date.now() - last));
  pending = true;
  setTimeout(async () => {
    again = false;
    try {
      const r = await fetch("api/summary", { cache: "no-store", headers: HEADERS });
      if (r.ok) render(await r.json());
      else if (r.status === 401 || r.status === 403) denied(r.status);
    } finally {
      pending = false;
      last = Date.now();
      if (again) refresh();
    }
  }, wait);
}

function denied(status) {
  state.denied = status;
  const badge = $("#feed");
  badge.textContent = status === 401 ? "open as /dashboard/#key=YOUR_KEY" : "this key lacks analytics:read";
  badge.className = "feed off";
}

// The same events as EventSource's, from a fetch body (text/event-stream framing).
async function fetchFeed(onEvent, onOpen, onError) {
  for (;;) {
    try {
      const r = await fetch("api/stream", { headers: HEADERS, cache: "no-store" });
      if (!r.ok || !r.body) { onError(); if (r.status === 401 || r.status === 403) return denied(r.status); }
      else {
        onOpen();
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const kind = block.split("\n").find((l) => l.startsWith("event:"));
            if (kind) onEvent(kind.slice(6).trim());
          }
        }
        onError();
      }
    } catch (e) { onError(); }
    await new Promise((done) => setTimeout(done, 2000));
  }
}

function connect() {
  const badge = $("#feed");
  if (KEY) {
    fetchFeed(
      () => { state.events += 1; refresh(); },
      () => { state.feed = "open"; badge.textContent = "live"; badge.className = "feed on"; },
      () => { state.feed = "reconnecting"; badge.textContent = "reconnecting…"; badge.className = "feed off"; },
    );
    return;
  }
  const feed = new EventSource("api/stream");
  feed.addEventListener("open", () => { state.feed = "open"; badge.textContent = "live"; badge.className = "feed on"; });
  feed.addEventListener("error", () => { if (state.denied) return denied(state.denied); state.feed = "reconnecting"; badge.textContent = "reconnecting…"; badge.className = "feed off"; });
  for (const kind of ["hello", "call_started", "turn", "incident", "call_ended", "analytics"]) {
    feed.addEventListener(kind, () => { state.events += 1; refresh(); });
  }
}

refresh();
connect();
// Durations of live calls advance without events: a slow heartbeat.
setInterval(refresh, 5000);
