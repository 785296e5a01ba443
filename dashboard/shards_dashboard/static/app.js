// The Shards dashboard: the seed's process table, live. Vanilla JS, no build step.
// Everything shown comes from textContent or attributes set one by one: never innerHTML with data.
"use strict";

const ACTIVE = new Set(["Scheduled", "Running", "StopRequested", "Stopping"]);
const STOPPING = new Set(["StopRequested", "Stopping"]);
const RUNNING = new Set(["Running", "StopRequested", "Stopping"]);

const state = {
  config: { scope: "default", readOnly: false, tokenRequired: false },
  scope: "",
  records: new Map(),   // process id -> record (as the server sent it)
  rows: new Map(),      // process id -> <tr>
  source: null,         // the EventSource of the current scope
  clockOffset: 0,       // server time - local time, in ms
  historyOf: null,      // process id whose runs are shown
  workersTimer: null,
  tab: "processes",
  schedules: [],        // the scope's schedules (as the server sent them)
  scheduleTargets: new Map(),  // process id -> the schedules that launch it
  schedulesTimer: null, // the 2 s refresh while the Schedules tab is open
  schedulesSoon: null,  // a refresh due after a schedule's target changed (at most one per 2 s)
  schedulesAt: 0,       // when they were last read (local ms)
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// -- time -------------------------------------------------------------------------------------
function serverNow() { return Date.now() + state.clockOffset; }

function noteServerTime(iso) {
  if (iso) state.clockOffset = Date.parse(iso) - Date.now();
}

function pad(n) { return String(n).padStart(2, "0"); }

function mmss(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
}

function at(iso) {
  if (!iso) return "";
  const when = new Date(iso), now = new Date(serverNow());
  const time = when.toLocaleTimeString();
  return when.toDateString() === now.toDateString() ? time : `${when.toLocaleDateString()} ${time}`;
}

function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((serverNow() - Date.parse(iso)) / 1000));
  return seconds < 60 ? `${seconds}s ago` : `${Math.floor(seconds / 60)}m${seconds % 60}s ago`;
}

function tickClocks() {
  for (const clock of document.querySelectorAll(".clock[data-since]")) {
    clock.textContent = mmss((serverNow() - Date.parse(clock.dataset.since)) / 1000);
  }
  for (const countdown of document.querySelectorAll(".countdown[data-until]")) countdown.textContent = until(countdown.dataset.until);
}

function until(iso) {
  const seconds = (Date.parse(iso) - serverNow()) / 1000;
  return seconds > 0 ? `in ${mmss(seconds)}` : "due";
}

function duration(seconds) {
  // 90 -> "1m30s", 86400 -> "1d": as `shards schedule` prints durations.
  if (!seconds) return "0s";
  if (seconds < 1) return `${seconds}s`;
  let left = Math.round(seconds), text = "";
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
    if (left >= size) { text += `${Math.floor(left / size)}${unit}`; left %= size; }
  }
  return text;
}

// -- server -----------------------------------------------------------------------------------
function scopePath(scope) { return `/api/scopes/${encodeURIComponent(scope)}`; }
function processPath(id) { return `${scopePath(state.scope)}/processes/${encodeURIComponent(id)}`; }

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  const body = await response.json();
  if (response.status === 401) showLogin();
  if (!response.ok) throw new Error(body.error || `${response.status}`);
  return body;
}

async function post(path, body) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  return fetch(path, { method: "POST", headers, credentials: "same-origin", body: JSON.stringify(body || {}) });
}

async function act(path, body) {
  // With a token, the session cookie (HttpOnly: this script never sees it) authorizes the action.
  const response = await post(path, body);
  let answer = {};
  try { answer = await response.json(); } catch (_) { /* no body */ }
  if (!response.ok) {
    toast(answer.error || `the server answered ${response.status}`);
    if (response.status === 401) showLogin();
    return null;
  }
  if (answer.record) apply([answer.record]);  // at once; the push channel confirms it
  return answer;
}

function toast(message) {
  const box = $("toast");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 8000);
}

// -- the process table ------------------------------------------------------------------------
function filters() {
  return {
    search: $("search").value.trim().toLowerCase(),
    activeOnly: $("active-only").checked,
    hideDetails: $("hide-details").checked,
    hideSpecial: $("hide-special").checked,
  };
}

function shown(record, f) {
  return (!f.search || record.name.toLowerCase().includes(f.search) || record.id.toLowerCase().includes(f.search))
    && (!f.activeOnly || ACTIVE.has(record.state))
    && (!f.hideDetails || record.detailLevel <= 1)
    && (!f.hideSpecial || !record.special);
}

function highlighted(text, needle) {
  const span = el("span", { class: "text" });
  if (!needle) { span.textContent = text; return span; }
  const lower = text.toLowerCase();
  let from = 0;
  for (let i = lower.indexOf(needle); i >= 0; i = lower.indexOf(needle, from)) {
    span.append(text.slice(from, i), el("mark", { text: text.slice(i, i + needle.length) }));
    from = i + needle.length;
  }
  span.append(text.slice(from));
  return span;
}

function runButton(record) {
  const danger = Boolean(record.warning);
  return el("button", {
    type: "button", class: `action run${danger ? " danger" : ""}`, text: "Run",
    disabled: ACTIVE.has(record.state), title: danger ? `Warning: ${record.warning}` : "Launch a run",
    onclick: () => launch(record.id),
  });
}

function stopButton(record) {
  const stopping = STOPPING.has(record.state);
  return el("button", {
    type: "button", class: "action stop", disabled: stopping, onclick: () => act(`${processPath(record.id)}/stop`),
  }, stopping ? el("span", { class: "spinner", "aria-hidden": "true" }) : null, stopping ? "Stopping" : "Stop");
}

function outcome(record) {
  if (record.state === "Done") {
    const took = record.duration === null || record.duration === undefined ? "" : ` in ${mmss(record.duration)}`;
    return el("div", { class: "outcome done", text: `Finished at ${at(record.doneAt)}${took}` });
  }
  if (record.state === "Stopped") {
    return el("div", { class: "outcome stopped" }, `Stopped at ${at(record.stoppedAt)}`,
      record.error ? el("span", { class: "error", text: ` ${record.error}` }) : null);
  }
  if (record.state === "Failed") {
    return el("div", { class: "outcome failed" }, `Failed at ${at(record.failedAt)}: `,
      el("span", { class: "error", text: record.error || "(no error message)" }));
  }
  if (record.state === "Scheduled" && record.retryAt) {
    return el("div", { class: "outcome waiting", text: `Retry at ${at(record.retryAt)}` });
  }
  if (record.state === "Scheduled" && record.startAt) {
    return el("div", { class: "outcome waiting", text: `Starts at ${at(record.startAt)}` });
  }
  return null;
}

function progressCell(record) {
  const p = record.progress || {};
  const rate = record.state === "Done" ? 1 : Math.max(0, Math.min(1, Number(p.rate) || 0));
  const fill = el("div", { class: `fill state-${record.state}` });
  fill.style.width = `${(rate * 100).toFixed(1)}%`;
  const bar = el("div", {
    class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
    "aria-valuenow": String(Math.round(rate * 100)),
  }, fill);
  const line = el("div", { class: "line" });
  if (RUNNING.has(record.state) && record.runningSince) {
    const clock = el("span", { class: "clock", "data-since": record.runningSince });
    clock.textContent = mmss((serverNow() - Date.parse(record.runningSince)) / 1000);
    line.append(clock);
  }
  // A delayed launch's message repeats its start time in UTC: the outcome line says it in local time.
  const repeats = record.state === "Scheduled" && record.startAt && (p.message || "").startsWith("Starts at ");
  if (p.message && !repeats) line.append(el("span", { class: "message", text: p.message }));
  const queued = (record.queued || []).length;
  if (queued) line.append(el("span", { class: "queued", title: "Launches waiting for this run to end", text: `+${queued} queued` }));
  const cell = el("td", { class: "col-progress" }, bar, line, outcome(record));
  if (!state.config.readOnly && (record.state === "Failed" || record.state === "Stopped")) {
    cell.append(el("button", {
      type: "button", class: "action dismiss", text: "Dismiss", onclick: () => act(`${processPath(record.id)}/dismiss`),
    }));
  }
  return cell;
}

function renderRow(tr, record, f) {
  tr.dataset.state = record.state;
  tr.className = `state-${record.state}${record.special ? " special" : ""}`;
  const actions = el("td", { class: "col-actions" });
  if (!state.config.readOnly) {
    actions.append(runButton(record));
    if (ACTIVE.has(record.state)) actions.append(stopButton(record));
  }
  const name = el("td", { class: "col-name" },
    el("a", { href: "#", class: "name", title: "Show its runs", onclick: (e) => { e.preventDefault(); showHistory(record.id); } },
      highlighted(record.name, f.search)),
    el("div", { class: "pid" }, highlighted(record.id, f.search)));
  if (record.warning) name.append(el("div", { class: "warning-note", text: `⚠ ${record.warning}` }));
  for (const schedule of state.scheduleTargets.get(record.id) || []) {
    const when = schedule.paused ? "paused" : schedule.next ? `next at ${at(schedule.next)}` : schedule.phase.toLowerCase();
    name.append(el("div", { class: "schedule-note", text: `schedule ${schedule.name}: ${when}` }));
  }
  tr.replaceChildren(
    actions, name,
    el("td", { class: "col-level", text: String(record.detailLevel) }),
    el("td", { class: "col-special", text: record.special ? "special" : "" }),
    el("td", { class: "col-state" }, el("span", { class: `badge state-${record.state}`, text: record.state })),
    progressCell(record),
  );
  tr.hidden = !shown(record, f);
}

function insertRow(id, tr) {
  // Rows stay ordered by process id, as the server lists them.
  const body = $("processes").tBodies[0];
  for (const [otherId, other] of state.rows) {
    if (otherId > id) { body.insertBefore(tr, other); return; }
  }
  body.append(tr);
}

function apply(records) {
  const f = filters();
  for (const record of records) {
    state.records.set(record.id, record);
    let tr = state.rows.get(record.id);
    if (!tr) {
      tr = el("tr", { "data-id": record.id });
      insertRow(record.id, tr);
      state.rows = new Map([...state.rows, [record.id, tr]].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
    }
    renderRow(tr, record, f);
  }
  updateCount();
  timelineRecords(records);
  if (state.historyOf && records.some((r) => r.id === state.historyOf)) refreshHistory();
}

function snapshot(data) {
  noteServerTime(data.now);
  const problem = $("problem");
  problem.hidden = !data.problem;
  problem.textContent = data.problem || "";
  const body = $("processes").tBodies[0];
  body.replaceChildren();
  state.records.clear();
  state.rows.clear();
  const f = filters();
  const fragment = document.createDocumentFragment();
  for (const record of [...data.records].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const tr = el("tr", { "data-id": record.id });
    state.records.set(record.id, record);
    state.rows.set(record.id, tr);
    renderRow(tr, record, f);
    fragment.append(tr);
  }
  body.append(fragment);
  updateCount();
  timelineSnapshot();
}

function refilter() {
  const f = filters();
  for (const [id, tr] of state.rows) renderRow(tr, state.records.get(id), f);
  updateCount();
  timelineShown();  // its rows follow the table's filters
}

function updateCount() {
  let visible = 0;
  for (const tr of state.rows.values()) if (!tr.hidden) visible += 1;
  $("count").textContent = `${visible} of ${state.rows.size} shown`;
}

// -- actions ----------------------------------------------------------------------------------
function confirmDialog(title, text, okLabel) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    const done = (answer) => {
      $("confirm-ok").onclick = null;
      $("confirm-cancel").onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    $("confirm-ok").onclick = () => done(true);
    $("confirm-cancel").onclick = () => done(false);
    dialog.onclose = () => done(false);
    dialog.showModal();
  });
}

async function launch(id) {
  const record = state.records.get(id);
  if (!record) return;
  let confirm = false;
  if (record.warning) {
    confirm = await confirmDialog(`Run ${record.name}?`, record.warning, "Run anyway");
    if (!confirm) return;
  }
  await act(`${processPath(id)}/launch`, { confirm });
}

async function purge() {
  const ok = await confirmDialog(`Purge scope ${state.scope}?`,
    "Every idle or finished process record of this scope is deleted (with its error and progress), and the "
    + "scope is defined again from its catalog. Active processes stay.", "Purge");
  if (!ok) return;
  const answer = await act(`${scopePath(state.scope)}/purge`);
  if (answer) toast(`Scope ${state.scope} redefined.`);
}

// -- run history and logs ---------------------------------------------------------------------
async function showHistory(id) {
  state.historyOf = id;
  const record = state.records.get(id);
  $("history-name").textContent = record ? `${record.name} (${id})` : id;
  $("logs").hidden = true;
  $("history").hidden = false;
  await refreshHistory();
}

async function refreshHistory() {
  const id = state.historyOf;
  if (!id) return;
  let data;
  try { data = await getJSON(`${processPath(id)}/history`); } catch (error) { toast(error.message); return; }
  if (state.historyOf !== id) return;
  $("runs").tBodies[0].replaceChildren(...data.runs.map((run) => el("tr", { "data-run": run.runId, class: `state-${run.state}` },
    el("td", { class: "run-id", title: run.runId, text: run.attempt > 1 ? `${run.runId.slice(0, 8)} (attempt ${run.attempt})` : run.runId.slice(0, 8) }),
    el("td", {}, el("span", { class: `badge state-${run.state}`, text: run.state })),
    el("td", { text: at(run.startedAt) }),
    el("td", { text: at(run.endedAt) }),
    el("td", { text: run.duration === null || run.duration === undefined ? "" : mmss(run.duration) }),
    el("td", { class: "worker", text: run.workerId }),
    el("td", { class: "error", text: run.error }),
    el("td", {}, el("button", { type: "button", class: "logs", text: "Logs", onclick: () => showLogs(run.runId) })),
  )));
}

async function showLogs(runId) {
  let data;
  try { data = await getJSON(`${processPath(state.historyOf)}/runs/${encodeURIComponent(runId)}/logs`); } catch (error) {
    toast(error.message);
    return;
  }
  $("logs-run").textContent = runId;
  $("logs-note").textContent = data.note || "";
  $("logs-lines").textContent = (data.lines || []).map((line) => (typeof line === "string" ? line : line.text || JSON.stringify(line))).join("\n");
  $("logs").hidden = false;
}

// -- workers ----------------------------------------------------------------------------------
async function refreshWorkers() {
  let data;
  try { data = await getJSON("/api/workers"); } catch (error) { toast(error.message); return; }
  noteServerTime(data.now);
  $("pools").tBodies[0].replaceChildren(...data.pools.map((pool) => el("tr", { "data-pool": pool.pool },
    el("td", { text: pool.pool }), el("td", { text: String(pool.workers) }),
    el("td", { text: String(pool.freeSlots) }), el("td", { class: "pending", text: String(pool.pending) }))));
  $("workers").tBodies[0].replaceChildren(...data.workers.map((w) => el("tr", { "data-worker": w.id },
    el("td", { text: w.name }), el("td", { class: "worker", text: w.id }), el("td", { text: w.host }),
    el("td", { text: String(w.pid) }), el("td", { text: w.pool }),
    el("td", { text: `${w.running} of ${w.concurrency}` }),
    el("td", { class: "heartbeat", title: w.heartbeatAt || "", text: `${ago(w.heartbeatAt)} (beat ${w.beat})` }))));
}

function showTab(tab) {
  state.tab = tab;
  for (const name of ["processes", "schedules", "workers"]) {
    $(`${name}-view`).hidden = name !== tab;
    $(`tab-${name}`).setAttribute("aria-pressed", String(name === tab));
  }
  clearInterval(state.workersTimer);
  clearInterval(state.schedulesTimer);
  state.workersTimer = null;
  state.schedulesTimer = null;
  if (tab === "processes") timelineShown();
  if (tab === "workers") {
    refreshWorkers();
    state.workersTimer = setInterval(refreshWorkers, 2000);  // heartbeats move every few seconds
  }
  if (tab === "schedules") {
    loadSchedules(false);
    // Schedules have no push channel of their own: read them every 2 s while this tab is open.
    state.schedulesTimer = setInterval(() => loadSchedules(true), 2000);
  }
}

// -- schedules --------------------------------------------------------------------------------
function schedulePath(schedule) {
  return `/api/schedules/${encodeURIComponent(schedule.scope)}/${encodeURIComponent(schedule.name)}`;
}

async function loadSchedules(quiet) {
  const scope = state.scope;
  if (!scope) return;
  state.schedulesAt = Date.now();
  let data;
  try { data = await getJSON(`/api/schedules?scope=${encodeURIComponent(scope)}`); } catch (error) {
    const problem = $("schedules-problem");
    problem.textContent = error.message;
    problem.hidden = false;
    if (!quiet) toast(error.message);
    return;
  }
  if (scope !== state.scope) return;  // the scope changed meanwhile
  noteServerTime(data.now);
  $("schedules-problem").hidden = true;
  setSchedules(data.schedules);
}

function refreshSchedulesSoon() {
  if (state.schedulesSoon) return;
  const wait = Math.max(0, state.schedulesAt + 2000 - Date.now());
  state.schedulesSoon = setTimeout(() => { state.schedulesSoon = null; loadSchedules(true); }, wait);
}

function setSchedules(schedules) {
  const before = new Set(state.scheduleTargets.keys());
  state.schedules = schedules;
  state.scheduleTargets = new Map();
  for (const schedule of schedules) {
    const list = state.scheduleTargets.get(schedule.process) || [];
    list.push(schedule);
    state.scheduleTargets.set(schedule.process, list);
  }
  renderSchedules();
  // The process rows that show a schedule's next time (before or now) are drawn again.
  const f = filters();
  for (const id of new Set([...before, ...state.scheduleTargets.keys()])) {
    const tr = state.rows.get(id), record = state.records.get(id);
    if (tr && record) renderRow(tr, record, f);
  }
}

function updateSchedule(schedule) {
  setSchedules(state.schedules.map((s) => (s.scope === schedule.scope && s.name === schedule.name ? schedule : s)));
}

function timing(schedule) {
  if (schedule.cron) return `cron ${schedule.cron} (${schedule.timeZone})`;
  const offset = schedule.offsetSeconds ? ` +${duration(schedule.offsetSeconds)}` : "";
  return `every ${duration(schedule.everySeconds)}${offset}`;
}

function lastFire(schedule) {
  const actions = schedule.actions || [];
  const last = actions[actions.length - 1];
  if (!last) return el("td", { class: "last", text: "never" });
  return el("td", { class: "last", title: last.runId },
    `${at(last.at || last.nominal)} `, el("span", { class: `badge outcome-${last.outcome}`, text: last.outcome }),
    last.detail ? el("div", { class: "note", text: last.detail }) : null);
}

function nextFire(schedule) {
  if (schedule.paused) return el("td", { class: "next", text: "— (paused)" });
  if (!schedule.next) return el("td", { class: "next", text: "— (completed)" });
  const countdown = el("div", { class: "countdown", "data-until": schedule.next, text: until(schedule.next) });
  return el("td", { class: "next", title: schedule.nextNominal ? `nominal ${schedule.nextNominal}` : null },
    at(schedule.next), countdown);
}

function scheduleRow(schedule) {
  const actions = el("td", { class: "col-actions" });
  if (!state.config.readOnly) {
    actions.append(schedule.paused
      ? el("button", { type: "button", class: "action unpause", text: "Unpause", onclick: () => unpauseSchedule(schedule) })
      : el("button", { type: "button", class: "action pause", text: "Pause", onclick: () => pauseSchedule(schedule) }),
    el("button", { type: "button", class: "action trigger", text: "Trigger", title: "Launch now (the overlap policy applies)",
      onclick: () => triggerSchedule(schedule) }));
  }
  const process = state.records.get(schedule.process);
  const phase = el("td", { class: "phase" }, el("span", { class: `badge phase-${schedule.phase}`, text: schedule.phase }));
  if (schedule.paused && schedule.note) phase.append(el("div", { class: "paused-note", text: schedule.note }));
  return el("tr", { "data-schedule": schedule.name, class: `phase-${schedule.phase}` },
    actions,
    el("td", { class: "col-name" }, el("span", { class: "name", text: schedule.name }),
      el("div", { class: "schedule-note", text: `overlap ${schedule.overlap}` })),
    el("td", { class: "process" }, process ? process.name : schedule.process, el("div", { class: "pid", text: schedule.process })),
    el("td", { class: "timing", text: timing(schedule) }),
    phase,
    lastFire(schedule),
    nextFire(schedule),
    el("td", { class: "counts", text: `${schedule.launched} launched · ${schedule.skipped} skipped · ${schedule.missed} missed` }),
  );
}

function renderSchedules() {
  $("schedules").tBodies[0].replaceChildren(...state.schedules.map(scheduleRow));
  $("schedules-empty").hidden = state.schedules.length > 0;
}

function pauseDialog(title) {
  const dialog = $("pause");
  $("pause-title").textContent = title;
  $("pause-note").value = "";
  return new Promise((resolve) => {
    const done = (answer) => {
      $("pause-ok").onclick = null;
      $("pause-cancel").onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    $("pause-ok").onclick = () => done({ note: $("pause-note").value.trim() });
    $("pause-cancel").onclick = () => done(null);
    dialog.onclose = () => done(null);
    dialog.showModal();
    $("pause-note").focus();
  });
}

async function pauseSchedule(schedule) {
  const answer = await pauseDialog(`Pause schedule ${schedule.name}?`);
  if (!answer) return;
  const done = await act(`${schedulePath(schedule)}/pause`, answer);
  if (done && done.schedule) updateSchedule(done.schedule);
}

async function unpauseSchedule(schedule) {
  const done = await act(`${schedulePath(schedule)}/unpause`, {});
  if (done && done.schedule) updateSchedule(done.schedule);
}

async function triggerSchedule(schedule) {
  const process = state.records.get(schedule.process);
  if (process && process.warning) {
    const ok = await confirmDialog(`Trigger ${schedule.name}?`, `It launches ${process.name} now: ${process.warning}`, "Trigger");
    if (!ok) return;
  }
  const done = await act(`${schedulePath(schedule)}/trigger`, {});
  if (!done) return;
  if (done.schedule) updateSchedule(done.schedule);
  const a = done.action;
  toast(`${schedule.name}: ${a.outcome}${a.detail ? ` (${a.detail})` : ""}${a.runId ? `, run ${a.runId}` : ""}`);
}

// -- scopes and the push channel --------------------------------------------------------------
function setLive(live) {
  const badge = $("live");
  badge.textContent = live ? "live" : "reconnecting…";
  badge.classList.toggle("up", live);
}

function connect(scope) {
  if (state.source) state.source.close();
  state.scope = scope;
  state.historyOf = null;
  $("history").hidden = true;
  state.schedules = [];
  state.scheduleTargets = new Map();
  renderSchedules();
  timelineReset();
  const source = new EventSource(`${scopePath(scope)}/events`);
  state.source = source;
  source.addEventListener("snapshot", (event) => { setLive(true); snapshot(JSON.parse(event.data)); loadSchedules(true); });
  source.addEventListener("changes", (event) => {
    const data = JSON.parse(event.data);
    noteServerTime(data.now);
    // A schedule's fire launches (or queues) its process: its next time moved; read the schedules
    // again soon. Progress alone does not.
    const fired = data.records.some((r) => {
      const before = state.records.get(r.id);
      return state.scheduleTargets.has(r.id) && (!before || before.state !== r.state || before.launchId !== r.launchId
        || (before.queued || []).length !== (r.queued || []).length);
    });
    apply(data.records);
    if (fired) refreshSchedulesSoon();
  });
  source.onopen = () => setLive(true);
  source.onerror = () => {
    setLive(false);  // the browser reconnects; the server sends a snapshot
    // A refusal (401: no session; 503: too many live pages) closes it for good: say why, retry.
    if (source.readyState === EventSource.CLOSED && state.source === source) refused(source);
  };
}

async function refused(source) {
  let config = {};
  try { config = await getJSON("/api/config"); } catch (_) { /* the server is down: retry */ }
  if (config.tokenRequired && !config.authenticated) { showLogin(); return; }
  toast("the live channel was refused (too many live pages?); trying again in 5 s");
  setTimeout(() => { if (state.source === source) connect(state.scope); }, 5000);
}

// -- the token: a session cookie, obtained once by posting it ----------------------------------
function showLogin() {
  if (state.source) { state.source.close(); state.source = null; }
  clearInterval(state.workersTimer);
  clearInterval(state.schedulesTimer);
  $("main").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("token").focus();
}

async function login() {
  const token = $("token").value.trim();
  if (!token) { $("token").focus(); return; }
  const response = await post("/api/login", { token });
  $("token").value = "";  // the cookie carries the session from here; the token is not kept
  if (!response.ok) {
    let answer = {};
    try { answer = await response.json(); } catch (_) { /* no body */ }
    $("login-problem").textContent = answer.error || `the server answered ${response.status}`;
    $("login-problem").hidden = false;
    return;
  }
  $("login-problem").hidden = true;
  await begin();
}

async function logout() {
  await post("/api/logout", {});
  showLogin();
}

async function loadScopes() {
  let scopes = [];
  try { scopes = (await getJSON("/api/scopes")).scopes; } catch (error) { toast(error.message); }
  if (!scopes.includes(state.scope)) scopes = [state.scope, ...scopes];
  $("scope").replaceChildren(...scopes.map((scope) => el("option", { value: scope, text: scope, selected: scope === state.scope })));
}

function scopeFromHash() {
  const match = /(?:^#|&)scope=([^&]*)/.exec(window.location.hash);
  return match ? decodeURIComponent(match[1]) : "";
}

async function begin() {
  try { state.config = await getJSON("/api/config"); } catch (error) { toast(error.message); }
  if (state.config.tokenRequired && !state.config.authenticated) { showLogin(); return; }
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = !state.config.tokenRequired;
  document.body.classList.toggle("read-only", state.config.readOnly);
  $("mode").hidden = !state.config.readOnly;
  $("purge").hidden = state.config.readOnly;
  connect(scopeFromHash() || state.config.scope);
  showTab(state.tab);  // after a login: the open tab's refresh starts again
  await loadScopes();
}

async function start() {
  $("login-button").addEventListener("click", login);
  $("token").addEventListener("keydown", (event) => { if (event.key === "Enter") login(); });
  $("logout").addEventListener("click", logout);
  for (const id of ["search", "active-only", "hide-details", "hide-special"]) $(id).addEventListener("input", refilter);
  $("purge").addEventListener("click", purge);
  $("history-close").addEventListener("click", () => { state.historyOf = null; $("history").hidden = true; });
  for (const tab of ["processes", "schedules", "workers"]) $(`tab-${tab}`).addEventListener("click", () => showTab(tab));
  $("scope").addEventListener("change", () => {
    window.location.hash = `scope=${encodeURIComponent($("scope").value)}`;
  });
  window.addEventListener("hashchange", () => {
    const scope = scopeFromHash() || state.config.scope;
    if (scope !== state.scope && !$("main").hidden) { connect(scope); loadScopes(); }
  });
  setInterval(tickClocks, 1000);
  startTimeline();
  await begin();
}

document.addEventListener("DOMContentLoaded", start);
