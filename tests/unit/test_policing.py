"""Policing's stops: one stop of a run reaches the store and the log once, however many ways it
arrives (the stop request, and the heartbeat's look at its own StopRequested records)."""

from __future__ import annotations

from typing import Any, cast

from shards.app import ProcessDefinition
from shards.records import ProcessRecord, utcnow
from shards.retries import Cause
from shards.states import State
from shards_store import Store
from shards_worker.ledger import Ledger
from shards_worker.policing import Policing
from shards_worker.runs import Run


class Processes:
    def __init__(self) -> None:
        self.moves: list[tuple[str, State]] = []

    def move(self, scope_id: str, process_id: str, state: State, **_: Any) -> None:
        self.moves.append((process_id, state))


class FakeStore:
    def __init__(self) -> None:
        self.processes = Processes()


def test_a_stop_that_arrives_twice_is_recorded_once_and_a_forced_one_still_counts() -> None:
    store = FakeStore()
    ledger = Ledger(cast(Store, None))
    policing = Policing(cast(Store, store), ledger, stop_grace=30)
    record = ProcessRecord(scope_id="s", process_id="wait", name="Wait", run_id="r1")
    run = Run(record=record, definition=cast(ProcessDefinition, None), catalog={}, scope_data={},
              started_at=utcnow())
    ledger.adopt(run)
    assert policing.stop_run("r1")  # the heartbeat saw StopRequested first...
    assert policing.stop_run("r1")  # ...then the stop request came
    assert store.processes.moves == [("wait", State.STOPPING)] and run.stop_requested()
    assert policing.stop_run("r1", force=True)  # a forced stop after it still forces
    assert run.clock.forced and len(store.processes.moves) == 2
    assert policing.stop_run("r1", force=True)  # the forced stop by its other way: once is enough
    assert len(store.processes.moves) == 2


def test_a_shutdown_hands_off_only_the_runs_no_one_was_stopping() -> None:
    """A run a user (or a schedule's CancelOther) was stopping ends for that reason when its worker
    shuts down meanwhile: it is not handed off to run again (found by make chaos)."""
    ledger = Ledger(cast(Store, None))
    policing = Policing(cast(Store, FakeStore()), ledger, stop_grace=30)
    definition = cast(ProcessDefinition, type("Definition", (), {"on_shutdown": "retry"})())
    runs = {}
    for run_id in ("stopping", "running"):
        record = ProcessRecord(scope_id="s", process_id=run_id, name=run_id, run_id=run_id)
        runs[run_id] = Run(record=record, definition=definition, catalog={}, scope_data={},
                           started_at=utcnow())
        ledger.adopt(runs[run_id])
    runs["stopping"].ask_stop()
    policing.hand_off_all("w1")
    assert runs["stopping"].ended_by is None and runs["stopping"].stop_reason == ""
    assert runs["running"].ended_by is Cause.HANDOFF and "handed off" in runs["running"].stop_reason
