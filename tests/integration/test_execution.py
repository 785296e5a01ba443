"""Launching, claiming and finishing runs on real worker processes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from shards.states import State

from integration.harness import ShardsHarness, wait_until

SCOPE = "farm"


def test_launch_runs_to_done_and_keeps_history(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define(SCOPE)
    shards_env.ok("launch", "quick", "--scope", SCOPE)
    shards_env.wait_state(SCOPE, "quick", State.DONE)
    status = shards_env.ok("status", "quick", "--scope", SCOPE, "-o", "json").json()
    assert status["state"] == "Done"
    assert status["progress"] == {"message": "All done", "rate": 1.0}
    assert status["error"] == ""
    assert status["duration"] >= 0

    shards_env.ok("launch", "quick", "--scope", SCOPE)
    shards_env.wait_state(SCOPE, "quick", State.DONE)
    history = shards_env.ok("history", "quick", "--scope", SCOPE, "-o", "json").json()
    assert [run["state"] for run in history] == ["Done", "Done"]
    assert len({run["runId"] for run in history}) == 2
    # Finished requests leave the live request collection.
    assert shards_env.store.database["requests"].count_documents({}) == 0


def test_each_request_is_claimed_exactly_once_by_competing_workers(
    shards_env: ShardsHarness, tmp_path: Path
) -> None:
    shards_env.start_workers(3, concurrency=2)
    log = tmp_path / "executions.log"
    scopes = [f"s{n}" for n in range(24)]
    controller = shards_env.controller
    for scope in scopes:
        controller.wait_defined(controller.define(scope))
    for scope in scopes:
        controller.launch(scope, "quick", args={"log": str(log), "pause": 0.1})
    for scope in scopes:
        shards_env.wait_state(scope, "quick", State.DONE)
    lines = log.read_text().splitlines()
    runs = Counter(line.split()[0] for line in lines)
    assert len(runs) == len(scopes)
    assert set(runs.values()) == {1}, "a run executed more than once"
    pids = {line.split()[1] for line in lines}
    assert len(pids) >= 2, "the load was not shared between workers"


def test_a_failing_process_ends_failed_and_the_worker_keeps_serving(shards_env: ShardsHarness) -> None:
    worker = shards_env.start_workers(1)[0]
    shards_env.define(SCOPE)
    shards_env.ok("launch", "fail", "--scope", SCOPE, "--args", '{"why": "bad sheep"}')
    failed = shards_env.wait_state(SCOPE, "fail", State.FAILED)
    assert failed.status.error == "boom: bad sheep"
    assert failed.status.failed_at is not None
    assert failed.progress.message == "about to fail"

    shards_env.ok("launch", "quick", "--scope", SCOPE)
    shards_env.wait_state(SCOPE, "quick", State.DONE)
    assert worker.popen.poll() is None

    shards_env.ok("dismiss", "fail", "--scope", SCOPE)
    status = shards_env.ok("status", "fail", "--scope", SCOPE, "-o", "json").json()
    assert (status["state"], status["error"], status["progress"]["message"]) == ("Idle", "", "")


def test_concurrency_runs_several_processes_at_once(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1, concurrency=3)
    scopes = ["c1", "c2", "c3"]
    for scope in scopes:
        shards_env.define(scope)
        shards_env.ok("launch", "wait-for-stop", "--scope", scope)
    for scope in scopes:
        shards_env.wait_state(scope, "wait-for-stop", State.RUNNING)
    for scope in scopes:
        shards_env.ok("stop", "wait-for-stop", "--scope", scope)
    for scope in scopes:
        shards_env.wait_state(scope, "wait-for-stop", State.STOPPED)


def test_launching_an_active_process_is_refused(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define(SCOPE)
    shards_env.ok("launch", "wait-for-stop", "--scope", SCOPE)
    shards_env.wait_state(SCOPE, "wait-for-stop", State.RUNNING)
    again = shards_env.cli("launch", "wait-for-stop", "--scope", SCOPE)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        "shards: error: process 'wait-for-stop' in scope 'farm' is already active (Running)"
    )
    shards_env.ok("stop", "wait-for-stop", "--scope", SCOPE)
    shards_env.wait_state(SCOPE, "wait-for-stop", State.STOPPED)
    assert len(shards_env.controller.history(SCOPE, "wait-for-stop")) == 1


def test_a_warning_needs_confirmation(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define(SCOPE)
    refused = shards_env.cli("launch", "dangerous", "--scope", SCOPE)
    assert refused.returncode == 1
    assert "needs confirmation: This deletes everything." in refused.stderr
    assert shards_env.record(SCOPE, "dangerous").state is State.IDLE
    assert shards_env.controller.history(SCOPE, "dangerous") == []
    shards_env.ok("launch", "dangerous", "--scope", SCOPE, "--confirm", "--wait")
    assert shards_env.record(SCOPE, "dangerous").state is State.DONE


def test_a_lost_worker_fails_its_run_and_another_worker_notices(shards_env: ShardsHarness) -> None:
    doomed = shards_env.start_workers(1)[0]
    shards_env.define(SCOPE)
    shards_env.ok("launch", "wait-for-stop", "--scope", SCOPE)
    running = shards_env.wait_state(SCOPE, "wait-for-stop", State.RUNNING)
    assert running.progress.message == "Starting..." or running.progress.message.startswith("pid ")
    doomed.kill()
    shards_env.start_worker()  # the survivor notices the silent lease and settles the run
    failed = shards_env.wait_state(SCOPE, "wait-for-stop", State.FAILED)
    assert "was lost (no heartbeat" in failed.status.error
    assert failed.worker_id == ""
    # The process can run again at once.
    shards_env.ok("launch", "quick", "--scope", SCOPE)
    shards_env.wait_state(SCOPE, "quick", State.DONE)


def test_scheduled_work_waits_for_a_worker(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define(SCOPE)
    for worker in shards_env.workers:
        worker.terminate()
    shards_env.ok("launch", "quick", "--scope", SCOPE)
    assert shards_env.record(SCOPE, "quick").state is State.SCHEDULED
    shards_env.start_worker()  # the start-up sweep finds the request without any new event
    shards_env.wait_state(SCOPE, "quick", State.DONE)
    wait_until(lambda: shards_env.store.requests.pending("launch") == 0, what="no pending launches")
