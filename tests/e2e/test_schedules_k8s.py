"""ShardSchedule end to end on a real kube-apiserver: what the API server refuses (CEL), and with
the operator (an OS process with deploy/'s rights) and real workers: `kubectl apply` of a
schedule launches runs, `kubectl get shs` shows them, `kubectl patch` pauses it, `kubectl
delete` ends its fires. And ShardProcess's delayed launch (spec.startAt)."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from e2e.operator_env import API_VERSION, OperatorEnv
from integration.harness import wait_until
from shards.records import iso, utcnow
from tooling.cluster import KubeCluster

pytestmark = pytest.mark.e2e

TEST_APP = "tests/integration/apps/testapp.py:app"
COLUMNS = ["NAME", "SCHEDULE", "TIMEZONE", "PAUSED", "LAST", "NEXT", "ACTIVE", "AGE"]
POLL = 0.5  # seconds between kubectl reads of a status


def shs(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "ShardSchedule", "metadata": {"name": name}, "spec": spec}


def schedule_status(env: OperatorEnv, name: str) -> dict[str, Any]:
    obj = env.cluster.kubectl_json("get", "shs", name, "-n", env.namespace)
    return dict(obj.get("status") or {})


def wait_schedule(env: OperatorEnv, name: str, what: str, check: Any,
                  timeout: float = 60.0) -> dict[str, Any]:
    def described() -> str:
        return f"{name}: {what} (status is {json.dumps(schedule_status(env, name))[:800]})\n" \
               f"{env.operator_log()[-3000:]}"

    result: dict[str, Any] = wait_until(
        lambda: (status := schedule_status(env, name)) and check(status) and status, timeout, described, POLL)
    return result


def ready(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


def runs_of(env: OperatorEnv, process: str) -> list[str]:
    return [run.run_id for run in env.shards.controller.history(env.namespace, process, limit=1000)]


# --- the API server alone ------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "message"), [
    ({"every": "1m", "schedule": "* * * * *"}, "exactly one of spec.schedule"),
    ({}, "exactly one of spec.schedule"),
    ({"schedule": "every minute"}, "spec.schedule must be five cron fields"),
    ({"schedule": "* * * *"}, "spec.schedule must be five cron fields"),
    ({"schedule": "@sometimes"}, "spec.schedule must be five cron fields"),
    ({"schedule": "0 3 * * *", "timeZone": "Europe/Amsterdam; rm"}, "spec.timeZone"),
    ({"every": "15 minutes"}, "spec.every"),
    ({"every": "1m", "jitter": "-5s"}, "spec.jitter"),
    ({"every": "1m", "timeZone": "UTC"}, "spec.timeZone applies to a cron schedule"),
    ({"schedule": "@daily", "offset": "5m"}, "spec.offset shifts an interval"),
    ({"every": "1m", "startAt": "2030-01-02T00:00:00Z", "endAt": "2030-01-01T00:00:00Z"},
     "spec.endAt must come after spec.startAt"),
    ({"every": "1m", "overlap": "Sometimes"}, "spec.overlap"),
    ({"every": "1m", "bufferLimit": 0}, "spec.bufferLimit"),
    ({"every": "1m", "maxRuns": 0}, "spec.maxRuns"),
])
def test_invalid_schedules_are_refused_by_the_api_server(
    kube_cluster: KubeCluster, kube_namespace: str, shs_crd: str, spec: dict[str, Any], message: str
) -> None:
    manifest = json.dumps(shs("bad", process="quick", **spec))
    result = kube_cluster.kubectl("create", "-n", kube_namespace, "-f", "-", input=manifest, check=False)
    assert result.returncode != 0, f"accepted, expected a rejection: {result.stdout}"
    assert "is invalid" in result.stderr and message in result.stderr, result.stderr


def test_a_valid_schedule_reads_back_with_its_defaults_and_no_status(
    kube_cluster: KubeCluster, kube_namespace: str, shs_crd: str
) -> None:
    manifest = json.dumps(shs("nightly", process="quick", schedule="30 2 * * MON-FRI",
                              timeZone="America/Argentina/Buenos_Aires", startAt="2030-01-01T00:00:00Z",
                              endAt="2031-01-01T00:00:00Z"))
    obj = json.loads(kube_cluster.kubectl("create", "-n", kube_namespace, "-f", "-", "-o", "json",
                                          input=manifest).stdout)
    spec = obj["spec"]
    assert (spec["overlap"], spec["catchupWindow"], spec["paused"], spec["confirm"]) == ("Skip", "60s", False,
                                                                                         False)
    assert "status" not in obj
    changed = kube_cluster.kubectl("patch", "shs", "nightly", "-n", kube_namespace, "--type=merge",
                                   "-p", json.dumps({"spec": {"scope": "elsewhere"}}), check=False)
    assert changed.returncode != 0 and "spec.scope is immutable" in changed.stderr, changed.stderr


# --- with the operator and workers ----------------------------------------------------------


def test_an_every_2s_schedule_runs_pauses_and_stops_on_delete(env: OperatorEnv, shs_crd: str) -> None:
    env.start_workers(1, app=TEST_APP)
    env.start_operator()
    env.apply(shs("tick", process="quick", every="2s", args={"pause": 0.05}))
    status = wait_schedule(env, "tick", "two launches", lambda s: s.get("launched", 0) >= 2)
    assert ready(status)["status"] == "True", status
    assert (status["scope"], status["scheduleName"], status["phase"]) == (env.namespace, "tick", "Active")
    assert status["timing"] == "every 2s" and status["timeZone"] == "UTC"
    launched = [a["runId"] for a in status["lastActions"] if a["outcome"] == "Launched"]
    assert launched and all(run_id.startswith("tick:") for run_id in launched)
    # Each run is a run of the process, in its history, not a Kubernetes object.
    wait_until(lambda: set(launched) <= set(runs_of(env, "quick")), what="the launched runs in the history")
    record = env.shards.controller.schedules.get(env.namespace, "tick")
    assert record.spec.timing.every == 2.0 and not record.paused

    # kubectl get shs: the columns, and the row the status makes.
    lines = env.cluster.kubectl("get", "shs", "-n", env.namespace).stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == COLUMNS
    row = re.split(r"\s{2,}", lines[1].strip())
    assert row[:4] == ["tick", "every 2s", "UTC", "false"], row
    assert re.fullmatch(r"\d+s", row[4]), row  # LAST: an age
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", row[5]), row  # NEXT: a time
    assert row[6] in ("Scheduled", "Running", "Done"), row  # ACTIVE: the process's state
    wide = env.cluster.kubectl("get", "shs", "-n", env.namespace, "-o", "wide").stdout.splitlines()
    assert re.split(r"\s{2,}", wide[0].strip())[len(COLUMNS):] == ["PROCESS", "SCOPE", "LAUNCHED", "PHASE"]

    # Paused: no more fires.
    env.cluster.kubectl("patch", "shs", "tick", "-n", env.namespace, "--type=merge",
                        "-p", json.dumps({"spec": {"paused": True, "note": "maintenance"}}))
    paused = wait_schedule(env, "tick", "paused", lambda s: s.get("phase") == "Paused")
    assert (paused["paused"], paused["note"]) == (True, "maintenance") and "nextFireTime" not in paused
    time.sleep(2.5)  # a fire claimed just before the pause may still land
    count = len(runs_of(env, "quick"))
    time.sleep(5)
    assert len(runs_of(env, "quick")) == count
    assert env.shards.controller.schedules.get(env.namespace, "tick").paused

    # Unpaused: fires again.
    env.cluster.kubectl("patch", "shs", "tick", "-n", env.namespace, "--type=merge",
                        "-p", json.dumps({"spec": {"paused": False}}))
    wait_until(lambda: len(runs_of(env, "quick")) >= count + 2, timeout=30, what="fires after the unpause")

    # Deleted: the finalizer removes the schedule; nothing fires after it.
    env.cluster.kubectl("delete", "shs", "tick", "-n", env.namespace, "--timeout=60s", timeout=90)
    assert env.shards.controller.schedules.list(env.namespace) == []
    time.sleep(1.5)  # a fire claimed just before the delete may still land
    count = len(runs_of(env, "quick"))
    time.sleep(5)
    assert len(runs_of(env, "quick")) == count


def test_what_cel_cannot_check_reads_ready_false_with_a_warning(env: OperatorEnv, shs_crd: str) -> None:
    env.start_workers(1, app=TEST_APP)
    env.start_operator()
    env.apply(shs("mars", process="quick", schedule="0 3 * * *", timeZone="Mars/Olympus_Mons"))
    env.apply(shs("sixty-one", process="quick", schedule="61 * * * *"))
    for name, words in (("mars", "unknown time zone 'Mars/Olympus_Mons'"), ("sixty-one", "minute 61")):
        status = wait_schedule(env, name, "Ready False", lambda s: ready(s).get("status") == "False")
        condition = ready(status)
        assert condition["reason"] == "InvalidSpec" and words in condition["message"], condition
        wait_until(lambda name=name: "InvalidSpec" in env.events(name), what=f"a Warning event on {name}")
    assert env.shards.controller.schedules.list(env.namespace) == []
    # Fixed, it becomes Ready and fires; the operator never crashed on the bad ones.
    env.apply(shs("mars", process="quick", every="1s"))
    status = wait_schedule(env, "mars", "Ready and launched", lambda s: ready(s).get("status") == "True"
                           and s.get("launched", 0) >= 1)
    assert status["observedGeneration"] == 2
    assert env.operator is not None and env.operator.running


def test_a_delayed_shard_process_waits_for_its_start_time(env: OperatorEnv, shp_crd: str) -> None:
    env.start_workers(1, app=TEST_APP)
    env.shards.define(env.namespace)  # else the operator's first try waits for the scope
    env.start_operator()
    start = utcnow() + timedelta(seconds=8)
    env.apply(env.shp("later", process="quick", startAt=iso(start)))
    waiting = env.wait_status("later", "Scheduled until its start time", lambda s: s.get("startAt"))
    assert waiting["state"] == "Scheduled"
    done = env.wait_state("later", "Done")
    assert "startAt" not in done
    [run] = env.shards.controller.history(env.namespace, "quick")
    assert run.started_at is not None and run.started_at >= start - timedelta(milliseconds=500)
