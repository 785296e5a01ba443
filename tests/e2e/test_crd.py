"""The ShardProcess CRD, the deploy/ manifests and the operator's RBAC on a real kube-apiserver.

No operator runs here: these tests pin down what the API server itself accepts, rejects,
defaults and prints, and what the operator's ServiceAccount may and may not do.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.resources import DEPLOY, EXAMPLES, OPERATOR, can_i
from tooling.cluster import KubeCluster
from tooling.cluster._common import REPO_ROOT

pytestmark = pytest.mark.e2e

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))
API_VERSION = "shards.dev/v1alpha1"
STATES = ["Idle", "Scheduled", "Running", "StopRequested", "Stopping", "Stopped", "Failed", "Done"]
COLUMNS = ["NAME", "PROCESS", "SCOPE", "STATE", "ATTEMPT", "PROGRESS", "MESSAGE", "AGE"]
WIDE_COLUMNS = [*COLUMNS, "WORKER", "DURATION"]


def shp(name: str, spec: dict[str, Any] | None) -> str:
    obj: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "ShardProcess", "metadata": {"name": name}}
    if spec is not None:
        obj["spec"] = spec
    return json.dumps(obj)


def create(kube_cluster: KubeCluster, ns: str, manifest: str) -> dict[str, Any]:
    out = kube_cluster.kubectl("create", "-n", ns, "-f", "-", "-o", "json", input=manifest).stdout
    obj: dict[str, Any] = json.loads(out)
    return obj


def rejected(result: Any, *messages: str) -> str:
    """Assert a kubectl call failed with an API-server validation error carrying ``messages``."""
    assert result.returncode != 0, f"accepted, expected a rejection: {result.stdout}"
    stderr: str = result.stderr
    assert "is invalid" in stderr, stderr
    for message in messages:
        assert message in stderr, f"{message!r} not in: {stderr}"
    return stderr


def table(kube_cluster: KubeCluster, ns: str, *extra: str) -> list[list[str]]:
    out = kube_cluster.kubectl("get", "shp", "-n", ns, *extra).stdout
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]


# --- the CRD itself -------------------------------------------------------------------------


def test_crd_is_established_with_its_names(kube_cluster: KubeCluster, shp_crd: str) -> None:
    crd: dict[str, Any] = kube_cluster.kubectl_json("get", "crd", shp_crd)
    spec = crd["spec"]
    assert isinstance(spec, dict)
    assert spec["group"] == "shards.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "ShardProcess",
        "listKind": "ShardProcessList",
        "plural": "shardprocesses",
        "singular": "shardprocess",
        "shortNames": ["shp"],
        "categories": ["shards"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    status = crd["status"]
    assert isinstance(status, dict)
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    resources = kube_cluster.kubectl("api-resources", "--api-group=shards.dev", "-o", "wide").stdout
    assert re.search(r"^shardprocesses\s+shp\s+shards.dev/v1alpha1\s+true\s+ShardProcess\s", resources, re.M)
    assert "shards" in resources.splitlines()[1].split()  # the category column


def test_every_schema_field_has_a_description(kube_cluster: KubeCluster, shp_crd: str) -> None:
    crd: dict[str, Any] = kube_cluster.kubectl_json("get", "crd", shp_crd)
    spec = crd["spec"]
    assert isinstance(spec, dict)
    schema = spec["versions"][0]["schema"]["openAPIV3Schema"]
    missing: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for name, child in node.get("properties", {}).items():
            if path == "" and name == "metadata":
                continue  # the API server forbids anything but name/generateName there
            if not child.get("description"):
                missing.append(f"{path}.{name}")
            walk(child, f"{path}.{name}")
        if "items" in node:
            walk(node["items"], f"{path}[]")

    walk(schema, "")
    assert missing == []
    assert schema["properties"]["spec"]["properties"]["args"]["x-kubernetes-preserve-unknown-fields"] is True
    args_doc = schema["properties"]["spec"]["properties"]["args"]["description"]
    assert "64 KiB" in args_doc
    assert "32 levels" in args_doc
    assert "scope" not in schema["properties"]["spec"].get("required", [])
    assert "default" not in schema["properties"]["spec"]["properties"]["scope"]
    status = schema["properties"]["status"]["properties"]
    assert status["state"]["enum"] == STATES
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    for word in ("Complete", "Failed", "Waiting", "ConfirmationRequired", "UnknownProcess",
                 "UnknownScope", "NoWorker", "ProcessBusy", "ScopeNotAllowed", "InvalidArgs"):  # fmt: skip
        assert word in conditions["description"]


# --- the examples and the printer columns ---------------------------------------------------


def test_sheep_examples_apply_and_read_back_with_printer_columns(
    kube_cluster: KubeCluster, kube_namespace: str, shp_crd: str
) -> None:
    ns = kube_namespace
    assert [p.name for p in EXAMPLE_FILES] == ["process-args.yaml", "process-warning.yaml", "process.yaml"]
    sheep_processes = set(
        re.findall(r'@app\.process\(\s*"([^"]+)"', (REPO_ROOT / "examples/sheep.py").read_text())
    )
    assert {"breed-sheep", "count-sheep", "butcher-sheep", "inspect-flock"} <= sheep_processes

    created: dict[str, dict[str, Any]] = {}
    for path in EXAMPLE_FILES:
        obj = json.loads(kube_cluster.kubectl("apply", "-n", ns, "-f", str(path), "-o", "json").stdout)
        assert obj["kind"] == "ShardProcess", path
        spec = obj["spec"]
        assert spec["process"] in sheep_processes, path
        # The schema's defaults are filled in by the API server.
        assert spec["stop"] is False and spec["runs"] == 1, path
        assert isinstance(spec["confirm"], bool), path
        assert "status" not in obj, path
        created[obj["metadata"]["name"]] = obj
        # Re-applying an unchanged file is a no-op (the defaults do not count as a change).
        again = kube_cluster.kubectl("apply", "-n", ns, "-f", str(path)).stdout
        assert again.strip().endswith("unchanged"), again

    assert created["count-sheep"]["spec"]["process"] == "count-sheep"
    assert created["butcher-sheep"]["spec"]["process"] == "butcher-sheep"
    assert created["butcher-sheep"]["spec"]["confirm"] is False
    assert "confirm: true" in (EXAMPLES / "process-warning.yaml").read_text()  # the comment
    with_args = [o for o in created.values() if o["spec"].get("args")]
    assert with_args, "process-args.yaml should carry args"

    rows = table(kube_cluster, ns)
    assert rows[0] == COLUMNS
    # No operator: the status columns are empty, so a row is NAME, PROCESS and AGE.
    listed = {row[0]: row for row in rows[1:]}
    assert set(listed) == set(created)
    for name, row in listed.items():
        assert len(row) == 3, row
        assert row[1] == created[name]["spec"]["process"]
        assert re.fullmatch(r"\d+s", row[2]), row

    wide = table(kube_cluster, ns, "-o", "wide")
    assert wide[0] == WIDE_COLUMNS
    # The same rows (AGE aside: a second may pass between the two calls).
    assert {row[0]: row[1:-1] for row in wide[1:]} == {name: row[1:-1] for name, row in listed.items()}

    by_category = kube_cluster.kubectl("get", "shards", "-n", ns, "-o", "name").stdout.split()
    assert sorted(by_category) == sorted(f"shardprocess.shards.dev/{name}" for name in created)


def test_printer_columns_show_the_status_the_operator_writes(
    kube_cluster: KubeCluster, kube_namespace: str, shp_crd: str
) -> None:
    ns = kube_namespace
    create(kube_cluster, ns, shp("counting", {"process": "count-sheep", "args": {"n": 5}}))
    status = {
        "state": "Running",
        "scope": ns,
        "progress": {"message": "sheep 2", "rate": 0.4, "percent": 40},
        "error": "",
        "runId": "run-1.2",
        "runs": 1,
        "attempt": 2,
        "attempts": [{"attempt": 1, "runId": "run-1", "state": "Failed", "error": "boom",
                      "endedAt": "2026-01-01T00:00:00Z"}],
        "worker": "worker-a",
        "runningSince": "2026-01-01T00:00:00Z",
        "duration": 1.5,
        "observedGeneration": 1,
        "conditions": [
            {"type": "Waiting", "status": "False", "reason": "Launched", "message": "",
             "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1},
        ],
    }  # fmt: skip
    kube_cluster.kubectl(
        "patch", "shp", "counting", "-n", ns, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    obj: dict[str, Any] = kube_cluster.kubectl_json("get", "shp", "counting", "-n", ns)
    assert obj["status"] == status  # every status field is in the schema: nothing pruned

    rows = table(kube_cluster, ns)
    assert rows[0] == COLUMNS
    assert rows[1][:7] == ["counting", "count-sheep", ns, "Running", "2", "40", "sheep 2"]
    wide = table(kube_cluster, ns, "-o", "wide")
    assert wide[0] == WIDE_COLUMNS
    assert wide[1][:7] == rows[1][:7]
    assert wide[1][8:] == ["worker-a", "1.5"]

    # The main resource ignores status; the status subresource ignores spec.
    kube_cluster.kubectl(
        "patch", "shp", "counting", "-n", ns, "--type=merge",
        "-p", '{"spec": {"stop": true}, "status": {"state": "Done"}}',
    )  # fmt: skip
    kube_cluster.kubectl(
        "patch", "shp", "counting", "-n", ns, "--subresource=status", "--type=merge",
        "-p", '{"spec": {"stop": false}, "status": {"state": "Stopping"}}',
    )  # fmt: skip
    final: dict[str, Any] = kube_cluster.kubectl_json("get", "shp", "counting", "-n", ns)
    assert final["spec"]["stop"] is True
    assert final["status"]["state"] == "Stopping"


# --- what the API server rejects ------------------------------------------------------------

INVALID_CREATES = [
    pytest.param(None, ["spec: Required value"], id="no-spec"),
    pytest.param({"scope": "farm"}, ["spec.process: Required value"], id="no-process"),
    pytest.param({"process": ""}, ["spec.process"], id="empty-process"),
    pytest.param({"process": "count sheep"}, ['spec.process: Invalid value: "count sheep"', "should match"],
                 id="process-with-space"),
    pytest.param({"process": "-count-sheep"}, ['spec.process: Invalid value: "-count-sheep"', "should match"],
                 id="process-starting-with-dash"),
    pytest.param({"process": "a" * 201}, ["spec.process: Too long: may not be more than 200"],
                 id="process-201-chars"),
    pytest.param({"process": "count-sheep", "scope": "my farm"}, ['spec.scope: Invalid value: "my farm"'],
                 id="scope-with-space"),
    pytest.param({"process": "count-sheep", "args": [1, 2]}, ["spec.args", "must be of type object"],
                 id="args-array"),
    pytest.param({"process": "count-sheep", "args": "n=3"}, ["spec.args", "must be of type object"],
                 id="args-string"),
    pytest.param({"process": "count-sheep", "runs": 0},
                 ["spec.runs: Invalid value: 0", "should be greater than or equal to 1"], id="runs-0"),
    pytest.param({"process": "count-sheep", "stop": "yes"}, ["spec.stop", "must be of type boolean"],
                 id="stop-not-boolean"),
    pytest.param({"process": "count-sheep", "retries": 101},
                 ["spec.retries: Invalid value: 101", "should be less than or equal to 100"],
                 id="retries-101"),
    pytest.param({"process": "count-sheep", "retries": -1}, ["spec.retries: Invalid value: -1"],
                 id="retries-negative"),
    pytest.param({"process": "count-sheep", "retries": 1.5}, ["spec.retries", "must be of type integer"],
                 id="retries-fraction"),
    pytest.param({"process": "count-sheep", "retryBackoffSeconds": 301},
                 ["spec.retryBackoffSeconds: Invalid value: 301", "should be less than or equal to 300"],
                 id="backoff-over-300"),
    pytest.param({"process": "count-sheep", "retryBackoffSeconds": -0.5},
                 ["spec.retryBackoffSeconds: Invalid value: -0.5"], id="backoff-negative"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "messages"), INVALID_CREATES)
def test_invalid_resource_is_rejected(
    kube_cluster: KubeCluster, kube_namespace: str, shp_crd: str,
    spec: dict[str, Any] | None, messages: list[str],
) -> None:  # fmt: skip
    result = kube_cluster.kubectl(
        "create", "-n", kube_namespace, "-f", "-", input=shp("bad", spec), check=False
    )
    rejected(result, 'The ShardProcess "bad" is invalid', *messages)
    assert kube_cluster.kubectl("get", "shp", "-n", kube_namespace, "-o", "name").stdout == ""


def test_a_200_character_process_id_is_accepted(
    kube_cluster: KubeCluster, kube_namespace: str, shp_crd: str
) -> None:
    longest = "a" + "b_.:-9" * 33 + "z"
    assert len(longest) == 200
    obj = create(kube_cluster, kube_namespace, shp("longest", {"process": longest, "scope": "Farm.2:x"}))
    assert obj["spec"]["process"] == longest


@pytest.fixture
def existing(kube_cluster: KubeCluster, kube_namespace: str, shp_crd: str) -> Iterator[str]:
    """Two resources: `unscoped` (no spec.scope, runs 2) and `scoped` (scope farm)."""
    create(kube_cluster, kube_namespace, shp("unscoped", {"process": "count-sheep", "runs": 2}))
    create(kube_cluster, kube_namespace, shp("scoped", {"process": "breed-sheep", "scope": "farm"}))
    yield kube_namespace


INVALID_UPDATES = [
    pytest.param("unscoped", "merge", {"spec": {"process": "breed-sheep"}},
                 ['spec.process: Invalid value: "breed-sheep"', "spec.process is immutable"],
                 id="change-process"),
    pytest.param("scoped", "merge", {"spec": {"scope": "barn"}}, ["spec.scope is immutable"],
                 id="change-scope"),
    pytest.param("unscoped", "merge", {"spec": {"scope": "farm"}}, ["spec.scope is immutable"],
                 id="add-scope"),
    pytest.param("scoped", "json", [{"op": "remove", "path": "/spec/scope"}], ["spec.scope is immutable"],
                 id="remove-scope"),
    pytest.param("unscoped", "merge", {"spec": {"runs": 1}},
                 ["spec.runs: Invalid value: 1", "spec.runs may only grow"], id="lower-runs"),
    pytest.param("unscoped", "json", [{"op": "remove", "path": "/spec/runs"}],  # defaults back to 1
                 ["spec.runs may only grow"], id="remove-runs"),
    pytest.param("unscoped", "json", [{"op": "remove", "path": "/spec/process"}],
                 ["spec.process: Required value"], id="remove-process"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "patch_type", "patch", "messages"), INVALID_UPDATES)
def test_invalid_update_is_rejected(
    kube_cluster: KubeCluster, existing: str, name: str, patch_type: str, patch: object, messages: list[str]
) -> None:
    before: dict[str, Any] = kube_cluster.kubectl_json("get", "shp", name, "-n", existing)
    result = kube_cluster.kubectl(
        "patch", "shp", name, "-n", existing, f"--type={patch_type}", "-p", json.dumps(patch), check=False
    )
    rejected(result, f'The ShardProcess "{name}" is invalid', *messages)
    after: dict[str, Any] = kube_cluster.kubectl_json("get", "shp", name, "-n", existing)
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_the_mutable_fields_can_change(kube_cluster: KubeCluster, existing: str) -> None:
    ns = existing
    patch = {"spec": {"runs": 3, "stop": True, "confirm": True, "args": {"n": 3, "deep": {"x": [1]}},
                      "process": "count-sheep", "retries": 2, "retryBackoffSeconds": 0.5}}  # fmt: skip
    kube_cluster.kubectl("patch", "shp", "unscoped", "-n", ns, "--type=merge", "-p", json.dumps(patch))
    kube_cluster.kubectl(
        "patch", "shp", "scoped", "-n", ns, "--type=merge", "-p", '{"spec": {"scope": "farm"}}'
    )
    unscoped: dict[str, Any] = kube_cluster.kubectl_json("get", "shp", "unscoped", "-n", ns)
    assert unscoped["spec"] == {"process": "count-sheep", "runs": 3, "stop": True, "confirm": True,
                                "args": {"n": 3, "deep": {"x": [1]}}, "retries": 2,
                                "retryBackoffSeconds": 0.5}  # fmt: skip
    assert unscoped["metadata"]["generation"] == 2
    scoped: dict[str, Any] = kube_cluster.kubectl_json("get", "shp", "scoped", "-n", ns)
    assert scoped["spec"]["scope"] == "farm"


INVALID_STATUSES = [
    pytest.param({"state": "Sleeping"}, ['status.state: Unsupported value: "Sleeping"', '"StopRequested"'],
                 id="state-outside-enum"),
    pytest.param({"state": "running"}, ['status.state: Unsupported value: "running"'], id="state-lowercase"),
    pytest.param({"progress": {"percent": 101}}, ["status.progress.percent", "less than or equal to 100"],
                 id="percent-over-100"),
    pytest.param({"progress": {"rate": 1.5}}, ["status.progress.rate", "less than or equal to 1"],
                 id="rate-over-1"),
    pytest.param({"conditions": [{"type": "Complete", "status": "Maybe", "reason": "Done", "message": "",
                                  "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
                 ['status.conditions[0].status: Unsupported value: "Maybe"'], id="condition-status"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "messages"), INVALID_STATUSES)
def test_invalid_status_is_rejected(
    kube_cluster: KubeCluster, existing: str, status: dict[str, Any], messages: list[str]
) -> None:
    result = kube_cluster.kubectl(
        "patch", "shp", "unscoped", "-n", existing, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}), check=False,
    )  # fmt: skip
    rejected(result, *messages)
    assert "status" not in kube_cluster.kubectl_json("get", "shp", "unscoped", "-n", existing)


def test_a_null_in_a_status_patch_drops_the_field(kube_cluster: KubeCluster, existing: str) -> None:
    """How the operator clears status.retryAt once a retry has started."""
    def patch(status: dict[str, Any]) -> dict[str, Any]:
        kube_cluster.kubectl(
            "patch", "shp", "unscoped", "-n", existing, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}),
        )  # fmt: skip
        got: dict[str, Any] = kube_cluster.kubectl_json("get", "shp", "unscoped", "-n", existing)["status"]
        return got

    assert patch({"state": "Scheduled", "attempt": 2, "retryAt": "2026-01-01T00:00:02Z"})["retryAt"]
    assert patch({"state": "Running", "retryAt": None}) == {"state": "Running", "attempt": 2}


def test_every_state_is_accepted_in_status(kube_cluster: KubeCluster, existing: str) -> None:
    for state in STATES:
        kube_cluster.kubectl(
            "patch", "shp", "unscoped", "-n", existing, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"state": state}}),
        )  # fmt: skip
        got = kube_cluster.kubectl("get", "shp", "unscoped", "-n", existing, "-o", "jsonpath={.status.state}")
        assert got.stdout == state


# --- the operator's RBAC ----------------------------------------------------------------------

ALLOWED = [
    ("patch", "shardprocesses.shards.dev", "--subresource=status", "--all-namespaces"),
    ("update", "shardprocesses.shards.dev", "--subresource=status", "-n", "default"),
    ("get", "shardprocesses.shards.dev", "--subresource=status", "-n", "default"),
    ("watch", "shardprocesses.shards.dev", "--all-namespaces"),
    ("list", "shardprocesses.shards.dev", "--all-namespaces"),
    ("get", "shardprocesses.shards.dev", "-n", "default"),
    ("patch", "shardprocesses.shards.dev", "--all-namespaces"),
    ("update", "shardprocesses.shards.dev", "--subresource=finalizers", "-n", "default"),
    ("watch", "shardschedules.shards.dev", "--all-namespaces"),
    ("list", "shardschedules.shards.dev", "--all-namespaces"),
    ("patch", "shardschedules.shards.dev", "--all-namespaces"),
    ("patch", "shardschedules.shards.dev", "--subresource=status", "--all-namespaces"),
    ("create", "events", "-n", "default"),
    ("patch", "events", "-n", "default"),
    ("create", "events.events.k8s.io", "--all-namespaces"),
    ("list", "namespaces"),
    ("watch", "namespaces"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "tokenreviews.authentication.k8s.io"),  # the log service: who a reader's token is
    ("create", "subjectaccessreviews.authorization.k8s.io"),  # and whether they may get the resource
]
DENIED = [
    ("get", "secrets", "-n", "default"),
    ("list", "secrets", "--all-namespaces"),
    ("get", "secrets", "-n", "shards-system"),
    ("create", "pods", "-n", "default"),
    ("delete", "shardprocesses.shards.dev", "-n", "default"),
    ("create", "shardprocesses.shards.dev", "-n", "default"),
    ("delete", "shardschedules.shards.dev", "-n", "default"),
    ("create", "shardschedules.shards.dev", "-n", "default"),
    ("patch", "deployments.apps", "-n", "default"),
    ("delete", "events", "-n", "default"),
    ("delete", "namespaces"),
    ("patch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("list", "configmaps", "--all-namespaces"),
    ("update", "shardprocesses.shards.dev", "--subresource=scale", "-n", "default"),
    ("create", "serviceaccounts/token", "-n", "default"),  # it reviews tokens, it never mints one
    ("create", "localsubjectaccessreviews.authorization.k8s.io", "-n", "default"),
]


def test_operator_rbac_allows_what_the_operator_needs(kube_cluster: KubeCluster, operator_rbac: str) -> None:
    answers = {" ".join(check): can_i(kube_cluster, check) for check in ALLOWED}
    assert answers == dict.fromkeys(answers, "yes")


def test_operator_rbac_denies_everything_else(kube_cluster: KubeCluster, operator_rbac: str) -> None:
    answers = {" ".join(check): can_i(kube_cluster, check) for check in DENIED}
    assert answers == dict.fromkeys(answers, "no")


def test_operator_token_can_write_status_but_not_delete(
    kube_cluster: KubeCluster, kube_namespace: str, operator_rbac: str, tmp_path: Path
) -> None:
    ns = kube_namespace
    create(kube_cluster, ns, shp("watched", {"process": "count-sheep"}))
    token = kube_cluster.kubectl(
        "create", "token", "shards-operator", "-n", "shards-system", "--duration=10m"
    ).stdout.strip()
    as_operator = kube_cluster.token_kubeconfig(token, tmp_path / "operator.kubeconfig")

    def run(*args: str, input: str | None = None) -> Any:
        return kube_cluster.kubectl(*args, input=input, kubeconfig=as_operator, check=False)

    listed = run("get", "shp", "-A", "-o", "name")
    assert listed.returncode == 0, listed.stderr
    assert "shardprocess.shards.dev/watched" in listed.stdout.split()
    patched = run("patch", "shp", "watched", "-n", ns, "--subresource=status", "--type=merge",
                  "-p", json.dumps({"status": {"state": "Scheduled", "scope": ns}}))  # fmt: skip
    assert patched.returncode == 0, patched.stderr
    annotated = run(
        "annotate", "shp", "watched", "-n", ns, f"kopf.zalando.org/probe-{uuid.uuid4().hex[:6]}=x"
    )
    assert annotated.returncode == 0, annotated.stderr
    event = json.dumps({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": "watched-", "namespace": ns},
        "involvedObject": {"apiVersion": API_VERSION, "kind": "ShardProcess", "name": "watched",
                           "namespace": ns},
        "reason": "Logging", "message": "launched", "type": "Normal",
    })  # fmt: skip
    posted = run("create", "-f", "-", "-o", "name", input=event)
    assert posted.returncode == 0, posted.stderr

    for forbidden in (("delete", "shp", "watched", "-n", ns),
                      ("get", "secrets", "-n", ns),
                      ("create", "configmap", "sneaky", "-n", ns)):  # fmt: skip
        result = run(*forbidden)
        assert result.returncode != 0
        assert "forbidden" in result.stderr.lower(), result.stderr
        assert OPERATOR in result.stderr

    obj: dict[str, Any] = kube_cluster.kubectl_json("get", "shp", "watched", "-n", ns)
    assert obj["status"] == {"state": "Scheduled", "scope": ns}


def test_every_rbac_rule_says_why_it_is_needed() -> None:
    lines = (DEPLOY / "operator-rbac.yaml").read_text().splitlines()
    rule_starts = [i for i, line in enumerate(lines) if line.strip().startswith("- apiGroups:")]
    # 11 cluster-wide (2 of them the log service's reviews), 2 for the Lease in the release
    # namespace, 1 for the way in to the log service through the API server's proxy
    assert len(rule_starts) == 14
    for i in rule_starts:
        assert lines[i - 1].strip().startswith("#"), f"rule at line {i + 1} has no comment"
    text = "\n".join(lines)
    assert "kopfpeerings" not in re.sub(r"#.*", "", text)  # --standalone: no peering rights
    assert "*" not in re.sub(r"#.*", "", text)  # no wildcards
