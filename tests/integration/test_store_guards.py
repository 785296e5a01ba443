"""State changes are guarded writes: the transition table holds on the real server."""

from __future__ import annotations

import pytest
from shards.errors import ProcessActive
from shards.records import ProcessRecord
from shards.states import State
from shards_controller import Controller
from shards_store import connect


@pytest.fixture
def controller(mongo_db_uri: str) -> Controller:
    store = connect(mongo_db_uri)
    store.ensure_indexes()
    for process_id in ("job", "other"):
        store.processes.define("s", process_id, {"name": process_id.title(), "warning": "",
                                                 "detailLevel": 1, "special": False})
    return Controller(store)


def test_a_child_never_takes_over_a_scheduled_launch(controller: Controller) -> None:
    scheduled = controller.launch("s", "job")
    assert scheduled.state is State.SCHEDULED
    child = ProcessRecord(scope_id="s", process_id="job", name="Job", run_id="child-run")
    assert controller.store.processes.start(child, worker_id="w", parent_run_id="parent") is None
    assert controller.get("s", "job").run_id == scheduled.run_id


def test_a_launch_starts_only_its_own_run(controller: Controller) -> None:
    scheduled = controller.launch("s", "job")
    stale = ProcessRecord(scope_id="s", process_id="job", name="Job", run_id="an-older-run")
    assert controller.store.processes.start(stale, worker_id="w") is None
    started = controller.store.processes.start(scheduled, worker_id="w")
    assert started is not None and started.state is State.RUNNING
    assert started.status.running_since is not None and started.worker_id == "w"


def test_two_launches_race_and_one_wins(controller: Controller) -> None:
    controller.launch("s", "job")
    with pytest.raises(ProcessActive, match="already active \\(Scheduled\\)"):
        controller.launch("s", "job")
    assert len(controller.history("s", "job")) == 1
    assert controller.store.requests.pending("launch") == 1


def test_no_write_leaves_the_transition_table(controller: Controller) -> None:
    processes = controller.store.processes
    assert processes.move("s", "other", State.STOPPING) is None  # Idle -> Stopping
    assert processes.move("s", "other", State.DONE) is None  # Idle -> Done
    assert processes.move("s", "other", State.SCHEDULED) is not None
    assert processes.move("s", "other", State.IDLE) is None  # Scheduled -> Idle
    assert controller.get("s", "other").state is State.SCHEDULED
