"""Run logs, the SDK's side: `ctx.log`, a standard logging.Logger whose lines are kept with the run.

Each call becomes one entry, "time LEVEL message" (an exception's traceback follows the message on
lines of its own). The worker keeps the last MAX_LINES entries / MAX_BYTES of a run in MongoDB,
written in batches; `shards logs` reads them, with a marker when older entries were dropped.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

RUN_LOGGER = "shards.run"  # the parent of every ctx.log (ctx.log's own name: shards.run.<process>)
MAX_LINES = 1000  # a run keeps its last 1,000 lines...
MAX_BYTES = 256 * 1024  # ...and at most 256 KiB of them (UTF-8), the oldest dropped first
MAX_LINE = 16 * 1024  # characters of one entry: a longer one (a huge traceback) is cut
CUT = " … (cut)"
# The operator's log service (kubectl shards logs) reads the user's token here when the request
# came through the API server's proxy, which keeps `Authorization` for itself.
PROXIED_TOKEN_HEADER = "X-Shards-Authorization"

Sink = Callable[[str], None]


def stamp(created: float) -> str:
    """A line's time: UTC, to the millisecond (the same on every worker)."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clip(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - len(CUT)] + CUT


class LineFormatter(logging.Formatter):
    """time LEVEL message, then the traceback (if any) on the lines after it."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{stamp(record.created)} {record.levelname} {record.getMessage()}"
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        elif record.exc_text:
            text = f"{text}\n{record.exc_text}"
        if record.stack_info:
            text = f"{text}\n{self.formatStack(record.stack_info)}"
        return clip(text)


FORMATTER = LineFormatter()


class RunLogHandler(logging.Handler):
    """Hands each formatted entry to the run's buffer (a call that never blocks on MongoDB)."""

    def __init__(self, sink: Sink) -> None:
        super().__init__()
        self.sink = sink
        self.setFormatter(FORMATTER)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink(self.format(record))
        except Exception:
            self.handleError(record)


def run_logger(process_id: str, sink: Sink | None) -> logging.Logger:
    """A Logger for one run: not registered by name (logging keeps registered loggers for ever),
    a child of "shards.run", so its lines also reach the worker's own log with the run's fields
    (the level is the worker's --log-level unless the process sets another on ctx.log)."""
    logger = logging.Logger(f"{RUN_LOGGER}.{process_id}")  # noqa: LOG001 (one per run: not kept)
    logger.parent = logging.getLogger(RUN_LOGGER)
    if sink is not None:
        logger.addHandler(RunLogHandler(sink))
    return logger


def entry(level: int, message: str, failure: BaseException | None = None, *, skip: int = 0) -> str:
    """An entry the worker itself adds to a run's log (its uncaught exception, a lost process);
    `skip`: the traceback's outermost frames to leave out (the worker's own call of the process)."""
    text = f"{stamp(datetime.now(UTC).timestamp())} {logging.getLevelName(level)} {message}"
    if failure is not None and not isinstance(failure, SystemExit | KeyboardInterrupt):
        frames = failure.__traceback__
        for _ in range(skip):
            frames = frames.tb_next if frames is not None and frames.tb_next is not None else frames
        lines = traceback.format_exception(type(failure), failure, frames)
        text = f"{text}\n{''.join(lines).rstrip()}"
    return clip(text)


def dropped_marker(count: int) -> str:
    return f"… {count} earlier line{'s' if count != 1 else ''} dropped"


@dataclass
class RunLog:
    """What a run's log holds: its last lines, how many earlier ones were dropped, and whether
    the run is still going (more lines may come)."""

    run_id: str
    scope_id: str
    process_id: str
    state: str
    active: bool
    lines: list[str] = field(default_factory=list)
    dropped: int = 0

    def text_lines(self) -> list[str]:
        """The lines as `shards logs` prints them, the marker first if lines were dropped."""
        return ([dropped_marker(self.dropped)] if self.dropped else []) + self.lines

    def to_json(self) -> dict[str, Any]:
        return {"runId": self.run_id, "scopeId": self.scope_id, "processId": self.process_id,
                "state": self.state, "active": self.active, "dropped": self.dropped, "lines": self.lines}


Entry = str | int  # a line, or how many lines came and went unseen (a dropped marker)


class LogCursor:
    """Where a follower of a run's log is: each read of the log gives the entries not yet shown,
    each line once by its place in the run (dropped + index), and a count for lines that came and
    went between two reads."""

    def __init__(self) -> None:
        self.shown = 0  # lines of the run shown or skipped so far

    def new_entries(self, log: RunLog) -> list[Entry]:
        first = log.dropped  # the place of log.lines[0] in the run
        entries: list[Entry] = []
        if first > self.shown:
            entries.append(first - self.shown)
            self.shown = first
        entries.extend(log.lines[self.shown - first:])
        self.shown = max(self.shown, first + len(log.lines))
        return entries
