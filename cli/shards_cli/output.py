"""How records look in a terminal: a process table with progress bars, and JSON for scripts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from shards.records import ProcessRecord, RunRecord, WorkerRecord, utcnow
from shards.states import ACTIVE, State

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


def print_json(console: Console, value: Any) -> None:
    console.print_json(json.dumps(value))


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


def _at(moment: datetime | None, now: datetime | None = None) -> str:
    """Time of day for today's moments, the date too for older ones."""
    if moment is None:
        return "?"
    today = (now or utcnow()).date() == moment.date()
    return moment.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M:%S")


def when(record: ProcessRecord, now: datetime | None = None) -> str:
    """The seed GUI's time column: a running clock, finished at, stopped at, failed at."""
    status = record.status
    if record.state in (State.RUNNING, State.STOP_REQUESTED, State.STOPPING) and status.running_since:
        return _clock(((now or utcnow()) - status.running_since).total_seconds())
    if record.state is State.DONE:
        return f"finished {_at(status.done_at, now)} in {_clock(status.duration or 0)}"
    if record.state is State.STOPPED:
        return f"stopped {_at(status.stopped_at, now)}"
    if record.state is State.FAILED:
        return f"failed {_at(status.failed_at, now)}"
    if record.state is State.SCHEDULED and status.retry_at:
        return f"retry at {_at(status.retry_at, now)}"
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


def history_table(runs: list[RunRecord]) -> Table:
    table = Table(expand=False)
    for column in ("RUN", "ATTEMPT", "STATE", "REQUESTED", "DURATION", "WORKER", "ERROR"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.run_id[:12] if run.attempt <= 1 else f"{run.launch_id[:12]}.{run.attempt}",
            str(run.attempt),
            Text(run.state.value, style=STATE_STYLES[run.state]),
            _at(run.requested_at),
            "" if run.duration is None else _clock(run.duration),
            Text(run.worker_id),
            Text(run.error, overflow="fold"),
        )
    return table


def workers_table(workers: list[WorkerRecord]) -> Table:
    table = Table(expand=False)
    for column in ("WORKER", "POOL", "HOST", "PID", "RUNNING", "LAST HEARTBEAT"):
        table.add_column(column)
    for worker in workers:
        running = f"{worker.running}/{worker.concurrency}"
        table.add_row(Text(worker.worker_id), Text(worker.pool), Text(worker.host), str(worker.pid),
                      running, _at(worker.heartbeat_at))
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


def watch_table(console: Console, read: Callable[[], list[ProcessRecord]],
                table: Callable[[list[ProcessRecord]], Table], timeout: float) -> None:
    """Live progress bars until nothing is active, or `timeout` seconds."""
    deadline = time.monotonic() + timeout
    with Live(table(read()), console=console, refresh_per_second=4) as live:
        while time.monotonic() < deadline:
            records = read()
            live.update(table(records))
            if not any(r.state in ACTIVE for r in records):
                return
            time.sleep(0.25)
