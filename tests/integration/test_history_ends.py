"""A run's history entry always ends: found by `make chaos` with schedules (seed 1, duration 60,
120 launches). A worker SIGKILLed 28 ms after its run's body returned left the record Done (the
next nominal time launched behind it) and the history entry Running forever. A run's end writes
the record first (the other order would leave a completed body's record Running, for a reconciler
to run again), so the reconciler ends such entries from the record."""

from __future__ import annotations

import pytest
from shards.records import ProcessStatus
from shards.states import State
from shards_controller import Controller
from shards_store import Store, connect
from shards_store.reconciler import Reconciler


class Killed(Exception):
    """The writer died here: nothing after this write happened."""


@pytest.fixture
def store(mongo_db_uri: str) -> Store:
    store = connect(mongo_db_uri)
    store.ensure_indexes()
    store.processes.define("s", "job", {"name": "Job", "warning": "", "detailLevel": 1, "special": False})
    return store


def test_a_writer_killed_inside_end_run_never_leaves_a_final_record_beside_a_running_entry(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched = Controller(store).launch("s", "job")
    running = store.processes.start("s", "job", launched.run_id, worker_id="w1")
    assert running is not None and running.status.running_since is not None
    store.runs.started(launched.run_id, "s", "job", "w1", running.status.running_since, args={},
                       launch_id=running.launch_id, attempt=running.attempt)

    def killed(*args: object, **kwargs: object) -> None:
        raise Killed()

    monkeypatch.setattr(store.runs, "ended", killed)  # the worker dies at its history write
    with pytest.raises(Killed):
        store.end_run(running, ProcessStatus.ended(State.DONE, running_since=running.status.running_since))
    monkeypatch.undo()

    record = store.processes.get("s", "job")
    assert record is not None and record.state is State.DONE  # the record first
    reconciler = Reconciler(store, orphan_grace=0)
    for _ in range(2):  # the first pass sees the entry, the next ends it
        reconciler.reconcile(60)
    entry = store.runs.get(launched.run_id)
    assert entry is not None and entry.state is State.DONE, entry
    assert entry.ended_at == record.status.ended_at
