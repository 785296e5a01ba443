"""Worker log lines, formatted in memory: one line per event, the logger and the run as fields."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from shards.errors import ShardsError
from shards_worker import logs

RUN = SimpleNamespace(run_id="r-1.2", scope_id="farm", process_id="count")
OTHER = SimpleNamespace(run_id="r-9", scope_id="barn", process_id="shear")


def record(message: str = "hello %s", *args: object, level: int = logging.INFO, name: str = "shards.worker",
           exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad\nrow")
        except ValueError:
            exc_info = sys.exc_info()
    made = logging.LogRecord(name, level, __file__, 1, message, args or None, exc_info)
    made.__dict__.update(extra)
    logs.RunFilter().filter(made)
    return made


def text(made: logging.LogRecord) -> str:
    return logs.TextFormatter().format(made)


def as_json(made: logging.LogRecord) -> dict[str, object]:
    line = logs.JsonFormatter().format(made)
    assert "\n" not in line and len(line.splitlines()) == 1
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


@pytest.fixture
def paris() -> Iterator[None]:
    """Local time an hour or two ahead of UTC, whatever the machine's zone."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Paris"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_a_text_line_has_time_level_logger_then_the_message(paris: None) -> None:
    made = record("hello %s", "world")
    made.created = 1_800_000_000.123  # 2027-01-15T08:00:00.123Z
    assert text(made) == "2027-01-15T09:00:00.123+01:00 INFO shards.worker hello world"


def test_a_line_about_a_run_carries_its_fields_from_extra() -> None:
    made = record("started", **logs.about(RUN))
    assert text(made).endswith(" INFO shards.worker [run=r-1.2 scope=farm process=count] started")
    parsed = as_json(made)
    assert (parsed["run"], parsed["scope"], parsed["process"]) == ("r-1.2", "farm", "count")


def test_the_run_context_names_the_run_and_extra_wins() -> None:
    with logs.run_context(RUN):
        inside = record("mine", name="app")
        other = record("about another", **logs.about(OTHER))
        with logs.run_context(OTHER):
            nested = record("nested")
        back = record("back")
    outside = record("after")
    mine, others = ("r-1.2", "farm", "count"), ("r-9", "barn", "shear")
    runs = [r.shards_run for r in (inside, other, nested, back)]  # type: ignore[attr-defined]
    assert runs == [mine, others, others, mine]
    assert outside.shards_run is None  # type: ignore[attr-defined]
    assert "run" not in as_json(outside)
    assert "[run=" not in text(outside)


def test_the_run_context_stays_in_its_thread() -> None:
    seen = []
    with logs.run_context(RUN):
        thread = threading.Thread(target=lambda: seen.append(record("elsewhere").shards_run))  # type: ignore[attr-defined]
        thread.start()
        thread.join()
    assert seen == [None]


def test_a_process_run_covers_every_thread_and_a_context_wins() -> None:
    logs.set_process_run(RUN)
    try:
        seen = []
        thread = threading.Thread(target=lambda: seen.append(record("elsewhere").shards_run))  # type: ignore[attr-defined]
        thread.start()
        thread.join()
        with logs.run_context(OTHER):
            child = record("child")
    finally:
        logs.set_process_run(None)
    assert seen == [("r-1.2", "farm", "count")]
    assert child.shards_run == ("r-9", "barn", "shear")  # type: ignore[attr-defined]


def test_a_json_line_has_its_fields_and_the_traceback() -> None:
    parsed = as_json(record("two\nlines by %s", "me", level=logging.ERROR, name="app", exc=True,
                            **logs.about(RUN)))
    assert parsed.keys() == {"time", "level", "logger", "message", "run", "scope", "process", "exc"}
    assert (parsed["level"], parsed["logger"], parsed["message"]) == ("ERROR", "app", "two\nlines by me")
    assert isinstance(parsed["exc"], str)
    assert parsed["exc"].startswith("Traceback (most recent call last):\n")
    assert parsed["exc"].endswith("ValueError: bad\nrow")
    assert "exc" not in as_json(record("plain"))


@pytest.mark.parametrize("odd", ["\u2028", "\x85", "\r", "\x1e"])
def test_no_line_break_survives_in_either_format(odd: str) -> None:
    made = record(f"a{odd}b\nc", exc=True)
    assert len(text(made).splitlines()) == 1
    assert len(logs.JsonFormatter().format(made).splitlines()) == 1
    assert json.loads(logs.JsonFormatter().format(made))["message"] == f"a{odd}b\nc"


def test_text_escapes_line_breaks_and_appends_the_traceback() -> None:
    line = text(record("first\nsecond\r", exc=True))
    assert " first\\nsecond\\r\\nTraceback (most recent call last):\\n" in line
    assert line.endswith("ValueError: bad\\nrow")


def _root_to(stream: io.StringIO, level: str, fmt: str) -> logging.Logger:
    logs.configure_logging(level, fmt, stream=stream)
    return logging.getLogger("shards.worker")


@pytest.fixture
def restore_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(logs, "_settings", logs.settings())
    root, pymongo = logging.getLogger(), logging.getLogger("pymongo")
    handlers, level, pymongo_level = list(root.handlers), root.level, pymongo.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        pymongo.setLevel(pymongo_level)


def test_configure_logging_installs_one_handler_and_filters_by_level(restore_root: None) -> None:
    stream = io.StringIO()
    log = _root_to(stream, "WARNING", "json")
    assert len(logging.getLogger().handlers) == 1
    assert logs.settings() == ("warning", "json")
    log.info("hidden")
    log.debug("hidden too")
    with logs.run_context(RUN):
        log.warning("shown %d", 1)
    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "shown 1" and json.loads(line)["run"] == "r-1.2"

    stream = io.StringIO()
    log = _root_to(stream, "debug", "text")
    assert len(logging.getLogger().handlers) == 1
    log.debug("now %s", "shown")
    logging.getLogger("pymongo.command").debug("every command")
    assert stream.getvalue().endswith(" DEBUG shards.worker now shown\n")
    assert "every command" not in stream.getvalue()


@pytest.mark.parametrize(("level", "fmt", "error"), [
    ("loud", "text", "--log-level must be one of debug, info, warning, error, got 'loud'"),
    ("info", "yaml", "--log-format must be one of text, json, got 'yaml'"),
])
def test_a_bad_level_or_format_is_one_clear_error(
    restore_root: None, level: str, fmt: str, error: str
) -> None:
    with pytest.raises(ShardsError) as raised:
        logs.configure_logging(level, fmt, stream=io.StringIO())
    assert str(raised.value) == error


def test_prints_during_a_run_become_its_log_lines(
    restore_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream, real = io.StringIO(), io.StringIO()
    _root_to(stream, "info", "json")
    out = logs.RunOutput(real, "shards.stdout", logging.INFO)
    monkeypatch.setattr(sys, "stdout", out)
    out.write("before any run\n")
    with logs.run_context(RUN):
        out.write("one\ntw")
        out.write("o\n")
        out.write("no newline")
    out.write("after\n")
    assert real.getvalue() == "before any run\nafter\n"
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["logger"], e["message"], e["run"]) for e in events] == [
        ("shards.stdout", "one", "r-1.2"), ("shards.stdout", "two", "r-1.2"),
        ("shards.stdout", "no newline", "r-1.2")]  # the run's end logs a line left open


def test_logging_from_a_print_handler_cannot_loop(restore_root: None) -> None:
    """The handler writes to the real stderr even when sys.stderr is captured."""
    real = io.StringIO()
    captured = logs.RunOutput(real, "shards.stderr", logging.WARNING)
    logs.configure_logging("info", "text", stream=captured)  # type: ignore[arg-type]
    with logs.run_context(RUN):
        captured.write("printed\n")
    [line] = real.getvalue().splitlines()
    assert line.endswith(" WARNING shards.stderr [run=r-1.2 scope=farm process=count] printed")


def test_a_captured_stream_still_looks_like_its_stream() -> None:
    real = io.TextIOWrapper(io.BytesIO(), encoding="latin-1", errors="replace")
    out = logs.RunOutput(real, "shards.stdout", logging.INFO)
    assert (out.encoding, out.errors, out.buffer) == ("latin-1", "replace", real.buffer)
    assert not out.isatty()
