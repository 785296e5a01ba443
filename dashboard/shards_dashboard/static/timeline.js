// The timeline: every run of the last hour a bar from its start to its end (to now while it runs),
// one row per process of the scope (or per worker), coloured by outcome; beside each process the
// durations of its last finished runs. Plain SVG drawn here: no library, no build step. It uses
// app.js's helpers (state, el, $, serverNow, getJSON, filters, shown, showHistory, ...), and
// app.js calls timelineReset, timelineSnapshot, timelineRecords and timelineShown.
// Everything shown is set with textContent or one attribute at a time: never markup from data.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const FINAL = new Set(["Done", "Failed", "Stopped"]);
const TIMELINE = {
  minutes: 60,      // what the page reads: the runs requested in the last hour
  limit: 1000,      // at most this many of them (the server says when there were more)
  trend: 20,        // finished runs per duration trend
  maxRows: 100,     // rows drawn (the table's filters narrow them)
  maxLanes: 6,      // overlapping runs of one row (a worker's concurrency) stacked up to this
  refresh: 60000,   // ms between two reads of the window while it is shown (a safety net)
  label: 200, trendWidth: 150, axis: 22, lane: 12, gap: 3, pad: 6, minRow: 26, minBar: 2,
};

const timeline = {
  runs: new Map(),        // run id -> {runId, id, state, workerId, start, end, attempt, error} (ms)
  trends: new Map(),      // process id -> [{runId, state, duration}], oldest first
  trendQueue: [],         // process ids whose trend is to be read
  trendWanted: new Set(), // ... queued or being read
  trendBusy: 0,           // history reads in flight (at most 2)
  generation: 0,          // bumped on a scope change: late answers of the old scope are dropped
  loading: false,         // a read of the window is in flight
  again: false,           // ... and another is due after it
  loadedAt: 0,            // when the window was last read (local ms)
  truncated: false,       // the server had more runs than the limit
  problem: "",            // why the window could not be read
  bars: [],               // the drawn bars: {rect, title, run, label}
  geometry: null,         // the drawing's plot area and window
  soon: null,             // a redraw is due
  refetchSoon: null,      // a read of the window is due (an end was missed)
};

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function msOf(iso) { return iso ? Date.parse(iso) : null; }

function took(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  return seconds < 10 ? `${seconds.toFixed(1)}s` : mmss(seconds);
}

function hhmm(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// -- the data ---------------------------------------------------------------------------------
function runFromServer(doc) {
  const start = msOf(doc.startedAt), end = msOf(doc.endedAt);
  return { runId: doc.runId, id: doc.id, state: doc.state, workerId: doc.workerId || "",
    start: start === null ? end : start, end: FINAL.has(doc.state) ? end : null,
    attempt: doc.attempt || 1, error: doc.error || "" };
}

function runFromRecord(record) {
  // A record names its latest run: started (runningSince) and still going, or ended.
  if (!record.runId || !record.runningSince || !(RUNNING.has(record.state) || FINAL.has(record.state))) return null;
  const ended = record.doneAt || record.stoppedAt || record.failedAt;
  return { runId: record.runId, id: record.id, state: record.state, workerId: record.workerId || "",
    start: msOf(record.runningSince), end: FINAL.has(record.state) ? msOf(ended) : null,
    attempt: record.attempt || 1, error: record.error || "" };
}

function mergeRun(run) {
  // A run never goes back from an outcome to running: a late, older view does not undo an end.
  const known = timeline.runs.get(run.runId);
  if (known && FINAL.has(known.state) && !FINAL.has(run.state)) return false;
  const merged = { ...known, ...run };
  if (known) {  // what this view does not say, an earlier one may have
    if (run.start === null) merged.start = known.start;
    if (!run.workerId) merged.workerId = known.workerId;
    if (!run.error) merged.error = known.error;
  }
  if (known && known.state === merged.state && known.start === merged.start && known.end === merged.end
      && known.workerId === merged.workerId) return false;
  timeline.runs.set(run.runId, merged);
  return true;
}

function addToTrend(record) {
  const list = timeline.trends.get(record.id);
  if (!list || !FINAL.has(record.state) || record.duration === null || record.duration === undefined) return false;
  if (list.some((r) => r.runId === record.runId)) return false;
  list.push({ runId: record.runId, state: record.state, duration: record.duration });
  if (list.length > TIMELINE.trend) list.splice(0, list.length - TIMELINE.trend);
  return true;
}

function timelineReset() {
  timeline.generation += 1;
  timeline.runs.clear();
  timeline.trends.clear();
  timeline.trendQueue = [];
  timeline.trendWanted.clear();
  timeline.truncated = false;
  timeline.problem = "";
  timeline.again = false;
  redrawSoon();
}

function timelineSnapshot() {
  // The table was read afresh (a page opened, reconnected or fell behind): so is the window.
  for (const record of state.records.values()) {
    const run = runFromRecord(record);
    if (run) mergeRun(run);
  }
  loadWindow();
  redrawSoon();
}

function timelineRecords(records) {
  // Live: a record that changed names its latest run; a run of the same process still open here
  // that it no longer names ended unseen (ends coalesced, or a retry moved on): read the window.
  const open = new Map();
  for (const run of timeline.runs.values()) if (!FINAL.has(run.state)) open.set(run.id, [...(open.get(run.id) || []), run.runId]);
  let changed = false, missed = false;
  for (const record of records) {
    const run = runFromRecord(record);
    if (run) changed = mergeRun(run) || changed;
    if ((open.get(record.id) || []).some((runId) => runId !== record.runId)) missed = true;
    if (addToTrend(record)) changed = true;
  }
  if (missed) refetchSoon();
  if (changed) redrawSoon();
}

async function loadWindow() {
  if (!state.scope) return;
  if (timeline.loading) { timeline.again = true; return; }
  timeline.loading = true;
  const generation = timeline.generation;
  try {
    const data = await getJSON(`${scopePath(state.scope)}/runs?minutes=${TIMELINE.minutes}&limit=${TIMELINE.limit}`);
    if (generation !== timeline.generation) return;
    noteServerTime(data.now);
    const before = timeline.runs;
    timeline.runs = new Map();
    for (const doc of data.runs) timeline.runs.set(doc.runId, runFromServer(doc));
    // Runs the read left out (requested before the hour) are kept when they ended in it; the
    // records name the ones still going.
    const hourAgo = serverNow() - TIMELINE.minutes * 60000;
    for (const run of before.values()) {
      if (!timeline.runs.has(run.runId) && FINAL.has(run.state) && run.end >= hourAgo) timeline.runs.set(run.runId, run);
    }
    for (const record of state.records.values()) {  // as new as the read, or newer: on top
      const run = runFromRecord(record);
      if (run) mergeRun(run);
    }
    timeline.truncated = data.truncated;
    timeline.problem = "";
  } catch (error) {
    if (generation === timeline.generation) timeline.problem = error.message;
  } finally {
    timeline.loading = false;
    timeline.loadedAt = Date.now();
    if (generation === timeline.generation) redrawSoon();
    if (timeline.again) { timeline.again = false; loadWindow(); }
  }
}

function refetchSoon() {
  if (timeline.refetchSoon) return;
  timeline.refetchSoon = setTimeout(() => { timeline.refetchSoon = null; loadWindow(); }, 1500);
}

function wantTrend(id) {
  if (timeline.trends.has(id) || timeline.trendWanted.has(id)) return;
  timeline.trendWanted.add(id);
  timeline.trendQueue.push(id);
  pumpTrends();
}

function pumpTrends() {
  while (timeline.trendBusy < 2 && timeline.trendQueue.length) {
    const id = timeline.trendQueue.shift();
    const generation = timeline.generation;
    timeline.trendBusy += 1;
    getJSON(`${processPath(id)}/history?limit=${TIMELINE.trend + 1}`).then((data) => {
      if (generation !== timeline.generation) return;
      const finished = data.runs.filter((r) => FINAL.has(r.state) && r.duration !== null && r.duration !== undefined);
      timeline.trends.set(id, finished.reverse().slice(-TIMELINE.trend)
        .map((r) => ({ runId: r.runId, state: r.state, duration: r.duration })));
      const record = state.records.get(id);
      if (record) addToTrend(record);  // ended while the history was read
      redrawSoon();
    }).catch(() => {
      if (generation === timeline.generation) timeline.trends.set(id, []);
    }).finally(() => {
      timeline.trendBusy -= 1;
      timeline.trendWanted.delete(id);
      pumpTrends();
    });
  }
}

// -- the drawing ------------------------------------------------------------------------------
function timelineVisible() {
  return state.tab === "processes" && $("timeline-box").open && !$("main").hidden;
}

function timelineShown() { redrawSoon(); }

function redrawSoon() {
  if (timeline.soon) return;
  timeline.soon = setTimeout(() => { timeline.soon = null; drawTimeline(); }, 50);
}

function windowMinutes() { return Number($("timeline-window").value) || 60; }

function rowsOf(mode, runs, now) {
  // [{key, label, title, id (process mode), runs}]
  const byKey = new Map();
  for (const run of runs) {
    const key = mode === "worker" ? run.workerId : run.id;
    byKey.set(key, [...(byKey.get(key) || []), run]);
  }
  let rows;
  if (mode === "worker") {
    rows = [...byKey.keys()].sort().map((key) => ({ key, label: key || "(no worker)",
      title: key ? `worker ${key}` : "runs that ended before a worker took them", runs: byKey.get(key) }));
  } else {
    const f = filters();
    rows = [...state.records.values()].filter((r) => shown(r, f)).sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((r) => ({ key: r.id, id: r.id, label: r.name, title: `${r.name} (${r.id})`, runs: byKey.get(r.id) || [] }));
    if ($("timeline-busy").checked) {
      rows = rows.filter((row) => row.runs.length || ACTIVE.has((state.records.get(row.id) || {}).state));
    }
  }
  const total = rows.length;
  rows = rows.slice(0, TIMELINE.maxRows);
  for (const row of rows) {
    // Overlapping runs (a worker runs several at once) go into lanes, first fit by start.
    const ends = [];
    row.runs.sort((a, b) => a.start - b.start);
    row.lanes = row.runs.map((run) => {
      let lane = ends.findIndex((end) => end <= run.start);
      if (lane < 0) lane = ends.length < TIMELINE.maxLanes ? ends.length : TIMELINE.maxLanes - 1;
      ends[lane] = run.end === null ? now : run.end;
      return lane;
    });
    row.laneCount = Math.max(1, ends.length);
  }
  return { rows, total };
}

function barTitle(run, label) {
  const now = serverNow();
  const span = run.end === null ? `since ${at(new Date(run.start).toISOString())}, ${mmss((now - run.start) / 1000)} so far`
    : `${at(new Date(run.start).toISOString())} to ${at(new Date(run.end).toISOString())}, ${took((run.end - run.start) / 1000)}`;
  const attempt = run.attempt > 1 ? ` (attempt ${run.attempt})` : "";
  const where = run.workerId ? ` on ${run.workerId}` : "";
  return `${label}: ${run.state}${attempt}, ${span}${where}${run.error ? `\n${run.error}` : ""}\nrun ${run.runId}`;
}

function trendGroup(id, x, height) {
  const group = svg("g", { class: "tl-trend", "data-trend": id, transform: `translate(${x},0)` });
  const list = timeline.trends.get(id);
  if (!list) { wantTrend(id); return group; }
  if (!list.length) { group.append(svg("text", { class: "tl-none", x: 0, y: height / 2 + 4, text: "no finished runs" })); return group; }
  const width = TIMELINE.trendWidth - 52, slot = width / TIMELINE.trend;
  const longest = Math.max(...list.map((r) => r.duration), 0.001);
  const offset = (TIMELINE.trend - list.length) * slot;  // the newest run is always at the right
  list.forEach((r, i) => {
    const h = Math.max(1.5, (r.duration / longest) * (height - 8));
    group.append(svg("rect", { class: `tl-trend-bar state-${r.state}`, "data-run": r.runId, "data-state": r.state,
      x: (offset + i * slot).toFixed(2), y: (height - 4 - h).toFixed(2), width: Math.max(1, slot - 1).toFixed(2),
      height: h.toFixed(2) }, svg("title", { text: `${r.state} in ${took(r.duration)} (run ${r.runId})` })));
  });
  const last = list[list.length - 1];
  group.append(svg("text", { class: "tl-trend-last", x: width + 6, y: height / 2 + 4,
    text: took(last.duration) }, svg("title", { text: `the last finished run took ${took(last.duration)}; `
      + `the longest of these ${list.length}: ${took(longest)}` })));
  return group;
}

function drawTimeline() {
  const box = $("timeline");
  if (!timelineVisible()) return;
  const mode = $("timeline-rows").value, minutes = windowMinutes();
  const now = serverNow(), from = now - minutes * 60000;
  for (const [runId, run] of timeline.runs) {  // the memory holds one hour, whatever the view
    if (run.end !== null && run.end < now - TIMELINE.minutes * 60000) timeline.runs.delete(runId);
  }
  const runs = [...timeline.runs.values()].filter((run) => run.start !== null && (run.end === null ? now : run.end) >= from);
  const { rows, total } = rowsOf(mode, runs, now);
  const width = Math.max(640, box.clientWidth || 900);
  const trendWidth = mode === "process" ? TIMELINE.trendWidth : 0;
  const x0 = TIMELINE.label, x1 = width - trendWidth - 12;
  const heights = rows.map((row) => Math.max(TIMELINE.minRow,
    2 * TIMELINE.pad + row.laneCount * TIMELINE.lane + (row.laneCount - 1) * TIMELINE.gap));
  const height = TIMELINE.axis + heights.reduce((a, b) => a + b, 0) + 2;
  const chart = svg("svg", { id: "timeline-svg", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Runs of the last ${minutes} minutes, one row per ${mode}` });
  const backgrounds = svg("g", { class: "tl-backgrounds" });
  chart.append(backgrounds, svg("g", { class: "tl-grid" }));  // behind the rows' labels and bars
  chart.append(svg("text", { class: "tl-head", x: 4, y: 14, text: mode === "worker" ? "Worker" : "Process" }));
  if (trendWidth) chart.append(svg("text", { class: "tl-head", x: x1 + 12, y: 14, text: `last ${TIMELINE.trend} durations` }));
  timeline.bars = [];
  let y = TIMELINE.axis;
  rows.forEach((row, index) => {
    const h = heights[index];
    const group = svg("g", { class: `tl-row${index % 2 ? " odd" : ""}`, "data-row": row.key, transform: `translate(0,${y})` });
    backgrounds.append(svg("rect", { class: `tl-row-bg${index % 2 ? " odd" : ""}`, x: 0, y, width, height: h }));
    const chars = Math.floor((TIMELINE.label - 12) / 7);
    const text = row.label.length > chars ? `${row.label.slice(0, chars - 1)}…` : row.label;
    const label = svg("text", { class: `tl-label${row.id ? " link" : ""}`, x: 4, y: h / 2 + 4, text },
      svg("title", { text: row.title }));
    if (row.id) label.addEventListener("click", () => showHistory(row.id));
    group.append(label);
    row.runs.forEach((run, i) => {
      const title = svg("title");
      const rect = svg("rect", { class: `tl-bar state-${run.state}`, "data-run": run.runId, "data-id": run.id,
        "data-state": run.state, "data-worker": run.workerId, y: TIMELINE.pad + row.lanes[i] * (TIMELINE.lane + TIMELINE.gap),
        height: TIMELINE.lane, rx: 2, onclick: () => showHistory(run.id) }, title);
      group.append(rect);
      const record = state.records.get(run.id);
      timeline.bars.push({ rect, title, run, label: record ? record.name : run.id });
    });
    if (trendWidth) group.append(trendGroup(row.id, x1 + 12, h));
    chart.append(group);
    y += h;
  });
  chart.append(svg("line", { class: "tl-now", x1, x2: x1, y1: TIMELINE.axis - 4, y2: height }));
  timeline.geometry = { x0, x1, minutes, height, chart };
  placeBars();
  box.replaceChildren(chart);
  const notes = [];
  if (timeline.problem) notes.push(timeline.problem);
  if (!rows.length) notes.push(mode === "worker" ? "No runs in this window." : "No process shown (see the filters above).");
  if (total > rows.length) notes.push(`The first ${rows.length} of ${total} rows: narrow them with the search.`);
  if (timeline.truncated) notes.push(`The latest ${TIMELINE.limit} runs of the hour only.`);
  $("timeline-note").textContent = notes.join(" ");
}

function placeBars() {
  // Time moves: bars and ticks slide left, a running bar's end stays at now (it grows).
  const g = timeline.geometry;
  if (!g) return;
  const now = serverNow(), span = g.minutes * 60000, from = now - span;
  const scale = (g.x1 - g.x0) / span;
  for (const bar of timeline.bars) {
    const { run } = bar;
    const end = run.end === null ? now : run.end;
    const start = Math.max(run.start, from);
    const w = Math.max(TIMELINE.minBar, (end - start) * scale);
    const x = Math.min(g.x0 + (start - from) * scale, g.x1 - w);
    bar.rect.setAttribute("x", x.toFixed(2));
    bar.rect.setAttribute("width", w.toFixed(2));
    bar.rect.setAttribute("visibility", end < from ? "hidden" : "visible");
    bar.title.textContent = barTitle(run, bar.label);
  }
  const step = g.minutes <= 5 ? 1 : g.minutes <= 15 ? 3 : 10;  // minutes between ticks
  const grid = g.chart.querySelector(".tl-grid");
  const ticks = [];
  for (let t = Math.ceil(from / (step * 60000)) * step * 60000; t <= now; t += step * 60000) {
    const x = (g.x0 + (t - from) * scale).toFixed(2);
    ticks.push(svg("line", { class: "tl-tick", x1: x, x2: x, y1: TIMELINE.axis - 4, y2: g.height }),
      svg("text", { class: "tl-tick-label", x, y: 14, "text-anchor": "middle", text: hhmm(t) }));
  }
  grid.replaceChildren(...ticks);
}

function tickTimeline() {
  if (timeline.geometry && timelineVisible()) placeBars();
}

function startTimeline() {
  for (const id of ["timeline-rows", "timeline-window", "timeline-busy"]) $(id).addEventListener("change", redrawSoon);
  $("timeline-box").addEventListener("toggle", redrawSoon);
  window.addEventListener("resize", redrawSoon);
  setInterval(tickTimeline, 1000);
  setInterval(() => {  // a safety net: what the live channel could not say (see loadWindow)
    if (timeline.loadedAt && timelineVisible() && Date.now() - timeline.loadedAt > TIMELINE.refresh) loadWindow();
  }, 5000);
}
