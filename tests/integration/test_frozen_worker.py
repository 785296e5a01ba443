"""A run's code never overlaps another execution of the same launch, however its worker failed:
here a worker frozen with SIGSTOP (a stalled VM, a stopped container) while another takes over.

The run's own OS process enforces its worker's lease: the worker hands it the lease's deadlines
at every renewal; a frozen worker renews nothing, so the run ends itself before the others may
declare the worker lost and relaunch it. Executions are read from a journal the process writes
itself, outside MongoDB.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from shards.states import State

from integration.harness import ShardsHarness, wait_until

SCOPE = "frozen"


def _journal(path: Path) -> dict[int, list[float]]:
    """Wall-clock times of each attempt's ticks (the processes share this machine's clock)."""
    ticks: dict[int, list[float]] = {}
    for line in path.read_text().splitlines():
        attempt, _pid, at = line.split()
        ticks.setdefault(int(attempt), []).append(float(at))
    return ticks


def test_a_frozen_workers_run_ends_before_its_relaunch_starts(shards_env: ShardsHarness,
                                                              tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    frozen = shards_env.start_worker()  # lease 3 s, heartbeat 0.5 s (the harness' flags)
    wait_until(lambda: len(shards_env.store.workers.alive()) == 1, what="the first worker")
    shards_env.define(SCOPE)
    args = json.dumps({"journal": str(journal), "seconds": 40})
    shards_env.ok("launch", "ticker", "--scope", SCOPE, "--args", args, "--retries", "2")
    shards_env.wait_state(SCOPE, "ticker", State.RUNNING)
    wait_until(lambda: journal.exists() and journal.stat().st_size > 0, what="attempt 1 to tick")
    shards_env.start_worker()
    wait_until(lambda: len(shards_env.store.workers.alive()) == 2, what="a second worker")
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        wait_until(
            lambda: (r := shards_env.record(SCOPE, "ticker")).attempt >= 2 and r.state is State.RUNNING and r,
            what="attempt 2 to run on the other worker")
        wait_until(lambda: 2 in _journal(journal), what="attempt 2 to tick")
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    ticks = _journal(journal)
    last_of_first, first_of_second = max(ticks[1]), min(ticks[2])
    assert last_of_first < first_of_second, (
        f"attempt 1 executed {last_of_first - first_of_second:.2f}s after attempt 2 started")


def test_a_run_its_own_process_ended_for_a_frozen_worker_is_handed_off(shards_env: ShardsHarness,
                                                                       tmp_path: Path) -> None:
    """Frozen past its lease (no other worker to take over), the worker wakes to find its run's
    process gone: ended by its own lease guard. That is its worker losing the lease, as a kill by
    the fence would be: attempt 1 ends Stopped and is handed off (no retry spent), not Failed."""
    journal = tmp_path / "journal"
    frozen = shards_env.start_worker()
    shards_env.define(SCOPE)
    args = json.dumps({"journal": str(journal), "seconds": 6})
    shards_env.ok("launch", "ticker", "--scope", SCOPE, "--args", args)  # no retries
    shards_env.wait_state(SCOPE, "ticker", State.RUNNING)
    wait_until(lambda: journal.exists() and journal.stat().st_size > 0, what="attempt 1 to tick")
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: "ending runs" in frozen.output(), what="the run's process to end itself")
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    done = shards_env.wait_state(SCOPE, "ticker", State.DONE, State.FAILED, State.STOPPED, timeout=60)
    history = shards_env.controller.history(SCOPE, "ticker")
    assert [(run.attempt, run.state) for run in reversed(history)] == [(1, State.STOPPED), (2, State.DONE)], (
        history, frozen.output()[-3000:])
    assert (done.attempt, done.retried) == (2, 0), done
    assert "lease" in history[-1].error, history[-1]
    ticks = _journal(journal)
    assert max(ticks[1]) < min(ticks[2])
