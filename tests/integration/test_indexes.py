"""Every query the store runs is served by an index it declares (no collection scans as the
history grows), checked on the shapes recorded while a real scenario runs."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from shards.records import utcnow
from shards.schedule_times import Timing
from shards.schedules import ScheduleSpec
from shards.states import State
from shards_controller import Controller
from shards_operator.metrics import PoolCensus
from shards_store import connect
from shards_store.indexes import INDEXES, is_served
from shards_worker import Worker, WorkerSettings, load_app

from integration.harness import REPO, wait_until


def test_every_store_query_is_served_by_a_declared_index(mongo_db_uri: str, tmp_path: Path) -> None:
    store = connect(mongo_db_uri)
    # Indexes first, as when workers start before clients: mongo-java-server sometimes fails an
    # insert ("Unknown error: null") that races with an index being created on the database.
    store.ensure_indexes()
    store.query_log.enabled = True
    app = load_app(str(REPO / "tests/integration/apps/testapp.py") + ":app")
    settings = WorkerSettings(concurrency=2, heartbeat_interval=0.2, lease=0.9, progress_interval=0.1,
                              isolation="thread")  # the runs' queries in this process, in its log
    worker = Worker(store, app, settings)  # one store, one query log for both sides
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    controller = Controller(store)
    try:
        controller.wait_defined(controller.define("farm", clean=True))
        controller.define("farm", only_if_missing=True)
        controller.launch("farm", "parent", args={"child": "child-stop", "survive_stopping": True})
        controller.wait("farm", "child-stop", lambda r: r.state is State.RUNNING, 30)
        list(PoolCensus(store).collect())  # the operator's census, at a scrape
        store.processes.executing_per_pool([worker.state.id])  # its read while a run has no live owner
        controller.stop("farm", "parent")
        controller.wait("farm", "parent", lambda r: r.state is State.STOPPED, 30)
        controller.launch("farm", "fail")
        controller.wait("farm", "fail", lambda r: r.state is State.FAILED, 30)
        assert "RuntimeError: boom" in controller.run_logs("farm", "fail").lines[-1]  # its traceback, by _id
        controller.dismiss("farm", "fail")
        controller.list("farm", search="x")
        schedule = ScheduleSpec(name="hourly", scope_id="farm", process_id="quick", timing=Timing(every=3600))
        controller.schedules.create(schedule)
        controller.schedules.trigger("farm", "hourly")
        controller.wait("farm", "quick", lambda r: r.state is State.DONE, 30)
        controller.schedules.pause("farm", "hourly")
        controller.schedules.delete("farm", "hourly")
        controller.launch("farm", "quick", at=utcnow() + timedelta(seconds=1))
        controller.launch("farm", "quick", queue=True)
        controller.wait("farm", "quick", lambda r: r.state is State.DONE and not r.queue, 30)
        controller.history("farm", "parent")
        assert controller.runs_since("farm", utcnow() - timedelta(hours=1))  # the dashboard's timeline
        ghost = store.workers.register("ghost", host="h", pid=1, catalog=[], concurrency=1, lease=0.5)
        wait_until(lambda: all(w.worker_id != ghost for w in store.workers.alive()), what="the reaper")
        store.processes.schedule("farm", "quick", "launch-of-a-dead-client")  # no request behind it
        controller.wait("farm", "quick", lambda r: r.state is State.FAILED, 30)
    finally:
        worker.request_shutdown()
        thread.join(timeout=30)
    shapes = store.query_log.shapes
    assert {shape.collection for shape in shapes} == set(INDEXES), "the scenario missed a collection"
    unserved = [shape for shape in shapes if not is_served(shape)]
    assert unserved == []
    for collection, indexes in INDEXES.items():
        created = {tuple(field for field, _ in index["key"])
                   for index in store.database[collection].index_information().values()}
        assert {tuple(keys) for _, keys, _ in indexes} <= created
