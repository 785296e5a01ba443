"""Process isolation: each top-level run in an OS process of its own. A crash ends only that run,
a forced stop or a deadline kills a run that never looks at should_continue(), and the worker
keeps serving throughout."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from shards.states import State

from integration.harness import ShardsHarness, WorkerProcess, wait_until

FAULTY = "tests/integration/apps/faulty.py:app"
SCOPES = ("a", "b", "c")


def _start(shards_env: ShardsHarness, *flags: str, concurrency: int = 2) -> WorkerProcess:
    worker = shards_env.start_worker(FAULTY, *flags, concurrency=concurrency)
    wait_until(lambda: shards_env.store.workers.alive(), what="a live worker")
    for scope in SCOPES:
        shards_env.define(scope)
    return worker


def _pid_of(shards_env: ShardsHarness, scope: str, process_id: str) -> int:
    record = wait_until(lambda: (r := shards_env.record(scope, process_id)).progress.message.startswith("pid")
                        and r, what=f"{scope}/{process_id} to report its pid")
    return int(record.progress.message.split()[1])


@pytest.mark.parametrize(("process_id", "reason"), [
    ("exit-hard", "exited with code 3"),
    ("segfault", "killed by signal 11 (SIGSEGV)"),
    ("oom", "MemoryError"),
])
def test_a_crash_ends_only_its_run_and_the_worker_keeps_serving(
    shards_env: ShardsHarness, process_id: str, reason: str
) -> None:
    worker = _start(shards_env)
    shards_env.ok("launch", "count", "--scope", "a", "--args", '{"n": 40, "pause": 0.05}')
    shards_env.wait_state("a", "count", State.RUNNING)
    shards_env.ok("launch", process_id, "--scope", "b")
    crashed = shards_env.wait_state("b", process_id, State.FAILED, State.DONE)
    assert (crashed.state, crashed.status.error) == (State.FAILED, reason)
    counted = shards_env.wait_state("a", "count", State.DONE, State.FAILED)
    assert counted.state is State.DONE
    assert f"counted to 40 in run {counted.run_id}" in worker.output()
    # The worker still claims: another run on it ends Done, and its history is complete.
    shards_env.ok("launch", "count", "--scope", "c", "--args", '{"n": 3}')
    assert shards_env.wait_state("c", "count", State.DONE, State.FAILED).state is State.DONE
    assert worker.popen.poll() is None
    [run] = shards_env.controller.history("b", process_id)
    assert (run.state, run.error) == (State.FAILED, reason)


def test_a_forced_stop_kills_a_run_that_never_checks(shards_env: ShardsHarness) -> None:
    worker = _start(shards_env)
    shards_env.ok("launch", "stubborn", "--scope", "a")
    shards_env.ok("launch", "count", "--scope", "b", "--args", '{"n": 40, "pause": 0.05}')
    pid = _pid_of(shards_env, "a", "stubborn")
    assert pid != worker.pid
    result = shards_env.ok("stop", "stubborn", "--scope", "a", "--force")
    assert "kill requested" in result.stdout
    stopped = shards_env.wait_state("a", "stubborn", State.STOPPED, State.FAILED, State.DONE)
    assert (stopped.state, stopped.status.error) == (State.STOPPED, "killed by a forced stop")
    assert shards_env.wait_state("b", "count", State.DONE, State.FAILED).state is State.DONE
    assert worker.popen.poll() is None


def test_a_stop_kills_a_run_that_never_checks_after_the_grace(shards_env: ShardsHarness) -> None:
    _start(shards_env, "--stop-grace", "1")
    shards_env.ok("launch", "stubborn", "--scope", "a")
    _pid_of(shards_env, "a", "stubborn")
    shards_env.ok("stop", "stubborn", "--scope", "a")
    shards_env.wait_state("a", "stubborn", State.STOPPING, State.STOPPED)
    stopped = shards_env.wait_state("a", "stubborn", State.STOPPED, State.FAILED, State.DONE)
    assert (stopped.state, stopped.status.error) == (State.STOPPED, "killed after 1 s grace")


def test_a_deadline_fails_a_run_that_never_checks(shards_env: ShardsHarness) -> None:
    _start(shards_env, "--stop-grace", "1")
    shards_env.ok("launch", "stubborn", "--scope", "a", "--timeout", "1.5")
    failed = shards_env.wait_state("a", "stubborn", State.FAILED, State.STOPPED, State.DONE)
    assert (failed.state, failed.status.error) == (State.FAILED, "deadline exceeded after 1.5 s")
    assert (failed.status.duration or 0.0) >= 1.5  # not ended before its deadline


def test_a_deadline_of_the_process_fails_a_cooperative_run(shards_env: ShardsHarness) -> None:
    _start(shards_env)
    shards_env.ok("launch", "short-fuse", "--scope", "a")
    failed = shards_env.wait_state("a", "short-fuse", State.FAILED, State.STOPPED, State.DONE)
    assert (failed.state, failed.status.error) == (State.FAILED, "deadline exceeded after 1 s")


def test_children_of_an_isolated_run_run_inline_and_end_properly(shards_env: ShardsHarness) -> None:
    worker = _start(shards_env)
    args = {"child": "count", "child_args": {"n": 5}}
    shards_env.ok("launch", "parent", "--scope", "a", "--args", json.dumps(args))
    parent = shards_env.wait_state("a", "parent", State.DONE, State.FAILED)
    assert parent.state is State.DONE
    [child_run] = shards_env.controller.history("a", "count")
    assert (child_run.state, child_run.parent_run_id) == (State.DONE, parent.run_id)
    assert shards_env.record("a", "count").progress.message == "All done"
    [parent_run] = shards_env.controller.history("a", "parent")
    assert parent_run.state is State.DONE and worker.popen.poll() is None


def test_a_crash_of_the_child_ends_the_inline_children_with_it(shards_env: ShardsHarness) -> None:
    _start(shards_env)
    args = {"child": "exit-hard", "child_args": {"code": 1}}
    shards_env.ok("launch", "parent", "--scope", "a", "--args", json.dumps(args))
    parent = shards_env.wait_state("a", "parent", State.FAILED, State.DONE)
    assert parent.status.error == "exited with code 1"
    child = shards_env.wait_state("a", "exit-hard", State.FAILED, State.DONE, State.STOPPED)
    assert (child.state, child.status.error) == (State.FAILED, "exited with code 1")


def test_a_forced_stop_of_a_run_in_a_thread_only_asks(shards_env: ShardsHarness) -> None:
    _start(shards_env, "--isolation", "thread")
    shards_env.ok("launch", "count", "--scope", "a", "--args", '{"n": 400, "pause": 0.05}')
    shards_env.wait_state("a", "count", State.RUNNING)
    shards_env.ok("stop", "count", "--scope", "a", "--force")
    stopped = shards_env.wait_state("a", "count", State.STOPPED, State.FAILED, State.DONE)
    assert (stopped.state, stopped.status.error) == (State.STOPPED, "")


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_a_run_never_outlives_its_worker(shards_env: ShardsHarness) -> None:
    worker = _start(shards_env)
    shards_env.ok("launch", "stubborn", "--scope", "a")
    pid = _pid_of(shards_env, "a", "stubborn")
    worker.kill()  # SIGKILL: no shutdown; the run's process sees its pipe close and exits
    wait_until(lambda: _gone(pid), what=f"the run's process {pid} to exit with its worker")



def test_a_forced_stop_whose_request_the_worker_missed_still_kills_at_once(shards_env: ShardsHarness) -> None:
    """A stop request can be missed (its event lost in a broken stream, the sweep still seconds
    away); the worker's own look at its records each heartbeat delivers the stop then. It must
    deliver it as it was asked: forced, not turned into a stop that waits for the grace. The test
    leaves only that way: it takes the request away while the worker is frozen."""
    worker = _start(shards_env, "--stop-grace", "30", "--sweep-interval", "60")
    shards_env.ok("launch", "stubborn", "--scope", "a")
    _pid_of(shards_env, "a", "stubborn")
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        shards_env.ok("stop", "stubborn", "--scope", "a", "--force")
        record = shards_env.record("a", "stubborn")
        [stop] = shards_env.store.requests.for_runs([record.run_id])
        assert shards_env.store.requests.withdraw(stop.id)
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    stopped = shards_env.wait_state("a", "stubborn", State.STOPPED, State.FAILED, State.DONE, timeout=20)
    assert (stopped.state, stopped.status.error) == (State.STOPPED, "killed by a forced stop")
