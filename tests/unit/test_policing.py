"""Policing's stops: one stop of a run reaches the store and the log once, however many ways it
arrives (the stop request, and the heartbeat's look at its own StopRequested records)."""

from __future__ import annotations

from typing import Any, cast

from shards.app import ProcessDefinition
from shards.records import ProcessRecord, utcnow
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
