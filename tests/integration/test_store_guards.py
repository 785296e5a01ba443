"""State changes are guarded writes: the transition table holds on the real server."""

from __future__ import annotations

import pytest
from shards.errors import NoWorker, ProcessActive, ShardsError
from shards.records import ProcessRecord, ProcessStatus, utcnow
from shards.retries import Cause, plan_retry
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
    assert controller.store.processes.start("s", "job", "child-run", worker_id="w",
                                            parent_run_id="parent") is None
    assert controller.get("s", "job").run_id == scheduled.run_id


def test_a_launch_starts_only_its_own_run(controller: Controller) -> None:
    scheduled = controller.launch("s", "job")
    assert controller.store.processes.start("s", "job", "an-older-run", worker_id="w") is None
    started = controller.store.processes.start("s", "job", scheduled.run_id, worker_id="w")
    assert started is not None and started.state is State.RUNNING
    assert started.status.running_since is not None and started.worker_id == "w"


def test_two_launches_race_and_one_wins(controller: Controller) -> None:
    controller.launch("s", "job")
    with pytest.raises(ProcessActive, match="already active \\(Scheduled\\)"):
        controller.launch("s", "job")
    assert controller.store.requests.pending("launch") == 1  # the history starts with the run


def test_no_write_leaves_the_transition_table(controller: Controller) -> None:
    processes = controller.store.processes
    assert processes.move("s", "other", State.STOPPING) is None  # Idle -> Stopping
    assert processes.move("s", "other", State.DONE) is None  # Idle -> Done
    assert processes.move("s", "other", State.SCHEDULED) is not None
    assert processes.move("s", "other", State.IDLE) is None  # Scheduled -> Idle
    assert controller.get("s", "other").state is State.SCHEDULED


def test_a_caller_run_id_launches_once_however_often_it_is_asked(controller: Controller) -> None:
    first = controller.launch("s", "job", run_id="k8s-uid-1")
    again = controller.launch("s", "job", run_id="k8s-uid-1")  # a retry, a replayed event
    assert first.run_id == again.run_id == "k8s-uid-1"
    assert controller.store.requests.pending("launch") == 1
    # The run ends, another client runs the process: the old run id still never runs again.
    controller.store.end_unstarted(controller.get("s", "job"), "ended for the test")
    controller.launch("s", "job")
    assert controller.launch("s", "job", run_id="k8s-uid-1").run_id != "k8s-uid-1"
    assert [run.run_id for run in controller.history("s", "job")].count("k8s-uid-1") == 1


def test_a_launch_cut_short_is_finished_by_its_retry(controller: Controller) -> None:
    # The first write only, as if the launching operator died right after it.
    assert controller.store.processes.schedule("s", "job", "k8s-uid-2") is not None
    assert controller.store.requests.pending("launch") == 0
    controller.launch("s", "job", run_id="k8s-uid-2")
    assert [request.run_id for request in controller.store.requests.for_runs(["k8s-uid-2"])] == ["k8s-uid-2"]


def test_require_worker_refuses_without_touching_the_record(controller: Controller) -> None:
    with pytest.raises(NoWorker, match="no live worker in pool 'default' offers process 'job'"):
        controller.launch("s", "job", require_worker=True)
    assert controller.get("s", "job").state is State.IDLE
    with pytest.raises(ShardsError, match="invalid run id"):
        controller.launch("s", "job", run_id="not a run id")


def _running_attempt(controller: Controller) -> ProcessRecord:
    scheduled = controller.launch("s", "job", retries=2, retry_backoff=0.1)
    controller.store.requests.withdraw_launch(scheduled.run_id)  # as a worker's start completes it
    started = controller.store.processes.start("s", "job", scheduled.run_id, worker_id="w")
    assert started is not None
    return started


def test_settlers_of_one_attempt_queue_one_next_attempt(controller: Controller) -> None:
    store, running = controller.store, _running_attempt(controller)
    ended = ProcessStatus.ended(State.FAILED, error="boom", running_since=running.status.running_since)
    plan = plan_retry(running.launch_state(), Cause.FAILED, "boom")
    assert plan is not None
    first = store.retry_run(running, ended, plan)  # the worker of the attempt...
    assert first is not None
    assert (first.state, first.run_id, first.attempt) == (State.SCHEDULED, plan.run_id, 2)
    assert store.retry_run(running, ended, plan) is None  # ...and a reconciler, late
    assert [r.run_id for r in store.requests.for_runs([plan.run_id])] == [plan.run_id]
    assert store.processes.get("s", "job") == first
    [attempt] = first.attempts
    assert (attempt.attempt, attempt.run_id, attempt.state) == (1, running.run_id, State.FAILED)


def test_an_attempt_stopped_meanwhile_is_not_retried(controller: Controller) -> None:
    store, running = controller.store, _running_attempt(controller)
    assert store.processes.move("s", "job", State.STOP_REQUESTED, run_id=running.run_id) is not None
    plan = plan_retry(running.launch_state(), Cause.FAILED, "boom")
    assert plan is not None
    assert store.retry_run(running, ProcessStatus.ended(State.FAILED, error="boom"), plan) is None
    assert store.requests.for_runs([plan.run_id]) == []
    assert controller.get("s", "job").state is State.STOP_REQUESTED


def test_a_late_settler_leaves_the_history_of_an_attempt_its_worker_ended(controller: Controller) -> None:
    """A worker's heartbeat read its record Running, then its ledger handed the attempt off (the
    entry says Stopped, the record moved on) and no longer held it: the late settlement it then
    tried is refused, and must not rewrite the entry as a lost worker's failure."""
    store, running = controller.store, _running_attempt(controller)
    store.runs.started(running.run_id, "s", "job", "w", running.status.running_since or utcnow(), args={})
    handed = ProcessStatus.ended(State.STOPPED, error="killed: lease lost; handed off",
                                 running_since=running.status.running_since)
    plan = plan_retry(running.launch_state(), Cause.WORKER_LOST, handed.error)
    assert plan is not None and store.retry_run(running, handed, plan) is not None  # the worker
    lost = ProcessStatus.ended(State.FAILED, error="worker w no longer runs it",
                               running_since=running.status.running_since)
    late = plan_retry(running.launch_state(), Cause.WORKER_LOST, lost.error)
    assert late is not None and store.retry_run(running, lost, late) is None  # the late settler
    entry = store.runs.get(running.run_id)
    assert entry is not None and (entry.state, entry.error) == (State.STOPPED, handed.error)
