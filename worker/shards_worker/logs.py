"""Worker logs: one line per event on stderr, the logger and the run a line concerns as fields.

Text (the default), the time local with its offset, the run's fields only on lines about a run:

    2026-11-29T21:15:05.123+01:00 INFO shards.worker [run=8f3c… scope=farm process=count] started

JSON (`--log-format json`): one object per line, with "time", "level", "logger", "message",
"run", "scope" and "process" when the line concerns a run, and "exc" (the traceback) if any.

A line is about a run when its call says so (`extra=about(record)`), or when it is logged while
the run executes: the run's thread (run_context) and, under process isolation, the whole of
the run's OS process (set_process_run). What the run's code prints becomes log lines too
(capture_prints): always in a run's OS process; in a worker's own threads only while a run's
context is set (a thread the run's code starts itself is not attributed).

A line never spans two: in text, line breaks in a message or a traceback are written as `\\n`
(and `\\r`); JSON escapes them anyway.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, TextIO

from shards.errors import ShardsError

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
MAX_LINE = 65536  # a printed "line" longer than this (no newline yet) is logged in pieces


class RunFields(NamedTuple):
    run: str
    scope: str
    process: str


class AboutRun(Protocol):
    """A record, a request or anything else that names a run."""

    @property
    def run_id(self) -> str: ...

    @property
    def scope_id(self) -> str: ...

    @property
    def process_id(self) -> str: ...


ATTR = "shards_run"  # the LogRecord attribute that carries a line's RunFields
_current: ContextVar[RunFields | None] = ContextVar("shards_run", default=None)
_process_run: RunFields | None = None  # a run's OS process: every line is about its run
_settings = ("info", "text")  # as configure_logging last set them: a run's OS process copies them


def fields_of(run: AboutRun) -> RunFields:
    return RunFields(run.run_id, run.scope_id, run.process_id)


def about(run: AboutRun) -> dict[str, Any]:
    """`log.info(..., extra=about(record))`: the line is about this run, whichever thread logs it."""
    return {ATTR: fields_of(run)}


def current_run() -> RunFields | None:
    return _current.get() or _process_run


@contextmanager
def run_context(run: AboutRun) -> Iterator[None]:
    """What this thread logs (and prints, once captured) meanwhile is about this run."""
    token = _current.set(fields_of(run))
    try:
        yield
    finally:
        drain_prints(this_thread=True)  # a line it printed without a newline ends with it
        _current.reset(token)


def set_process_run(run: AboutRun | None) -> None:
    """A run's OS process: every line it logs is about this run, from any thread (a run
    context, e.g. of an inline child, still wins)."""
    global _process_run
    _process_run = None if run is None else fields_of(run)


class RunFilter(logging.Filter):
    """Puts the run a line is about on the record; runs on every record, so it stays cheap."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, ATTR, None) is None:
            setattr(record, ATTR, _current.get() or _process_run)
        return True


def local_time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).astimezone().isoformat(timespec="milliseconds")


_BREAKS = str.maketrans({"\n": "\\n", "\r": "\\r", "\v": "\\v", "\f": "\\f", "\x1c": "\\x1c",
                         "\x1d": "\\x1d", "\x1e": "\\x1e", "\x85": "\\x85", "\u2028": "\\u2028",
                         "\u2029": "\\u2029"})


def escape_breaks(text: str) -> str:
    """Every line break (as str.splitlines sees them) escaped: one event, one line."""
    return text.translate(_BREAKS)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        head = f"{local_time(record)} {record.levelname} {record.name}"
        run: RunFields | None = getattr(record, ATTR, None)
        if run is not None:
            head = f"{head} [run={run.run} scope={run.scope} process={run.process}]"
        text = record.getMessage()
        if exc := _exception(self, record):
            text = f"{text}\n{exc}"
        return f"{head} {escape_breaks(text)}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {"time": local_time(record), "level": record.levelname,
                                "logger": record.name, "message": record.getMessage()}
        run: RunFields | None = getattr(record, ATTR, None)
        if run is not None:
            line.update(run=run.run, scope=run.scope, process=run.process)
        if exc := _exception(self, record):
            line["exc"] = exc
        return json.dumps(line)  # ASCII: no character in it can break the line


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts)


def make_handler(fmt: str = "text", stream: TextIO | None = None) -> logging.Handler:
    if fmt not in FORMATS:
        raise ShardsError(f"--log-format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    target = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(target.stream if isinstance(target, RunOutput) else target)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RunFilter())
    return handler


def configure_logging(level: str = "info", fmt: str = "text", *, stream: TextIO | None = None) -> None:
    """One handler on the root logger, writing to stderr (or `stream`) in this format; the
    handlers there before are removed. Either name in any case; a bad one raises ShardsError.
    pymongo logs from INFO up whatever the level."""
    global _settings
    level, fmt = level.lower(), fmt.lower()
    if level not in LEVELS:
        raise ShardsError(f"--log-level must be one of {', '.join(LEVELS)}, got {level!r}")
    handler = make_handler(fmt, stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # pymongo's DEBUG is every command and its reply (the change stream's polls too), a line each
    # few milliseconds: "debug" means the worker's and the app's own debug lines.
    logging.getLogger("pymongo").setLevel(max(root.level, logging.INFO))
    _settings = (level, fmt)


def settings() -> tuple[str, str]:
    """(level, format) as configure_logging last set them."""
    return _settings


class RunOutput(io.TextIOBase):
    """Stands for sys.stdout or sys.stderr: a line printed while a run is current becomes a
    log line about it (logger shards.stdout or shards.stderr); anything else goes through."""

    def __init__(self, stream: TextIO, logger: str, level: int) -> None:
        self.stream = stream
        self._log = logging.getLogger(logger)
        self._level = level
        self._lock = threading.Lock()
        self._partial: dict[int, tuple[RunFields, str]] = {}  # per thread: a line not ended yet
        self._inside = threading.local()  # logging from here: its own output must go through

    def write(self, text: str) -> int:
        run = current_run()
        if run is None or getattr(self._inside, "active", False):
            return self.stream.write(text)
        key = threading.get_ident()
        with self._lock:
            before, pending = self._partial.pop(key, (run, ""))
        if before != run:  # a line left unended by another run (a thread id is reused)
            self._emit(before, pending)
            pending = ""
        *lines, rest = (pending + text).split("\n")
        if len(rest) > MAX_LINE:
            lines.append(rest)
            rest = ""
        if rest:
            with self._lock:
                self._partial[key] = (run, rest)
        for line in lines:
            self._emit(run, line)
        return len(text)

    def drain(self, this_thread: bool = False) -> None:
        """Log the lines not ended yet: this thread's, or every thread's (before an exit)."""
        with self._lock:
            if this_thread:
                one = self._partial.pop(threading.get_ident(), None)
                partial = [one] if one is not None else []
            else:
                partial, self._partial = list(self._partial.values()), {}
        for run, line in partial:
            self._emit(run, line)
        self.flush()

    def flush(self) -> None:
        self.stream.flush()

    def _emit(self, run: RunFields, line: str) -> None:
        self._inside.active = True
        try:
            self._log.log(self._level, "%s", line, extra={ATTR: run})
        finally:
            self._inside.active = False

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return current_run() is None and self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> Any:  # type: ignore[override]
        return self.stream.encoding

    @property
    def errors(self) -> Any:  # type: ignore[override]
        return self.stream.errors

    def __getattr__(self, name: str) -> Any:  # buffer, line_buffering...: the stream's
        return getattr(self.stream, name)


def capture_prints() -> None:
    """sys.stdout and sys.stderr become RunOutputs (after configure_logging: its handler keeps
    the real stderr). Prints to stdout log at INFO, to stderr at WARNING."""
    if not isinstance(sys.stdout, RunOutput):
        sys.stdout = RunOutput(sys.stdout, "shards.stdout", logging.INFO)
    if not isinstance(sys.stderr, RunOutput):
        sys.stderr = RunOutput(sys.stderr, "shards.stderr", logging.WARNING)


def drain_prints(this_thread: bool = False) -> None:
    """Log what was printed without a final newline: by this thread (a run's end), or by any
    (a run's OS process, before it exits)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, RunOutput):
            stream.drain(this_thread)
