"""How records look in a terminal: a process table with progress bars, and JSON for scripts."""

from __future__ import annotations

from datetime import datetime

from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from shards.records import ProcessRecord, RunRecord, ScopeRecord, WorkerRecord, utcnow
from shards.states import State

from shards_cli.ages import ago

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
    """The seed GUI's time column: a running clock, finished at, stopped at, failed at."""
    status, now = record.status, now or utcnow()
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
