"""What a tenant stores in a ShardProcess cannot stop the operator, and what a tenant reads (its
status, conditions and Events) is right and names no server: a real API server, the operator as
an OS process, real workers (issue 22, point 4)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from e2e.operator_env import OperatorEnv
from integration.harness import wait_until
from tooling.cluster import KubeCluster

pytestmark = pytest.mark.e2e

TEST_APP = "tests/integration/apps/testapp.py:app"
API_VERSION = "shards.dev/v1alpha1"



def nested(depth: int) -> dict[str, Any]:
    """A JSON object `depth` levels deep, built without recursion (as text: json.dumps of it
    would need a deeper stack than this test process has)."""
    return {"text": '{"a":' * (depth - 1) + "1" + "}" * (depth - 1)}


def shp_text(name: str, args_text: str, **spec: Any) -> str:
    """A ShardProcess manifest as JSON text, its args spliced in as text."""
    body = json.dumps({"apiVersion": API_VERSION, "kind": "ShardProcess", "metadata": {"name": name},
                       "spec": {"process": "quick", "args": "@ARGS@", **spec}})
    return body.replace('"@ARGS@"', args_text)


def status_of(env: OperatorEnv, name: str) -> dict[str, Any]:
    """The status alone (`kubectl get -o json` of a deep resource is too deep for this process)."""
    out = env.cluster.kubectl("get", "shp", name, "-n", env.namespace, "-o", "jsonpath={.status}").stdout
    return dict(json.loads(out)) if out.strip() else {}


def waiting_reason(env: OperatorEnv, name: str) -> str:
    return str(env.condition(status_of(env, name), "Waiting").get("reason") or "")


def delete(env: OperatorEnv, name: str) -> None:
    """`kubectl delete` waits for the operator to remove its finalizer; bounded."""
    env.cluster.kubectl("delete", "shp", name, "-n", env.namespace, "--timeout=60s", timeout=90)
    gone = env.cluster.kubectl("get", "shp", name, "-n", env.namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


# 1,500 levels stopped kopf's watch (Python's default recursion limit is 1,000); the API server
# takes 10,000 for the whole object, args sit 2 levels in.
@pytest.mark.parametrize("depth", [1500, 9990])
def test_args_nested_deep_wait_as_invalid_and_stop_nothing_else(env: OperatorEnv, depth: int) -> None:
    """The API server stores args up to 10,000 levels deep: the operator decodes what it stores,
    refuses the run (InvalidArgs) and goes on with every other resource."""
    env.start_workers(1, app=TEST_APP)
    env.start_operator()
    deep = nested(depth)["text"]
    env.cluster.kubectl("create", "-n", env.namespace, "-f", "-", input=shp_text("deep", deep))
    env.apply(env.shp("fine", process="quick"))
    env.wait_state("fine", "Done")
    wait_until(lambda: waiting_reason(env, "deep") == "InvalidArgs", what="deep to wait as InvalidArgs")
    message = env.condition(status_of(env, "deep"), "Waiting")["message"]
    assert message == "process arguments nest more than 32 levels deep"
    assert env.operator is not None and env.operator.running
    assert "recursion" not in env.operator_log()
    delete(env, "deep")
    assert env.operator.running
    assert env.shards.controller.history(env.namespace, "quick")[0].state.value == "Done"  # fine's only


def test_args_over_256_kib_wait_as_invalid_and_the_resource_still_deletes(env: OperatorEnv) -> None:
    """kopf must not copy args into an annotation (256 KiB for all of them): every later patch,
    the finalizer's removal too, would be refused, and the resource could never go."""
    env.start_workers(1, app=TEST_APP)
    env.start_operator()
    big = json.dumps({"blob": "x" * (300 * 1024)})
    for name in ("big", "changed"):
        env.cluster.kubectl("create", "-n", env.namespace, "-f", "-", input=shp_text(name, big))
    for name in ("big", "changed"):
        wait_until(lambda name=name: waiting_reason(env, name) == "InvalidArgs", what=f"{name} to wait")
    message = env.condition(status_of(env, "big"), "Waiting")["message"]
    assert message.startswith("process arguments are ") and message.endswith("the limit is 65536")
    annotations = env.cluster.kubectl(
        "get", "shp", "big", "-n", env.namespace, "-o", "jsonpath={.metadata.annotations}").stdout
    assert "last-handled-spec" in annotations and len(annotations) < 4096, annotations[:300]
    delete(env, "big")
    # A change of args alone is a change of spec: the operator looks again, and launches.
    env.cluster.kubectl("patch", "shp", "changed", "-n", env.namespace, "--type=merge",
                        "-p", json.dumps({"spec": {"args": {"blob": None, "pause": 0.05}}}))
    env.wait_state("changed", "Done")
    delete(env, "changed")
    assert env.operator is not None and env.operator.running


@pytest.mark.parametrize("kill", ["running", "launching"])
def test_runs_that_ended_while_the_operator_was_away_get_one_launched_and_one_done_event(
    env: OperatorEnv, kill: str
) -> None:
    """Events follow the stored status: a new operator posts what the status it finds had not
    shown yet (Done), and never again what it had (Launched). Killed while its runs run, the
    operator misses their ends; killed while it launches, it may have posted a Launched Event
    whose status patch never landed (the next operator's same Event is refused by name)."""
    env.shards.start_worker(TEST_APP, concurrency=8)
    operator = env.start_operator("--scope-grant", f"{env.namespace}=*")
    names = [f"away-{n}" for n in range(8)]
    scopes = [f"{env.namespace[:40]}-{n}" for n in range(len(names))]
    for scope in scopes:  # a scope each: they run at once, none waits its turn
        env.shards.controller.define(scope)
    items = [env.shp(name, process="quick", scope=scope, args={"pause": 10})
             for name, scope in zip(names, scopes, strict=True)]
    env.apply({"apiVersion": "v1", "kind": "List", "items": items})

    def states() -> list[str]:
        listed = env.cluster.kubectl_json("get", "shp", "-n", env.namespace)
        return [item.get("status", {}).get("state") for item in listed["items"]]  # type: ignore[union-attr]

    def launched() -> bool:
        records = [env.shards.store.processes.get(scope, "quick") for scope in scopes]
        return any(record is not None and record.state.value != "Idle" for record in records)

    if kill == "running":
        wait_until(lambda: states() == ["Running"] * len(names), what="every run Running in its status")
    else:
        wait_until(launched, what="a first launch", pause=0.01)
    operator.kill()  # SIGKILL: no cleanup; the runs go on, or end, while no operator is there
    if kill == "running":
        for scope in scopes:
            wait_until(lambda scope=scope: env.shards.record(scope, "quick").state.value == "Done",
                       what=f"the run in {scope} to end")
    env.start_operator("--scope-grant", f"{env.namespace}=*")
    wait_until(lambda: states() == ["Done"] * len(names), timeout=120, what="every run Done in its status")
    env.stop_operator()  # SIGTERM: whatever it was to post is posted before it exits
    for name in names:
        reasons = env.events(name)
        assert (reasons.count("Launched"), reasons.count("Done")) == (1, 1), (name, reasons)


@pytest.mark.parametrize("backoff", [0, 0.05])
def test_a_retry_backoff_under_a_tenth_of_a_second_is_refused_at_admission(
    kube_cluster: KubeCluster, kube_namespace: str, shp_crd: str, backoff: float
) -> None:
    manifest = {"apiVersion": API_VERSION, "kind": "ShardProcess", "metadata": {"name": "hot"},
                "spec": {"process": "quick", "retries": 3, "retryBackoffSeconds": backoff}}
    refused = kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", input=json.dumps(manifest),
                                   check=False)
    assert refused.returncode != 0
    assert "spec.retryBackoffSeconds" in refused.stderr and "at least 0.1" in refused.stderr
    manifest["spec"]["retryBackoffSeconds"] = 0.1  # type: ignore[index]
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", input=json.dumps(manifest))
