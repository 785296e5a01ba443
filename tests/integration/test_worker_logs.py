"""Worker logs, from a real worker OS process: one line per event on stderr, and every line about
a run carries its id, the worker's own lines and what the run's code logs and prints alike."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from shards.states import State

from integration.harness import ShardsHarness, WorkerProcess, wait_until

APP = "tests/integration/apps/chatty_logs.py:app"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")


def _start(env: ShardsHarness, *flags: str) -> tuple[WorkerProcess, Path]:
    """A worker whose stderr (the log) and stdout are kept apart; returns it and its stdout."""
    n = len(env.workers)
    out = env.workdir / f"worker-{n}.out"
    worker = env.start_worker(APP, *flags, log=f"worker-{n}.err", stdout=out)
    wait_until(lambda: env.store.workers.alive(), what="a live worker")
    env.define("farm")
    return worker, out


def _json_lines(worker: WorkerProcess) -> list[dict[str, Any]]:
    """Every line of the worker's stderr, each one JSON object (asserted)."""
    lines = worker.output().splitlines()
    assert lines
    parsed = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(event, dict), line
        assert {"time", "level", "logger", "message"} <= event.keys(), line
        assert TIME.match(event["time"]), line
        parsed.append(event)
    return parsed


def _about(events: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("run") == run_id]


def _has(events: list[dict[str, Any]], logger: str, message: str) -> dict[str, Any]:
    found = [e for e in events if e["logger"] == logger and e["message"] == message]
    assert len(found) == 1, f"{logger}: {message!r} in {[(e['logger'], e['message']) for e in events]}"
    return found[0]


@pytest.mark.parametrize(("isolation", "level"), [("process", "info"), ("thread", "debug")])
def test_json_lines_name_the_run_they_are_about(
    shards_env: ShardsHarness, isolation: str, level: str
) -> None:
    worker, stdout = _start(shards_env, "--log-format", "json", "--isolation", isolation,
                            "--log-level", level)
    shards_env.ok("launch", "talk", "--scope", "farm")
    run_id = shards_env.wait_state("farm", "talk", State.DONE, State.FAILED).run_id
    shards_env.ok("launch", "wait", "--scope", "farm")
    waited = shards_env.wait_state("farm", "wait", State.RUNNING).run_id
    shards_env.ok("stop", "wait", "--scope", "farm")
    shards_env.wait_state("farm", "wait", State.STOPPED, State.FAILED, State.DONE)
    assert worker.terminate() == 0
    events = _json_lines(worker)

    about = _about(events, run_id)
    assert {(e["scope"], e["process"]) for e in about} == {("farm", "talk")}
    _has(about, "shards.worker", "started")
    assert [e for e in about if e["logger"] == "shards.worker" and e["message"].startswith("ended Done in ")]
    _has(about, "chatty_logs", f"logged by {run_id}")
    _has(about, "chatty_logs", f"two lines\nby {run_id}")
    caught = _has(about, "chatty_logs", f"caught by {run_id}")
    assert caught["level"] == "ERROR" and f"ValueError: raised\nby {run_id}" in caught["exc"]
    assert _has(about, "shards.stdout", f"printed by {run_id}")["level"] == "INFO"
    assert _has(about, "shards.stderr", f"to stderr by {run_id}")["level"] == "WARNING"
    # Nothing about the run goes without its id; nothing printed is lost.
    assert [e for e in events if run_id in e["message"] and e.get("run") != run_id] == []
    if level == "debug":
        assert _has(about, "chatty_logs", f"debug by {run_id}")["level"] == "DEBUG"
        assert [e for e in about if e["message"].startswith("claimed (")]
    else:
        assert not [e for e in events if e["level"] == "DEBUG"]
    assert stdout.read_text() == ""

    stopped = _about(events, waited)
    _has(stopped, "shards.worker", "stopping")
    assert [e for e in stopped if e["message"].startswith("ended Stopped in ")]
    lines_about_no_run = [e for e in events if "run" not in e]
    assert any(e["message"].endswith(" stopped") for e in lines_about_no_run)  # the worker's own


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_an_inline_child_and_a_failure_carry_their_own_run(shards_env: ShardsHarness, isolation: str) -> None:
    worker, stdout = _start(shards_env, "--log-format", "json", "--isolation", isolation)
    shards_env.ok("launch", "talk-parent", "--scope", "farm")
    parent = shards_env.wait_state("farm", "talk-parent", State.DONE, State.FAILED).run_id
    [child_run] = shards_env.controller.history("farm", "talk")
    child = child_run.run_id
    shards_env.ok("launch", "talk-fail", "--scope", "farm")
    failed = shards_env.wait_state("farm", "talk-fail", State.FAILED, State.DONE).run_id
    assert worker.terminate() == 0
    events = _json_lines(worker)

    in_parent, in_child = _about(events, parent), _about(events, child)
    _has(in_parent, "chatty_logs", f"parent logged by {parent}")
    _has(in_parent, "shards.stdout", f"parent printed by {parent}")
    _has(in_child, "shards.worker", f"started (inline child of run {parent})")
    assert [e for e in in_child if e["message"].startswith("ended Done in ")]
    _has(in_child, "chatty_logs", f"logged by {child}")
    _has(in_child, "shards.stdout", f"printed by {child}")
    assert [e for e in events if child in e["message"] and e.get("run") != child
            and not e["message"].startswith("started (inline child")] == []

    about_failed = _about(events, failed)
    _has(about_failed, "shards.stdout", f"printed by {failed}")  # no newline: logged all the same
    [failure] = [e for e in about_failed if e["message"] == "failed: failed"]
    assert f"RuntimeError: failed\nby {failed}" in failure["exc"]
    assert [e for e in about_failed if e["message"].startswith("ended Failed in ")]
    assert stdout.read_text() == ""
    # A run's process that sent its end exits quietly: no "the worker is gone" as the pipe closes.
    assert [e for e in events if e["logger"] == "shards.worker" and e["level"] == "ERROR"] == []


def test_text_lines_and_a_warning_level(shards_env: ShardsHarness) -> None:
    """Text: one line per event (a traceback's lines escaped); --log-level warning hides INFO."""
    worker, stdout = _start(shards_env, "--log-level", "warning")
    shards_env.ok("launch", "talk", "--scope", "farm")
    run_id = shards_env.wait_state("farm", "talk", State.DONE, State.FAILED).run_id
    assert worker.terminate() == 0
    lines = worker.output().splitlines()
    line = re.compile(r"^(\S+) (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+) "
                      r"(\[run=\S+ scope=\S+ process=\S+\] )?")
    for text in lines:
        match = line.match(text)
        assert match and TIME.match(match[1]), text
        assert match[2] in ("WARNING", "ERROR", "CRITICAL"), text
    fields = f"[run={run_id} scope=farm process=talk]"
    assert any(x.endswith(f"WARNING chatty_logs {fields} two lines\\nby {run_id}") for x in lines)
    assert any(x.endswith(f"WARNING shards.stderr {fields} to stderr by {run_id}") for x in lines)
    [caught] = [x for x in lines if f"ERROR chatty_logs {fields} caught by {run_id}\\nTraceback" in x]
    assert f"ValueError: raised\\nby {run_id}" in caught
    assert not any(f"printed by {run_id}" in x or "started" in x for x in lines)  # INFO
    assert stdout.read_text() == ""
