"""Nothing stuck, nothing run twice: each way a record could stay active with nobody working on
it, or run on two workers at once, reproduced with real workers (issue 6, cases 1 to 7)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from shards.errors import InvalidArgs
from shards.states import ACTIVE, FINAL, State
from tooling.harness import EmbeddedMongo

from integration.harness import ShardsHarness, wait_until

SCOPE = "farm"
OutageEnv = tuple[ShardsHarness, EmbeddedMongo]


def nested(depth: int) -> dict[str, object]:
    args: dict[str, object] = {}
    inner = args
    for _ in range(depth - 1):
        inner["a"] = {}
        inner = inner["a"]  # type: ignore[assignment]
    return args


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def one_readable_line(error: str) -> bool:
    return "\n" not in error and len(error) < 200 and "Topology" not in error


# -- case 1: SystemExit and KeyboardInterrupt are the process's own failure ------------------
@pytest.mark.parametrize(
    ("process_id", "reason"), [("exit", "sys.exit(3)"), ("interrupt", "KeyboardInterrupt")]
)
def test_a_process_that_exits_or_is_interrupted_ends_failed(
    shards_env: ShardsHarness, process_id: str, reason: str
) -> None:
    worker = shards_env.start_workers(1)[0]
    shards_env.define(SCOPE)
    first = shards_env.controller.launch(SCOPE, process_id)
    failed = shards_env.wait_state(SCOPE, process_id, State.FAILED)
    assert reason in failed.status.error
    assert shards_env.controller.history(SCOPE, process_id)[0].state is State.FAILED
    # The worker keeps serving, and the process may run again.
    shards_env.ok("launch", "quick", "--scope", SCOPE, "--wait")
    second = shards_env.controller.launch(SCOPE, process_id)
    assert second.run_id != first.run_id
    wait_until(lambda: shards_env.record(SCOPE, process_id).run_id == second.run_id
               and shards_env.record(SCOPE, process_id).state is State.FAILED, what="the relaunch to fail")
    assert worker.popen.poll() is None


def test_a_child_that_exits_fails_itself_and_its_parent(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define(SCOPE)
    shards_env.controller.launch(SCOPE, "parent", args={"child": "exit"})
    parent = shards_env.wait_state(SCOPE, "parent", State.FAILED)
    assert parent.status.error == "Failed to Exit."
    child = shards_env.record(SCOPE, "exit")
    assert child.state is State.FAILED
    assert "sys.exit(3)" in child.status.error


# -- case 2: a run that ends while MongoDB is down --------------------------------------------
def test_a_run_that_ends_during_an_outage_is_recorded_when_mongo_returns(
    outage_env: OutageEnv, tmp_path: Path
) -> None:
    harness, mongo = outage_env
    worker = harness.start_worker("tests/integration/apps/testapp.py:app", "--lease", "60")
    wait_until(lambda: harness.store.workers.alive(), what="a live worker")
    harness.define(SCOPE)
    ended = tmp_path / "ended.log"
    run = harness.controller.launch(SCOPE, "finish-later", args={"pause": 1.0, "log": str(ended)})
    harness.wait_state(SCOPE, "finish-later", State.RUNNING)
    mongo.kill()
    wait_until(lambda: lines_of(ended), what="the run's body to end during the outage")
    # The worker noticed it could not record the end: one line says so.
    wait_until(lambda: "MongoDB unreachable" in worker.output(), what="the worker to log the outage")
    mongo.start()
    done = harness.wait_state(SCOPE, "finish-later", State.DONE)
    assert done.run_id == run.run_id
    assert harness.controller.history(SCOPE, "finish-later")[0].state is State.DONE
    wait_until(lambda: "MongoDB reachable again" in worker.output(), what="the worker to log the recovery")
    log = worker.output()
    assert log.count("MongoDB unreachable") == 1, log
    assert "Traceback" not in log, log


# -- case 3: an outage longer than the lease ---------------------------------------------------
# wait-for-stop's policy is on_shutdown="stop": a run its worker stopped for lack of MongoDB ends
# Stopped, as at a shutdown. A process of the default policy is handed off instead, spending no
# retry (issue 22: test_outage.py).
def test_an_outage_longer_than_the_lease_reaps_no_worker(outage_env: OutageEnv, tmp_path: Path) -> None:
    harness, mongo = outage_env
    lease = 3.0  # the harness's workers run with --lease 3
    workers = harness.start_workers(3, concurrency=2)
    scopes = ["a", "b", "c"]
    for scope in [*scopes, "d"]:
        harness.controller.wait_defined(harness.controller.define(scope))
    for scope in scopes:
        harness.controller.launch(scope, "wait-for-stop")
    ended = tmp_path / "ended.log"
    harness.controller.launch("d", "finish-later", args={"pause": 0.5, "log": str(ended)})
    for scope in scopes:
        harness.wait_state(scope, "wait-for-stop", State.RUNNING)
    harness.wait_state("d", "finish-later", State.RUNNING)
    mongo.kill()
    time.sleep(lease + 2.0)  # the fault itself: the server stays away longer than the lease
    assert lines_of(ended), "the quick run's body ended during the outage"
    mongo.start()

    def settled() -> bool:
        records = [harness.record(scope, "wait-for-stop") for scope in scopes]
        records.append(harness.record("d", "finish-later"))
        return all(record.state in FINAL for record in records)

    wait_until(settled, what="every run to settle after the outage")
    assert all(worker.popen.poll() is None for worker in workers), "a worker shut down"
    assert len(harness.store.workers.alive()) == 3
    assert harness.store.database["workers"].count_documents({"state": "Lost"}) == 0
    assert harness.record("d", "finish-later").state is State.DONE
    for scope in scopes:
        record = harness.record(scope, "wait-for-stop")
        assert "was lost" not in record.status.error
        assert one_readable_line(record.status.error), record.status.error


# -- case 4: a stopping worker keeps its lease --------------------------------------------------
def test_a_stopping_worker_is_never_reaped_while_its_code_runs(shards_env: ShardsHarness) -> None:
    stopping = shards_env.start_worker("tests/integration/apps/testapp.py:app", "--shutdown-grace", "30")
    wait_until(lambda: shards_env.store.workers.alive(), what="a live worker")
    shards_env.define(SCOPE)
    # The process takes twice the lease (3 s) to stop once asked: the shutdown outlasts the lease.
    shards_env.controller.launch(SCOPE, "wait-for-stop", args={"linger_after_stop": 6})
    running = shards_env.wait_state(SCOPE, "wait-for-stop", State.RUNNING)
    shards_env.start_worker()  # a second worker that would reap a silent one
    wait_until(lambda: len(shards_env.store.workers.alive()) == 2, what="two live workers")
    stopping.popen.send_signal(signal.SIGTERM)
    stopped = shards_env.wait_state(SCOPE, "wait-for-stop", State.STOPPED, State.FAILED)
    assert (stopped.state, stopped.status.error) == (State.STOPPED, "")
    assert stopping.popen.wait(timeout=60) == 0
    doc = shards_env.store.database["workers"].find_one({"_id": running.worker_id})
    assert doc is not None and doc["state"] == "Gone"


# -- case 5: a restart with the same worker id ------------------------------------------------
def test_a_worker_restarted_with_the_same_id_settles_its_previous_runs(shards_env: ShardsHarness) -> None:
    app = "tests/integration/apps/testapp.py:app"
    first = shards_env.start_worker(app, "--worker-id", "w1")
    wait_until(lambda: shards_env.store.workers.alive(), what="a live worker")
    shards_env.define(SCOPE)
    shards_env.controller.launch(SCOPE, "wait-for-stop")
    shards_env.wait_state(SCOPE, "wait-for-stop", State.RUNNING)
    first.kill()
    second = shards_env.start_worker(app, "--worker-id", "w1")
    failed = shards_env.wait_state(SCOPE, "wait-for-stop", State.FAILED)
    assert "w1" in failed.status.error
    # The process runs again, on the new incarnation.
    shards_env.controller.launch(SCOPE, "wait-for-stop")
    incarnations = {w.worker_id for w in shards_env.store.workers.alive() if w.pid == second.pid}
    wait_until(lambda: shards_env.record(SCOPE, "wait-for-stop").worker_id in incarnations,
               what="the relaunch to run on the restarted worker")
    shards_env.ok("stop", "wait-for-stop", "--scope", SCOPE)
    shards_env.wait_state(SCOPE, "wait-for-stop", State.STOPPED)


# -- case 6: the launching client dies between its two writes ----------------------------------
@pytest.mark.parametrize("then_stop", [False, True])
def test_a_launch_whose_client_died_before_queuing_it_is_settled(
    shards_env: ShardsHarness, then_stop: bool
) -> None:
    shards_env.start_workers(1)
    shards_env.define(SCOPE)
    # The launch's first write and nothing after it: the client was killed right there.
    assert shards_env.store.processes.schedule(SCOPE, "quick", "run-of-a-dead-client") is not None
    if then_stop:
        shards_env.ok("stop", "quick", "--scope", SCOPE)
    settled = shards_env.wait_state(SCOPE, "quick", *FINAL)
    assert settled.run_id == "run-of-a-dead-client"
    assert [run.run_id for run in shards_env.controller.history(SCOPE, "quick")] == ["run-of-a-dead-client"]
    shards_env.ok("launch", "quick", "--scope", SCOPE, "--wait")


# -- case 7: arguments the server would reject ---------------------------------------------
def test_arguments_the_server_would_reject_never_touch_the_record(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define(SCOPE)
    shards_env.ok("launch", "quick", "--scope", SCOPE, "--wait")
    before = shards_env.record(SCOPE, "quick")
    refused = shards_env.cli("launch", "quick", "--scope", SCOPE, "--args", json.dumps(nested(500)))
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shards: error: process arguments nest"), refused.stderr
    with pytest.raises(InvalidArgs, match="nest"):
        shards_env.controller.launch(SCOPE, "quick", args=nested(10_000))
    after = shards_env.record(SCOPE, "quick")
    assert (after.state, after.run_id, after.status) == (before.state, before.run_id, before.status)
    assert len(shards_env.controller.history(SCOPE, "quick")) == 1
    assert not [r for r in shards_env.controller.list(SCOPE) if r.state in ACTIVE]



def test_a_run_that_completes_while_its_worker_hands_it_off_is_done_not_run_again(
    shards_env: ShardsHarness, tmp_path: Path
) -> None:
    """SIGTERM (a rolling update) asks the runs to stop and hands them off; a run whose body never
    looks at should_continue() and completes during the grace did its work: Done, and not run
    again elsewhere (found by the chaos run on Pods: a launch completed twice)."""
    log = tmp_path / "runs.log"
    leaving = shards_env.start_worker()
    shards_env.define("h")
    shards_env.ok("launch", "quick", "--scope", "h", "--args", json.dumps({"log": str(log), "pause": 2}))
    shards_env.wait_state("h", "quick", State.RUNNING)
    shards_env.start_worker()  # where a hand-off would run it again
    leaving.send_signal(signal.SIGTERM)
    done = shards_env.wait_state("h", "quick", State.DONE, State.STOPPED, State.FAILED, timeout=60)
    assert (done.state, done.attempt) == (State.DONE, 1), done
    time.sleep(1)
    assert len(log.read_text().splitlines()) == 1
