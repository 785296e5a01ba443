"""The operator end to end: `kubectl apply` runs a process, `kubectl get shp` shows it live."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e.operator_env import OperatorEnv
from e2e.resources import EXAMPLES
from integration.harness import wait_until
from tooling.cluster import KubeCluster
from tooling.harness import EmbeddedMongo

pytestmark = pytest.mark.e2e

POOLS_APP = "tests/integration/apps/pools.py:app"



def test_apply_the_example_runs_it_to_done(env: OperatorEnv) -> None:
    env.start_workers(1)
    env.start_operator()
    env.apply(EXAMPLES / "process.yaml")
    status = env.wait_state("count-sheep", "Done")
    assert status["progress"]["percent"] == 100
    assert status["scope"] == env.namespace
    assert env.condition(status, "Complete")["status"] == "True"
    table = env.cluster.kubectl("get", "shp", "-n", env.namespace, "-o", "wide").stdout
    assert "count-sheep" in table and "Done" in table and "100" in table
    runs = env.shards.controller.history(env.namespace, "count-sheep")
    assert [run.state.value for run in runs] == ["Done"]
    wait_until(lambda: {"Launched", "Done"} <= set(env.events("count-sheep")), what="the events")


TEST_APP = "tests/integration/apps/testapp.py:app"


def test_args_reach_the_process_and_a_failure_reads_in_status(env: OperatorEnv, tmp_path: Path) -> None:
    env.start_workers(1, app=TEST_APP)
    env.start_operator()
    log = tmp_path / "executions.log"
    env.apply(env.shp("quick", process="quick", args={"log": str(log), "pause": 0.1}))
    env.apply(env.shp("fail", process="fail", args={"why": "bad sheep"}))
    env.wait_state("quick", "Done")
    run_id = env.status("quick")["runId"]
    assert log.read_text().split()[0] == run_id  # the process saw spec.args
    failed = env.wait_state("fail", "Failed")
    assert failed["error"] == "boom: bad sheep"
    condition = env.condition(failed, "Failed")
    assert (condition["status"], condition["message"]) == ("True", "boom: bad sheep")
    wait_until(lambda: "Failed" in env.events("fail"), what="a Failed event")


def test_a_failed_runs_event_carries_its_last_log_lines(env: OperatorEnv) -> None:
    env.start_workers(1, app="tests/integration/apps/runlogs.py:app")
    env.start_operator()
    env.apply(env.shp("talk", process="log-lines", args={"n": 20, "fail": True}))
    failed = env.wait_state("talk", "Failed")
    assert failed["error"] == "gave up after 20 lines"  # the status keeps the error only
    messages = wait_until(lambda: env.event_messages("talk", "Failed"), what="a Failed event")
    head, lines = messages[0].split("\nlast log lines:\n")
    assert head == "the run ended Failed: gave up after 20 lines"
    assert lines.splitlines()[-1] == "ValueError: gave up after 20 lines"
    assert len(lines.splitlines()) == 10 and "_run_body" not in lines  # the process's frames only
    assert len(messages[0].encode()) <= 1024


def test_stop_mid_run_walks_to_stopped(env: OperatorEnv) -> None:
    env.start_workers(1, app=TEST_APP)
    env.start_operator()
    env.apply(env.shp("waiter", process="wait-for-stop"))
    env.wait_state("waiter", "Running")
    env.apply(env.shp("waiter", process="wait-for-stop", stop=True))
    stopped = env.wait_state("waiter", "Stopped")
    assert stopped["error"] == ""
    runs = env.shards.controller.history(env.namespace, "wait-for-stop")
    assert [run.state.value for run in runs] == ["Stopped"]
    wait_until(lambda: {"Stopping", "Stopped"} <= set(env.events("waiter")), what="the events")


def test_a_warning_waits_for_confirmation(env: OperatorEnv) -> None:
    env.start_workers(1, app=TEST_APP)
    env.start_operator()
    env.apply(env.shp("danger", process="dangerous"))
    waiting = env.wait_status("danger", "Waiting for confirmation",
                              lambda s: env.condition(s, "Waiting").get("reason") == "ConfirmationRequired")
    assert "This deletes everything." in env.condition(waiting, "Waiting")["message"]
    assert env.shards.controller.history(env.namespace, "dangerous") == []
    env.apply(env.shp("danger", process="dangerous", confirm=True))
    done = env.wait_state("danger", "Done")
    assert env.condition(done, "Waiting")["status"] == "False"


def test_unknown_process_waits_until_a_worker_offers_it(env: OperatorEnv) -> None:
    env.start_workers(1)  # the sheep app: no "quick" in it
    env.start_operator()
    env.apply(env.shp("later", process="quick"))
    env.wait_status("later", "waiting for a worker that offers it",
                    lambda s: env.condition(s, "Waiting").get("reason") == "UnknownProcess")
    # The sheep worker gives way to one that offers the process; nobody touches the resource.
    env.shards.workers[0].terminate()
    env.shards.start_worker(TEST_APP)
    env.wait_state("later", "Done")
    # Each retry while it waited was an expected wait, not an error: no Error Events, no ERROR lines.
    assert "Error" not in env.events("later")
    assert "failed temporarily" in env.operator_log()
    log_lines = env.operator_log().splitlines()
    assert not [line for line in log_lines if "failed temporarily" in line and "ERROR" in line]


def test_a_launch_for_a_pool_without_workers_is_scheduled_and_waits_for_one(env: OperatorEnv) -> None:
    env.start_workers(1, app=POOLS_APP)  # the default pool only
    env.start_operator()
    env.apply(env.shp("gpu", process="gpu-job"))
    status = env.wait_status("gpu", "Scheduled, waiting for a gpu worker",
                             lambda s: env.condition(s, "Waiting").get("reason") == "NoWorker")
    assert status["state"] == "Scheduled" and status["runs"] == 1
    assert "no live worker in pool 'gpu'" in env.condition(status, "Waiting")["message"]
    assert status["progress"]["message"].startswith("waiting: no live worker in pool 'gpu'")
    env.shards.start_worker(POOLS_APP, "--pool", "gpu")
    status = env.wait_state("gpu", "Done")
    assert env.condition(status, "Waiting")["status"] == "False"


def test_two_resources_for_one_process_take_turns(env: OperatorEnv) -> None:
    env.start_workers(2, app=TEST_APP)
    env.start_operator()
    env.apply(env.shp("first", process="wait-for-stop", args={"limit": 3}))
    env.wait_state("first", "Running")
    env.apply(env.shp("second", process="wait-for-stop", args={"limit": 1}))
    env.wait_status("second", "waiting for the first run",
                    lambda s: env.condition(s, "Waiting").get("reason") == "ProcessBusy")
    env.wait_state("first", "Done")
    env.wait_state("second", "Done")
    runs = env.shards.controller.history(env.namespace, "wait-for-stop")
    assert [run.state.value for run in runs] == ["Done", "Done"]
    assert runs[0].started_at is not None and runs[1].ended_at is not None
    assert runs[0].started_at >= runs[1].ended_at  # one after the other, never at once


def test_delete_during_a_run_stops_it(env: OperatorEnv) -> None:
    env.start_workers(1, app=TEST_APP)
    env.start_operator()
    env.apply(env.shp("doomed", process="wait-for-stop"))
    env.wait_state("doomed", "Running")
    env.cluster.kubectl("delete", "shp", "doomed", "-n", env.namespace, "--timeout=60s", timeout=90)
    record = env.shards.record(env.namespace, "wait-for-stop")
    assert record.state.value == "Stopped"


def test_delete_with_mongo_down_is_bounded(
    kube_cluster: KubeCluster, kube_namespace: str, operator_rbac: str, tmp_path: Path
) -> None:
    mongo = EmbeddedMongo(tmp_path / "mongo", "shards_outage").start()
    env = OperatorEnv(kube_cluster, kube_namespace, mongo.uri, tmp_path)
    try:
        env.start_workers(1, app=TEST_APP)
        env.start_operator("--delete-timeout", "3")
        env.apply(env.shp("doomed", process="wait-for-stop"))
        env.wait_state("doomed", "Running")
        mongo.kill()
        env.cluster.kubectl("delete", "shp", "doomed", "-n", env.namespace, "--timeout=90s", timeout=120)
        assert env.cluster.kubectl("get", "shp", "doomed", "-n", env.namespace, check=False).returncode != 0
        wait_until(lambda: "DeletedWhileActive" in env.events("doomed"), what="an event saying so")
        assert env.operator is not None and env.operator.running  # the operator lives on
    finally:
        if not mongo.up:
            mongo.start()
        env.close()
        mongo.stop()


def test_an_operator_killed_mid_run_and_restarted_runs_it_once(env: OperatorEnv, tmp_path: Path) -> None:
    env.start_workers(1, app=TEST_APP)
    operator = env.start_operator()
    log = tmp_path / "executions.log"
    env.apply(env.shp("once", process="quick", args={"log": str(log), "pause": 4}))
    env.wait_state("once", "Running")
    operator.kill()  # SIGKILL: no cleanup, the last statuses not sent (returns once it is gone)
    wait_until(lambda: env.shards.record(env.namespace, "quick").state.value == "Done", what="the run to end")
    env.start_operator()  # resumes: relaunches nothing, reports the end
    done = env.wait_state("once", "Done")
    assert len(log.read_text().splitlines()) == 1
    assert len(env.shards.controller.history(env.namespace, "quick")) == 1
    assert done["runs"] == 1


def test_raising_runs_runs_it_again(env: OperatorEnv) -> None:
    env.start_workers(1, app=TEST_APP)
    env.start_operator()
    env.apply(env.shp("again", process="quick"))
    first = env.wait_state("again", "Done")["runId"]
    env.apply(env.shp("again", process="quick"))  # unchanged: a no-op
    env.apply(env.shp("again", process="quick", runs=2))
    second = env.wait_status("again", "the second run to be Done",
                             lambda s: s.get("runs") == 2 and s.get("state") == "Done")
    assert second["runId"] != first
    assert len(env.shards.controller.history(env.namespace, "quick")) == 2


def test_another_namespaces_scope_is_refused_unless_granted(env: OperatorEnv) -> None:
    env.start_workers(1, app=TEST_APP)
    env.start_operator()
    env.apply(env.shp("elsewhere", process="quick", scope="someone-elses"))
    refused = env.wait_status("elsewhere", "ScopeNotAllowed",
                              lambda s: env.condition(s, "Waiting").get("reason") == "ScopeNotAllowed")
    assert "may not use scope 'someone-elses'" in env.condition(refused, "Waiting")["message"]
    env.stop_operator()
    env.start_operator("--scope-grant", f"{env.namespace}=someone-elses")
    env.shards.define("someone-elses")
    env.wait_state("elsewhere", "Done")


def test_fifty_resources_applied_at_once_each_run_once(env: OperatorEnv, tmp_path: Path) -> None:
    env.start_workers(2, app=TEST_APP)
    log = tmp_path / "executions.log"
    scopes = [f"{env.namespace[:40]}-{n}" for n in range(50)]  # one process each: none waits its turn
    env.start_operator("--scope-grant", f"{env.namespace}={','.join(scopes)}")
    for scope in scopes:
        env.shards.controller.define(scope)
    items = [env.shp(f"burst-{n}", process="quick", scope=scope, args={"log": str(log), "pause": 0.05})
             for n, scope in enumerate(scopes)]
    env.apply({"apiVersion": "v1", "kind": "List", "items": items})

    def all_done() -> bool:
        listed = env.cluster.kubectl_json("get", "shp", "-n", env.namespace)
        states = [item.get("status", {}).get("state") for item in listed["items"]]  # type: ignore[union-attr]
        return len(states) == 50 and set(states) == {"Done"}

    wait_until(all_done, timeout=180, what="50 resources to be Done")
    run_ids = [line.split()[0] for line in log.read_text().splitlines()]
    assert len(run_ids) == 50 and len(set(run_ids)) == 50


FLAKY_APP = "tests/integration/apps/flaky.py:app"


def test_a_failed_attempt_is_retried_and_the_run_ends_done_on_its_second(
    env: OperatorEnv, tmp_path: Path
) -> None:
    env.start_workers(1, app=FLAKY_APP)
    env.start_operator()
    journal = tmp_path / "journal.log"
    env.apply(env.shp("flaky", process="flaky", args={"journal": str(journal), "fail": 1},
                      retries=2, retryBackoffSeconds=4))  # the retry waits 2 to 4 s: seen waiting
    waiting = env.wait_status("flaky", "the retry to wait", lambda s: s.get("retryAt"))
    assert (waiting["state"], waiting["attempt"]) == ("Scheduled", 2)
    assert waiting["progress"]["message"].startswith("retry 1 of 2 in ")
    assert "(attempt 1 failed: " in waiting["progress"]["message"]
    launch_id = waiting["attempts"][0]["runId"]
    done = env.wait_state("flaky", "Done")
    assert (done["attempt"], done["runId"], done["runs"]) == (2, f"{launch_id}.2", 1)
    [first] = done["attempts"]
    assert (first["attempt"], first["runId"], first["state"]) == (1, launch_id, "Failed")
    assert "flaky failure 1" in first["error"] and first["endedAt"]
    assert "retryAt" not in done and done["error"] == ""
    assert env.condition(done, "Complete")["status"] == "True"
    assert env.condition(done, "Failed")["status"] == "False"
    journal_lines = [line.split()[0] for line in journal.read_text().splitlines()]
    assert journal_lines == ["start", "failed", "start", "done"]
    table = env.cluster.kubectl("get", "shp", "flaky", "-n", env.namespace, "--no-headers").stdout.split()
    assert table[3:5] == ["Done", "2"]  # STATE, ATTEMPT
    runs = env.shards.controller.history(env.namespace, "flaky")
    assert [(run.attempt, run.state.value) for run in runs] == [(2, "Done"), (1, "Failed")]
    wait_until(lambda: {"Launched", "Retrying", "Done"} <= set(env.events("flaky")), what="the events")


def test_a_retried_run_the_record_moved_on_from_reads_as_its_last_attempt(
    env: OperatorEnv, tmp_path: Path
) -> None:
    env.start_workers(1, app=FLAKY_APP)
    env.start_operator()
    env.apply(env.shp("retried", process="flaky", args={"journal": str(tmp_path / "a.log"), "fail": 1},
                      retries=1, retryBackoffSeconds=0.1))
    env.wait_state("retried", "Done")
    env.apply(env.shp("next", process="flaky", args={"journal": str(tmp_path / "b.log"), "fail": 0}))
    env.wait_state("next", "Done")  # the process record now holds the other resource's run
    env.stop_operator()
    env.cluster.kubectl(
        "patch", "shp", "retried", "-n", env.namespace, "--subresource=status", "--type=merge",
        "-p", '{"status": {"state": "Running", "attempt": 1, "attempts": []}}',
    )  # a stale status, as an operator that missed the end would have left it
    env.start_operator()  # resumes: reads the run from the history, all its attempts
    done = env.wait_state("retried", "Done")
    assert done["attempt"] == 2 and done["runId"].endswith(".2")
    assert [(a["attempt"], a["state"]) for a in done["attempts"]] == [(1, "Failed")]


def test_a_worker_shut_down_mid_run_hands_it_off_as_in_a_rolling_update(
    env: OperatorEnv, tmp_path: Path
) -> None:
    env.start_workers(1, app=FLAKY_APP)
    env.start_operator()
    journal = tmp_path / "journal.log"
    # Long enough that the new worker is up (a loaded machine) before the first attempt could end.
    env.apply(env.shp("handoff", process="handed-off", args={"journal": str(journal), "seconds": 12}))
    env.wait_state("handoff", "Running")
    wait_until(journal.exists, what="the first attempt to start")
    old_pod = env.shards.workers[0]
    env.shards.start_worker(FLAKY_APP)  # the new pod comes up, then the old one gets SIGTERM
    wait_until(lambda: len(env.shards.store.workers.alive()) == 2, what="the new worker")
    assert old_pod.terminate() == 0
    done = env.wait_state("handoff", "Done")  # no spec.retries: a hand-off is not a retry
    assert done["attempt"] == 2
    [first] = done["attempts"]
    assert first["state"] == "Stopped" and "handed off" in first["error"]
    assert done["worker"] == env.shards.store.workers.alive()[0].worker_id
    wait_until(lambda: "Retrying" in env.events("handoff"), what="a Retrying event")
