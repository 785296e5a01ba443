"""The pickup path costs what issue 8 says it may: a launch is two round trips, a worker claims
the request its change event names by `_id` and starts it in one guarded write, the history is
keyed by the run id, and idle workers do not all contend for every launch."""

from __future__ import annotations

import re
import threading
import urllib.request
from pathlib import Path

import pytest
from shards.records import utcnow
from shards.states import State
from shards_controller import Controller
from shards_store import connect
from shards_store.embedded import free_port
from shards_worker import Worker, WorkerSettings, load_app
from tooling.mongo_servers import MongoServerInfo

from integration.harness import REPO, ShardsHarness, wait_until

TEST_APP = str(REPO / "tests/integration/apps/testapp.py") + ":app"


def _define_directly(controller: Controller, scope: str, process_id: str, warning: str = "") -> None:
    controller.store.processes.define(scope, process_id, {
        "name": process_id, "warning": warning, "detailLevel": 1, "special": False,
    })


def test_a_launch_is_two_round_trips(mongo_db_uri: str) -> None:
    controller = Controller(connect(mongo_db_uri))
    _define_directly(controller, "farm", "job")
    log = controller.store.query_log
    log.enabled = True
    record = controller.launch("farm", "job", args={"n": 1})
    assert record.state is State.SCHEDULED
    assert [(collection, operation) for collection, operation, _ in log.round_trips] == [
        ("processes", "find_one_and_update"), ("requests", "insert_one"),
    ]


def test_an_idempotent_launch_adds_one_point_read_and_never_runs_twice(mongo_db_uri: str) -> None:
    controller = Controller(connect(mongo_db_uri))
    _define_directly(controller, "farm", "job")
    log = controller.store.query_log
    log.enabled = True
    controller.launch("farm", "job", run_id="run-1")
    assert log.round_trips[0] == ("runs", "find_one", frozenset({"_id"}))
    assert len(log.round_trips) == 3
    again = controller.launch("farm", "job", run_id="run-1")  # a replay: still one request
    assert (again.state, again.run_id) == (State.SCHEDULED, "run-1")
    assert [r.run_id for r in controller.store.requests.for_runs(["run-1"])] == ["run-1"]


def test_a_failed_guard_says_why_in_one_line(mongo_db_uri: str) -> None:
    controller = Controller(connect(mongo_db_uri))
    _define_directly(controller, "farm", "danger", warning="deletes the farm")
    with pytest.raises(Exception, match="needs confirmation: deletes the farm"):
        controller.launch("farm", "danger")
    assert controller.launch("farm", "danger", confirm=True).state is State.SCHEDULED
    with pytest.raises(Exception, match="already active"):
        controller.launch("farm", "danger", confirm=True)
    with pytest.raises(Exception, match="unknown process 'nothing'"):
        controller.launch("farm", "nothing")


def test_the_worker_claims_by_id_and_starts_in_one_write(mongo_db_uri: str) -> None:
    store, observer = connect(mongo_db_uri), Controller(connect(mongo_db_uri))
    store.ensure_indexes()
    settings = WorkerSettings(concurrency=2, heartbeat_interval=0.5, lease=3, sweep_interval=60,
                              isolation="thread")
    worker = Worker(store, load_app(TEST_APP), settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        observer.wait_defined(observer.define("farm"), timeout=30)
        # The define's end asks for a sweep (shards_worker.defines): wait until that one is over,
        # or it may take the launch by a query instead of its event.
        claiming = worker.claiming
        wait_until(lambda: worker.offers.me and worker.definer.idle() and not claiming.sweep_due()
                   and not claiming.sweeping, what="the sweep after the define")
        for _ in range(3):  # a break in the stream (a loaded machine) sweeps: launch again
            sweeps = claiming.sweeps
            store.query_log.round_trips.clear()
            store.query_log.enabled = True  # the worker's side only: the observer has its own store
            run_id = observer.launch("farm", "quick", args={"n": 7}).run_id
            done = lambda r, run_id=run_id: r.run_id == run_id and r.state is State.DONE  # noqa: E731
            observer.wait("farm", "quick", done, 30)
            store.query_log.enabled = False
            if claiming.sweeps == sweeps and not claiming.sweeping:
                break
    finally:
        worker.request_shutdown()
        thread.join(timeout=30)
    trips = store.query_log.round_trips
    assert ("requests", "find_one_and_update", frozenset({"_id", "state", "createdAt"})) in trips  # by id
    assert ("requests", "find_one_and_update", frozenset({"state", "kind", "targetWorker"})) not in trips
    assert not [trip for trip in trips if trip[:2] == ("processes", "find_one")]  # no re-read
    history = store.runs.collection.mongo.find_one({"_id": run_id})
    assert history is not None
    assert (history["state"], history["args"], history["workerId"]) == ("Done", {"n": 7}, worker.id)


def _claim_attempts(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    found: dict[str, float] = {}
    pattern = r'^shards_claim_attempts_total\{kind="launch",outcome="(\w+)"\} ([0-9.e+]+)$'
    for outcome, value in re.findall(pattern, text, re.MULTILINE):
        found[outcome] = float(value)
    return found


def test_idle_workers_claim_each_launch_about_once(
    mongo_server: MongoServerInfo, mongo_db_uri: str, tmp_path: Path
) -> None:
    if mongo_server.kind == "java":
        pytest.skip("mongo-java-server writes no change event for find_one_and_update, so backup "
                    "workers never see a launch taken and claim it too (harmless, but not this test)")
    harness = ShardsHarness(mongo_db_uri, tmp_path)
    ports = [free_port() for _ in range(3)]
    try:
        for port in ports:  # a generous stagger: a backup claims only if the first worker did not
            harness.start_worker(TEST_APP, "--metrics-port", str(port), "--claim-stagger", "2",
                                 "--sweep-interval", "60")
        wait_until(lambda: len(harness.store.workers.alive()) == 3, what="3 live workers")
        harness.define("farm")
        launches = 12
        for _ in range(launches):
            harness.ok("launch", "quick", "--scope", "farm")
            harness.wait_state("farm", "quick", State.DONE)
        attempts = [_claim_attempts(port) for port in ports]
    finally:
        harness.close()
    won = sum(a.get("won", 0) for a in attempts)
    lost = sum(a.get("lost", 0) for a in attempts)
    assert won == launches
    assert lost <= launches / 2, f"{lost} lost claims for {launches} launches across 3 idle workers"


def test_a_freed_slot_takes_the_launches_that_waited_for_it(shards_env: ShardsHarness) -> None:
    """A full worker leaves launches pending; when a slot frees it claims them, without
    waiting for a sweep (set far beyond the test's timeouts)."""
    shards_env.start_worker(TEST_APP, "--sweep-interval", "600")
    wait_until(lambda: shards_env.store.workers.alive(), what="a live worker")
    shards_env.define("farm")
    shards_env.ok("launch", "wait-for-stop", "--scope", "farm")
    shards_env.wait_state("farm", "wait-for-stop", State.RUNNING)
    waiting = ["quick", "child-ok", "fail"]
    for process_id in waiting:
        shards_env.ok("launch", process_id, "--scope", "farm")
    assert shards_env.record("farm", "quick").state is State.SCHEDULED  # no free slot
    shards_env.ok("stop", "wait-for-stop", "--scope", "farm")
    for process_id in waiting:
        shards_env.wait_state("farm", process_id, State.DONE, State.FAILED)


def test_history_writes_survive_a_database_with_the_old_index_on_run_id(mongo_db_uri: str) -> None:
    """Databases created before the run id became the history's _id have a unique index on
    `runId`: new entries still carry the field, so they never collide on a missing value."""
    store = connect(mongo_db_uri)
    store.ensure_indexes()
    store.runs.collection.mongo.create_index([("runId", 1)], name="run", unique=True)
    for run_id in ("run-a", "run-b"):
        store.runs.started(run_id, "farm", "job", "w", utcnow(), args={})
    assert [store.runs.get(r).run_id for r in ("run-a", "run-b")] == ["run-a", "run-b"]  # type: ignore[union-attr]
