"""Run logs: what a process logs through ctx.log is kept per run (bounded, with a marker), its
traceback appended when it fails, printed by `shards logs` and followed live by `shards logs -f`."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from shards.runlog import MAX_LINES
from shards.states import State

from integration.harness import REPO, ShardsHarness, wait_until

APP = "tests/integration/apps/runlogs.py:app"


def _wait_in_history(env: ShardsHarness) -> None:
    wait_until(lambda: env.controller.run_logs("farm", "log-slowly").active, what="the run in the history")


def _follow(env: ShardsHarness, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "shards_cli", "logs", "log-slowly", "--scope", "farm", "-f", *extra]
    return subprocess.Popen(command, cwd=REPO, env=env.env, stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_a_failed_runs_lines_and_traceback_are_kept_and_printed(
    shards_env: ShardsHarness, isolation: str
) -> None:
    shards_env.start_worker(APP, "--isolation", isolation)
    shards_env.define("farm")
    shards_env.ok("launch", "log-lines", "--scope", "farm", "--args", '{"n": 5, "fail": true}')
    run_id = shards_env.wait_state("farm", "log-lines", State.FAILED).run_id
    printed = shards_env.ok("logs", "log-lines", "--scope", "farm").stdout
    lines = printed.splitlines()
    assert f"WARNING starting run {run_id}" in lines[0]
    assert "ERROR handled an error" in lines[1] and "KeyError: 'caught'" in printed
    infos = [line.split(" ", 1)[1] for line in lines if " INFO " in line]
    assert infos == [f"INFO line {i}" for i in range(5)]
    assert "not recorded" not in printed
    failure = printed[printed.index("ERROR the run failed: gave up after 5 lines"):]
    assert "Traceback (most recent call last):" in failure and "ValueError: gave up after 5 lines" in failure
    assert "shards_worker" not in failure  # the process's own frames, not the worker's call of it
    document = shards_env.ok("logs", "log-lines", "--scope", "farm", "--run", run_id, "-o", "json").json()
    assert (document["runId"], document["state"], document["active"], document["dropped"]) == (
        run_id, "Failed", False, 0)
    assert "\n".join(document["lines"]) + "\n" == printed  # one entry per call, a traceback within its entry
    assert len(document["lines"]) == 8


def test_many_lines_keep_the_last_ones_with_a_marker(shards_env: ShardsHarness) -> None:
    shards_env.start_worker(APP)
    shards_env.define("farm")
    shards_env.ok("launch", "log-lines", "--scope", "farm", "--args", '{"n": 2500}')
    run_id = shards_env.wait_state("farm", "log-lines", State.DONE).run_id
    log = shards_env.controller.run_logs("farm", "log-lines", run_id)
    assert (len(log.lines), log.dropped) == (MAX_LINES, 2502 - MAX_LINES)
    assert log.lines[0].endswith("INFO line 1500") and log.lines[-1].endswith("INFO line 2499")
    printed = shards_env.ok("logs", "log-lines", "--scope", "farm").stdout.splitlines()
    assert printed[0] == "… 1502 earlier lines dropped"
    assert len(printed) == MAX_LINES + 1


def test_follow_prints_lines_as_they_come_and_exits_with_the_runs_ending(shards_env: ShardsHarness) -> None:
    shards_env.start_worker(APP)
    shards_env.define("farm")
    shards_env.ok("launch", "log-slowly", "--scope", "farm", "--args", '{"n": 30, "fail": true}')
    shards_env.wait_state("farm", "log-slowly", State.RUNNING)
    _wait_in_history(shards_env)
    started = time.monotonic()
    follower = _follow(shards_env)
    assert follower.stdout is not None
    first = follower.stdout.readline()
    assert "slow line" in first and time.monotonic() - started < 5
    rest = follower.stdout.read()
    assert follower.wait(timeout=30) == 3  # Failed
    printed = (first + rest).splitlines()
    numbered = [int(line.rsplit(" ", 1)[1]) for line in printed if "INFO slow line" in line]
    assert numbered == list(range(numbered[0], 30))
    assert "ValueError: gave up after 30 lines" in rest


def test_follow_a_stopped_run_exits_4_and_an_unknown_run_is_one_line(shards_env: ShardsHarness) -> None:
    shards_env.start_worker(APP, "--isolation", "thread")
    shards_env.define("farm")
    shards_env.ok("launch", "log-slowly", "--scope", "farm", "--args", '{"n": 1000}')
    shards_env.wait_state("farm", "log-slowly", State.RUNNING)
    _wait_in_history(shards_env)
    follower = _follow(shards_env, "-o", "json")
    time.sleep(1.0)
    shards_env.ok("stop", "log-slowly", "--scope", "farm")
    out, _ = follower.communicate(timeout=30)
    assert follower.returncode == 4
    assert '"line"' in out and "asked to stop at line" in out.splitlines()[-1]
    missing = shards_env.cli("logs", "log-slowly", "--scope", "farm", "--run", "nope")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "shards: error: no run 'nope' of process 'log-slowly' in scope 'farm' "
        "(its runs: shards history log-slowly --scope farm)"]
    timed = shards_env.cli("logs", "log-slowly", "--scope", "farm", "--follow", "--timeout", "0")
    assert timed.returncode == 4  # an ended run: its lines, and its ending as the code (as shards wait)
