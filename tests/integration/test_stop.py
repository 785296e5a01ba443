"""Stops reach the worker that runs the process, whichever worker sees the request."""

from __future__ import annotations

import pytest
from shards.states import State
from tooling.mongo_servers import MongoServerInfo

from integration.harness import ShardsHarness, wait_until


def test_stop_reaches_the_running_worker_across_workers(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(3, concurrency=2)
    scopes = [f"w{n}" for n in range(6)]
    for scope in scopes:
        shards_env.controller.wait_defined(shards_env.controller.define(scope))
        shards_env.controller.launch(scope, "wait-for-stop")
    running = [shards_env.wait_state(scope, "wait-for-stop", State.RUNNING) for scope in scopes]
    # With three workers, some stop requests are inserted while other workers are idle and
    # watching: only the addressed worker may take each one.
    assert len({record.worker_id for record in running}) >= 2
    for scope in scopes:
        shards_env.ok("stop", "wait-for-stop", "--scope", scope)
    for scope in scopes:
        stopped = shards_env.wait_state(scope, "wait-for-stop", State.STOPPED)
        assert stopped.status.stopped_at is not None
        assert stopped.status.error == ""
    assert shards_env.store.database["requests"].count_documents({}) == 0


def test_stop_passes_through_stop_requested_and_stopping(
    shards_env: ShardsHarness, mongo_server: MongoServerInfo
) -> None:
    if mongo_server.kind == "java":
        pytest.skip("mongo-java-server emits no change event for find_one_and_update "
                    "(test_conformance.py::test_watch_delivers_find_one_and_update)")
    shards_env.start_workers(2)
    shards_env.define("farm")
    shards_env.ok("launch", "wait-for-stop", "--scope", "farm")
    shards_env.wait_state("farm", "wait-for-stop", State.RUNNING)
    feed = shards_env.store.process_feed()
    feed.open()
    try:
        result = shards_env.ok("stop", "wait-for-stop", "--scope", "farm")
        assert "stop requested (StopRequested)" in result.stdout
        seen: list[str] = []

        def collect() -> bool:
            change = feed.next_change(timeout=0.5)
            if change and change["fullDocument"]["processId"] == "wait-for-stop":
                state = change["fullDocument"]["status"]["state"]
                if not seen or seen[-1] != state:
                    seen.append(state)
            return bool(seen) and seen[-1] == "Stopped"

        wait_until(collect, what="the Stopped state on the change stream")
    finally:
        feed.close()
    while seen and seen[0] == "Running":  # the run's own progress writes, before the stop's
        seen.pop(0)
    assert seen[0] in ("StopRequested", "Stopping")
    assert seen[-2:] == ["Stopping", "Stopped"]


def test_stopping_a_scheduled_process_cancels_it(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm")
    for worker in shards_env.workers:
        worker.terminate()
    shards_env.ok("launch", "quick", "--scope", "farm")
    shards_env.ok("stop", "quick", "--scope", "farm")
    assert shards_env.record("farm", "quick").state is State.STOPPED
    assert shards_env.store.database["requests"].count_documents({}) == 0
    [run] = shards_env.controller.history("farm", "quick")
    assert run.state is State.STOPPED and run.started_at is None


def test_stop_is_idempotent_and_refused_when_nothing_runs(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm")
    idle = shards_env.cli("stop", "quick", "--scope", "farm")
    assert idle.returncode == 1
    assert idle.stderr.strip() == "shards: error: process 'quick' in scope 'farm' is not active (Idle)"
    shards_env.ok("launch", "wait-for-stop", "--scope", "farm", "--args", '{"linger_after_stop": 3}')
    shards_env.wait_state("farm", "wait-for-stop", State.RUNNING)
    shards_env.ok("stop", "wait-for-stop", "--scope", "farm")
    shards_env.wait_state("farm", "wait-for-stop", State.STOPPING)
    again = shards_env.ok("stop", "wait-for-stop", "--scope", "farm")
    assert "(Stopping)" in again.stdout
    shards_env.wait_state("farm", "wait-for-stop", State.STOPPED)


def test_worker_shutdown_stops_its_processes(shards_env: ShardsHarness) -> None:
    [worker] = shards_env.start_workers(1)
    shards_env.define("farm")
    shards_env.ok("launch", "wait-for-stop", "--scope", "farm")
    shards_env.wait_state("farm", "wait-for-stop", State.RUNNING)
    assert worker.terminate() == 0
    assert shards_env.record("farm", "wait-for-stop").state is State.STOPPED
    assert "stopped" in worker.output()
