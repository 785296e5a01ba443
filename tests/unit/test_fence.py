"""The fence: a worker that cannot renew its lease stops its runs, kills the OS processes of those
still executing near the lease's end, and exits only for code it cannot kill (issue 22)."""

from __future__ import annotations

from typing import cast

import pytest
from shards.app import ProcessDefinition
from shards.records import ProcessRecord, utcnow
from shards.retries import Cause
from shards_store import Store
from shards_worker import fencing
from shards_worker.fencing import EXIT_LEASE_LOST, Fence
from shards_worker.lease import Lease
from shards_worker.ledger import Ledger
from shards_worker.policing import Policing
from shards_worker.runs import Run
from shards_worker.state import WorkerState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def a_run(run_id: str) -> Run:
    record = ProcessRecord(scope_id="s", process_id=f"p-{run_id}", name="P", run_id=run_id)
    return Run(record=record, definition=cast(ProcessDefinition, None), catalog={}, scope_data={},
               started_at=utcnow())


def test_the_fence_kills_isolated_runs_and_exits_only_for_a_run_in_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exits: list[int] = []
    monkeypatch.setattr(fencing.os, "_exit", exits.append)
    monkeypatch.setattr(fencing.logging, "shutdown", lambda: None)
    clock = Clock()
    state = WorkerState("w", id="w-1")
    ledger = Ledger(cast(Store, None))  # the fence never touches the store
    fence = Fence(state, Lease(10.0, clock), ledger, Policing(cast(Store, None), ledger, stop_grace=30))
    killed: list[str] = []
    isolated = a_run("iso")
    isolated.kill = lambda: killed.append("iso")
    ledger.adopt(isolated)

    clock.now += 5.1  # half the lease: stop, claim nothing
    fence.check()
    assert state.fenced.is_set() and isolated.stop_requested() and isolated.ended_by is Cause.WORKER_LOST
    assert not killed
    clock.now += 3.5  # 86%: what still executes in a process of its own is killed; the worker stays
    fence.check()
    assert killed == ["iso"] and isolated.killed and exits == []
    assert isolated.clock.kill_reason.startswith("killed: worker w-1 lost contact with MongoDB")
    fence.check()
    assert killed == ["iso"], "killed once"

    ledger.adopt(a_run("thread"))  # no kill: it executes in one of the worker's threads
    fence.check()
    assert exits == [EXIT_LEASE_LOST]


def test_a_run_already_stopping_keeps_its_own_reason_when_the_fence_stops_it() -> None:
    ledger = Ledger(cast(Store, None))
    policing = Policing(cast(Store, None), ledger, stop_grace=30)
    stopping, running = a_run("stopping"), a_run("running")
    stopping.ask_stop("deadline exceeded after 3 s")
    for run in (stopping, running):
        ledger.adopt(run)
    policing.stop_all("stopped: worker w-1 lost contact with MongoDB", Cause.WORKER_LOST)
    assert stopping.ended_by is None and stopping.stop_reason == "deadline exceeded after 3 s"
    assert running.ended_by is Cause.WORKER_LOST
