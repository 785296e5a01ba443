"""How records look in a terminal: a process table with progress bars, and JSON for scripts."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from shards.records import ProcessRecord, RunRecord, ScopeRecord, WorkerRecord, utcnow
from shards.states import State

from shards_cli.ages import ago
from shards_cli.times import stamp

if TYPE_CHECKING:
    from shards.schedule_times import Timing
    from shards.schedules import Action, NextFire, ScheduleRecord

STATE_STYLES = {
    State.IDLE: "dim",
    State.SCHEDULED: "cyan",
    State.RUNNING: "bold blue",
    State.STOP_REQUESTED: "yellow",
    State.STOPPING: "yellow",
    State.STOPPED: "magenta",
    State.FAILED: "bold red",
    State.DONE: "green",
}


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


def when(record: ProcessRecord, now: datetime | None = None) -> str:
    """The seed GUI's time column: a running clock, finished at, stopped at, failed at; when a
    delayed launch starts; and how many launches wait behind the run ('+2 queued')."""
    moment = _moment(record, now or utcnow())
    if not record.queue:
        return moment
    return " ".join(filter(None, [moment, f"+{len(record.queue)} queued"]))


def _moment(record: ProcessRecord, now: datetime) -> str:
    status = record.status
    if record.state in (State.RUNNING, State.STOP_REQUESTED, State.STOPPING) and status.running_since:
        return _clock((now - status.running_since).total_seconds())
    if record.state is State.DONE:
        return f"finished {ago(status.done_at, now)} in {_clock(status.duration or 0)}"
    if record.state is State.STOPPED:
        return f"stopped {ago(status.stopped_at, now)}"
    if record.state is State.FAILED:
        return f"failed {ago(status.failed_at, now)}"
    if record.state is State.SCHEDULED and status.retry_at:
        return f"retry {ago(status.retry_at, now)}"
    if record.state is State.SCHEDULED and status.start_at:
        return f"starts {ago(status.start_at, now)}"
    return ""


def progress_cell(record: ProcessRecord, waiting: str = "") -> Table:
    """The bar and its percentage on one line, the message (a failed run's error) folded under it.

    A grid, not a Group: a ProgressBar ends no line, so text after it in a Group shares the bar's
    line and the cell crops it."""
    style = {State.FAILED: "red", State.DONE: "green"}.get(record.state, "blue")
    bar = ProgressBar(total=1.0, completed=record.progress.rate, width=10, complete_style=style,
                      finished_style=style)
    message = record.status.error if record.state is State.FAILED else record.progress.message
    if waiting:
        message = f"waiting: {waiting}"
    line = Table.grid(padding=(0, 1))
    line.add_row(bar, Text(f"{record.progress.rate:4.0%}", no_wrap=True))
    cell = Table.grid()
    cell.add_row(line)
    if message:
        cell.add_row(Text(message, overflow="fold"))  # Text, not markup: messages are user text
    return cell


def process_table(
    records: list[ProcessRecord], scope_id: str, waiting: dict[str, str] | None = None
) -> Table:
    """The scope's processes; `waiting` says why Scheduled ones wait, by process id.

    Every cell from users or processes is a Text: a plain string would be read as rich markup."""
    table = Table(title=Text(f"scope {scope_id}"), title_justify="left", expand=False)
    for column in ("ID", "NAME", "STATE", "PROGRESS", "TIME", "LEVEL", "FLAGS"):
        # Whole ids: a person copies them into the next command.
        table.add_column(column, no_wrap=column in ("ID", "STATE"), overflow="fold")
    now = utcnow()
    for record in records:
        marks = (("special", record.special), ("warning", record.warning))
        flags = " ".join(name for name, on in marks if on)
        table.add_row(
            Text(record.process_id),
            Text(record.name),
            Text(" ".join(filter(None, [record.state.value, record.attempt_label()])),
                 style=STATE_STYLES[record.state]),
            progress_cell(record, (waiting or {}).get(record.process_id, "")),
            when(record, now),
            str(record.detail_level),
            flags,
        )
    return table


def history_table(runs: list[RunRecord], now: datetime | None = None) -> Table:
    table, now = Table(expand=False), now or utcnow()
    for column in ("RUN", "ATTEMPT", "STATE", "REQUESTED", "DURATION", "WORKER", "ERROR"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.run_id[:12] if run.attempt <= 1 else f"{run.launch_id[:12]}.{run.attempt}",
            str(run.attempt),
            Text(run.state.value, style=STATE_STYLES[run.state]),
            ago(run.requested_at, now),
            "" if run.duration is None else _clock(run.duration),
            Text(run.worker_id),
            Text(run.error, overflow="fold"),
        )
    return table


def scopes_table(scopes: list[ScopeRecord], now: datetime | None = None) -> Table:
    table, now = Table(expand=False), now or utcnow()
    for column in ("SCOPE", "STATE", "PROCESSES", "DEFINED", "BY"):
        table.add_column(column, overflow="fold")
    for scope in scopes:
        detail = scope.error if scope.state == "Failed" else str(len(scope.process_ids))
        table.add_row(Text(scope.scope_id), scope.state, Text(detail), ago(scope.defined_at, now),
                      Text(scope.defined_by))
    return table


def workers_table(workers: list[WorkerRecord], now: datetime | None = None) -> Table:
    table, now = Table(expand=False), now or utcnow()
    for column in ("WORKER", "POOL", "HOST", "PID", "RUNNING", "LAST HEARTBEAT"):
        table.add_column(column)
    for worker in workers:
        running = f"{worker.running}/{worker.concurrency}"
        table.add_row(Text(worker.worker_id), Text(worker.pool), Text(worker.host), str(worker.pid),
                      running, ago(worker.heartbeat_at, now))
    return table


def pools_table(summary: dict[str, dict[str, int]]) -> Table:
    table = Table(expand=False)
    for column in ("POOL", "WORKERS", "FREE SLOTS", "PENDING LAUNCHES"):
        table.add_column(column)
    for pool, counts in summary.items():
        pending = Text(str(counts["pending"]), style="bold red" if counts["pending"] and
                       not counts["workers"] else "")
        table.add_row(Text(pool), str(counts["workers"]), str(counts["freeSlots"]), pending)
    return table


def timing_text(timing: Timing) -> str:
    """A schedule's times as its flags say them: '*/5 * * * *', 'every 15m', 'every 1h +5m'."""
    from shards.schedule_times import format_duration

    if timing.cron:
        return timing.cron
    offset = f" +{format_duration(timing.offset)}" if timing.offset else ""
    return f"every {format_duration(timing.every)}{offset}"


def _last(record: ScheduleRecord, now: datetime) -> str:
    action = record.last()  # what it came to: `schedule get` (and -o json) has it
    return ago(action.at, now) if action else "-"


def _next(record: ScheduleRecord, now: datetime) -> str:
    if record.next is None:
        return "-"  # completed: past its end, or its maxRuns launched
    return ago(record.next.fire_at, now)


def schedules_table(records: list[ScheduleRecord], states: dict[tuple[str, str], State],
                    now: datetime | None = None) -> Table:
    """Schedules, one a row; `states`: the state of each schedule's process, by (scope, process).
    Twelve columns: no borders, as kubectl prints them, to fit a terminal."""
    table, now = Table(expand=False, box=None, pad_edge=False, padding=(0, 1)), now or utcnow()
    columns = ("SCOPE", "NAME", "PROCESS", "SCHEDULE", "TIMEZONE", "PAUSED", "LAST", "NEXT", "ACTIVE",
               "FIRED", "SKIPPED", "MISSED")
    for column in columns:  # names fold to fit; the counts and short cells keep their line
        table.add_column(column, overflow="fold", no_wrap=column in ("PAUSED", "FIRED", "SKIPPED", "MISSED"),
                         min_width=6 if column in columns[:5] else None)
    for record in records:
        spec = record.spec
        state = states.get((spec.scope_id, spec.process_id))
        table.add_row(
            Text(spec.scope_id), Text(spec.name), Text(spec.process_id), Text(timing_text(spec.timing)),
            spec.timing.timezone if spec.timing.cron else "-",
            "yes" if record.paused else "no",
            _last(record, now), _next(record, now) if not record.paused else "-",
            state_text(state),
            str(record.fired), str(record.skipped), str(record.missed),
        )
    return table


def state_text(state: State | None) -> Text:
    """A process's state, styled; '?' for a process no longer defined."""
    return Text(state.value, style=STATE_STYLES[state]) if state else Text("?")


def schedule_details(record: ScheduleRecord, state: State | None, now: datetime | None = None) -> Table:
    """One schedule: what it launches and when, what it did so far, and its last actions."""
    spec, now = record.spec, now or utcnow()
    details = Table.grid(padding=(0, 2))
    rows = [
        ("schedule", f"{spec.scope_id}/{spec.name}"),
        ("process", f"{spec.process_id} ({state.value if state else 'not defined'})"),
        ("timing", timing_text(spec.timing) + (f" in {spec.timing.timezone}" if spec.timing.cron else "")),
        ("phase", record.phase.value + (f": {record.note}" if record.note else "")),
        ("next", f"{stamp(record.next.fire_at)} ({ago(record.next.fire_at, now)})" if record.next else "-"),
        ("counts", f"fired {record.fired}, launched {record.launched}, skipped {record.skipped}, "
                   f"missed {record.missed}"),
        ("overlap", spec.overlap.value + (f" (up to {spec.buffer_limit})" if spec.overlap.value == "BufferAll"
                                          else "")),
        ("catch-up window", f"{spec.catchup_window:g}s"), ("jitter", f"{spec.jitter:g}s"),
        ("pause on failure", "yes" if spec.pause_on_failure else "no"),
        ("window", f"{stamp(spec.start_at)} to {stamp(spec.end_at)}"),
        ("max runs", str(spec.max_runs) if spec.max_runs is not None else "-"),
        ("args", json.dumps(spec.args)), ("options", json.dumps(spec.options) if spec.options else "-"),
    ]
    for name, value in rows:
        details.add_row(name, Text(value, overflow="fold"))
    if record.actions:
        details.add_row("", "")
        details.add_row("last actions", actions_table(record.actions[::-1], now))
    return details


def actions_table(actions: list[Action], now: datetime | None = None) -> Table:
    table, now = Table(expand=False), now or utcnow()
    for column in ("NOMINAL", "OUTCOME", "WHEN", "RUN", "DETAIL"):
        table.add_column(column, overflow="fold")
    for action in actions:
        table.add_row(stamp(action.nominal) if action.nominal else Text(action.label), action.outcome.value,
                      ago(action.at, now), Text(action.run_id), Text(action.detail))
    return table


def fires_lines(fires: list[NextFire], timezone: str = "UTC", now: datetime | None = None) -> list[str]:
    """A preview: each fire's time and how soon; the wall-clock time in the schedule's time zone
    when that is not UTC; the nominal time too when jitter moves it."""
    from zoneinfo import ZoneInfo

    now, zone = now or utcnow(), ZoneInfo(timezone)
    lines = []
    for fire in fires:
        wall = f" ({fire.nominal.astimezone(zone):%a %Y-%m-%d %H:%M} {timezone})" if timezone != "UTC" else ""
        moved = f" (nominal {stamp(fire.nominal)})" if fire.fire_at != fire.nominal else ""
        lines.append(f"{stamp(fire.fire_at)}  {ago(fire.fire_at, now)}{wall}{moved}")
    return lines
