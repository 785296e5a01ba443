"""The Helm chart at the repository root, with the pinned helm against a real kube-apiserver.

Rendered objects go through `kubectl apply --dry-run=server` (the API server's own validation,
KEDA's real CRDs included); install, upgrade and uninstall run for real (these tests wait on
objects, not on Pods: test_chart_pods.py runs the chart's Pods on the local node); the
ServiceAccounts' rights are asked of the API server; the operator, run as a local process with
the chart's ServiceAccount token, takes the example to Done.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e.operator_env import OperatorEnv
from e2e.resources import DEPLOY, EXAMPLES, can_i, fresh_namespace
from e2e.test_crd import ALLOWED, DENIED
from integration.harness import wait_until
from pymongo import MongoClient
from shards_store.requests import pending_launches_filter
from shards_store.store import Store
from tooling import metrics_reference
from tooling import promtool as promtool_build
from tooling.cluster import KubeCluster, wait_for
from tooling.cluster._common import REPO_ROOT

pytestmark = pytest.mark.e2e

CHART = REPO_ROOT
KEDA_CRDS = Path(__file__).parent / "fixtures" / "keda"
MONITORING_CRDS = Path(__file__).parent / "fixtures" / "prometheus-operator"
ALERT_TESTS = Path(__file__).parent / "fixtures" / "alerts" / "shards-alerts.test.yaml"
MONGO = {"mongo": {"uri": "mongodb://shards:secret@mongo.example:27017/shards?replicaSet=rs0"}}
SHEEP_POOL = {"name": "default", "app": "sheep:app", "image": {"repository": "shards-example-sheep"}}

# The value sets whose every rendered object the API server must accept.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": MONGO,
    "existing-secret": {"mongo": {"existingSecret": "my-mongo", "existingSecretKey": "connection",
                                  "tls": {"caSecret": "mongo-ca"}}},
    "two-pools": {**MONGO, "workers": [
        {**SHEEP_POOL, "replicas": 3, "concurrency": 4, "pdb": {"enabled": True, "minAvailable": 1},
         "env": [{"name": "SHEEP_COLOR", "value": "white"}]},
        {"name": "batch", "app": "jobs:app", "shutdownGraceSeconds": 120, "terminationGraceMarginSeconds": 30,
         "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
         "pdb": {"enabled": True, "maxUnavailable": "50%"}},
    ]},
    "keda": {**MONGO, "workers": [
        {**SHEEP_POOL, "autoscaling": {"keda": {"enabled": True, "maxReplicaCount": 8}}},
        {"name": "batch", "app": "jobs:app",
         "autoscaling": {"keda": {"enabled": True, "minReplicaCount": 1, "pendingPerReplica": 2}}},
    ]},
    "hpa": {**MONGO, "workers": [
        {**SHEEP_POOL, "autoscaling": {"hpa": {"enabled": True, "minReplicas": 2, "maxReplicas": 6}}},
    ]},
    "network-policy": {**MONGO, "workers": [SHEEP_POOL], "networkPolicy": {
        "enabled": True,
        "mongo": {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}},
                         {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mongo"}},
                          "podSelector": {"matchLabels": {"app": "mongo"}}}]},
        "apiServer": {"cidrs": ["10.0.0.1/32"], "ports": [443]},
        "metricsFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    }},
    "plain": yaml.safe_load((DEPLOY / "helm" / "values-plain.yaml").read_text()),
    "dashboard": {**MONGO, "dashboard": {"enabled": True, "token": {"existingSecret": "dash-token"}}},
    "dashboard-read-only": {**MONGO, "dashboard": {"enabled": True, "readOnly": True, "poll": 2,
                                                   "token": {"existingSecret": "dash-token"}}},
    "grafana-dashboard": {**MONGO, "grafana": {"dashboard": {
        "enabled": True, "labels": {"team": "ops"}, "annotations": {"grafana_folder": "Shards"}}}},
}


# --- helpers ----------------------------------------------------------------------------------

def values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(json.dumps(values))  # JSON is YAML
    return path


def template(kube_cluster: KubeCluster, tmp_path: Path, values: dict[str, Any], namespace: str = "shards",
             release: str = "shards", check: bool = True) -> subprocess.CompletedProcess[str]:
    return kube_cluster.helm("template", release, str(CHART), "--namespace", namespace,
                             "-f", str(values_file(tmp_path, values)), check=check)


def objects(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def release_name() -> str:
    return f"t{uuid.uuid4().hex[:6]}"


def exists(kube_cluster: KubeCluster, *what: str) -> bool:
    return kube_cluster.kubectl("get", *what, check=False).returncode == 0


@pytest.fixture(scope="session")
def keda_crds(kube_cluster: KubeCluster) -> None:
    """KEDA's real ScaledObject and TriggerAuthentication CRDs (KEDA itself does not run)."""
    kube_cluster.kubectl("apply", "-f", str(KEDA_CRDS))
    for crd in ("scaledobjects.keda.sh", "triggerauthentications.keda.sh"):
        kube_cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=90s",
                             timeout=120)
    wait_for("ScaledObjects to be served",
             lambda: exists(kube_cluster, "scaledobjects.keda.sh", "-A") or None, timeout=60)


@pytest.fixture(scope="session")
def monitoring_crds(kube_cluster: KubeCluster) -> None:
    """The Prometheus Operator's real ServiceMonitor, PodMonitor and PrometheusRule CRDs (the
    operator itself does not run)."""
    kube_cluster.kubectl("apply", "--server-side", "-f", str(MONITORING_CRDS))
    for kind in ("servicemonitors", "podmonitors", "prometheusrules"):
        kube_cluster.kubectl("wait", "--for=condition=Established", f"crd/{kind}.monitoring.coreos.com",
                             "--timeout=90s", timeout=120)
    wait_for("PrometheusRules to be served",
             lambda: exists(kube_cluster, "prometheusrules.monitoring.coreos.com", "-A") or None, timeout=60)


@pytest.fixture
def release_namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    """A second fresh namespace, where a release is installed (the operator's home)."""
    with fresh_namespace(kube_cluster, f"e2e-chart-{uuid.uuid4().hex[:8]}") as name:
        yield name


class Release:
    """helm install / upgrade / uninstall of the chart in a namespace, uninstalled at the end."""

    def __init__(self, cluster: KubeCluster, namespace: str, tmp_path: Path) -> None:
        self.cluster, self.namespace, self.tmp_path = cluster, namespace, tmp_path
        self.name = release_name()
        self.installed = False

    @property
    def fullname(self) -> str:
        return f"{self.name}-shards"

    def install(self, values: dict[str, Any]) -> str:
        out = self.cluster.helm("install", self.name, str(CHART), "--namespace", self.namespace,
                                "-f", str(values_file(self.tmp_path, values))).stdout
        self.installed = True
        return out

    def upgrade(self, values: dict[str, Any]) -> str:
        return self.cluster.helm("upgrade", self.name, str(CHART), "--namespace", self.namespace,
                                 "-f", str(values_file(self.tmp_path, values))).stdout

    def uninstall(self) -> str:
        out = self.cluster.helm("uninstall", self.name, "--namespace", self.namespace).stdout
        self.installed = False
        return out

    def close(self) -> None:
        if self.installed:
            self.cluster.helm("uninstall", self.name, "--namespace", self.namespace, check=False)


@pytest.fixture
def release(
    kube_cluster: KubeCluster, shp_crd: str, release_namespace: str, tmp_path: Path
) -> Iterator[Release]:
    rel = Release(kube_cluster, release_namespace, tmp_path)
    try:
        yield rel
    finally:
        rel.close()


# --- the chart as files -----------------------------------------------------------------------

def test_lint_strict(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    for values in (MONGO, VALUE_SETS["plain"], VALUE_SETS["keda"], VALUE_SETS["network-policy"],
                   VALUE_SETS["grafana-dashboard"]):
        result = kube_cluster.helm("lint", "--strict", str(CHART), "-f", str(values_file(tmp_path, values)))
        assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout


def test_the_package_holds_the_chart_only(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    out = kube_cluster.helm("package", str(CHART), "--destination", str(tmp_path)).stdout
    package = tmp_path / "shards-0.1.0.tgz"
    assert str(package) in out
    with tarfile.open(package) as tar:
        names = [name.removeprefix("shards/") for name in tar.getnames()]
    tops = {name.split("/")[0] for name in names}
    assert tops == {"Chart.yaml", "values.yaml", "values.schema.json", "templates", "crds",
                    "dashboards"}, names
    assert "crds/shardprocesses.shards.dev.yaml" in names
    assert [name for name in names if name.startswith("dashboards/")] == ["dashboards/shards.json"]
    assert {"templates/_helpers.tpl", "templates/NOTES.txt", "templates/operator-deployment.yaml",
            "templates/worker-scaledobject.yaml"} <= set(names)
    assert package.stat().st_size < 64 * 1024


def test_every_value_has_a_comment() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    parents: list[tuple[int, str]] = []
    undocumented = []
    for i, line in enumerate(lines):
        key = re.match(r"^( *)([A-Za-z][\w.-]*):", line)
        if key is None:
            continue
        indent = len(key[1])
        parents = [(n, k) for n, k in parents if n < indent]
        inside_an_example = any(k in ("resources", "to") for _, k in parents)  # Kubernetes objects
        parents.append((indent, key[2]))
        if not inside_an_example and "#" not in line and not lines[i - 1].lstrip().startswith("#"):
            undocumented.append(f"{i + 1}: {line}")
    assert undocumented == []


# --- every rendered object, as the API server sees it -----------------------------------------

@pytest.mark.parametrize("case", sorted(VALUE_SETS))
def test_rendered_objects_are_accepted_by_the_api_server(
    kube_cluster: KubeCluster, kube_namespace: str, keda_crds: None, tmp_path: Path, case: str
) -> None:
    rendered = template(kube_cluster, tmp_path, VALUE_SETS[case], namespace=kube_namespace,
                        release=release_name()).stdout
    docs = objects(rendered)
    result = kube_cluster.kubectl("apply", "--dry-run=server", "-n", kube_namespace, "-f", "-",
                                  input=rendered, check=False)
    assert result.returncode == 0, result.stderr
    applied = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len(docs), result.stdout
    assert_hardened(docs)


def assert_hardened(docs: list[dict[str, Any]]) -> None:
    deployments = by_kind(docs, "Deployment")
    assert deployments
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"] == {
            "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"}}, name
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert set(container["resources"]) == {"requests", "limits"}
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
            env = {var["name"]: var for var in container["env"]}
            assert "secretKeyRef" in env["SHARDS_MONGO_URI"]["valueFrom"]  # never a literal URI
            assert container["livenessProbe"]["httpGet"]["port"] in ("health", "metrics", "http")
        if deployment["metadata"]["labels"]["app.kubernetes.io/component"] == "dashboard":
            assert pod["automountServiceAccountToken"] is False
        if deployment["metadata"]["labels"]["app.kubernetes.io/component"] == "worker":
            assert pod["automountServiceAccountToken"] is False
            args = pod["containers"][0]["args"]
            grace = float(args[args.index("--shutdown-grace") + 1])
            assert pod["terminationGracePeriodSeconds"] > grace
            assert args[args.index("--worker-id") + 1] == "$(POD_NAME)"


def test_defaults_render_the_operator_as_asked(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    docs = objects(template(kube_cluster, tmp_path, {**MONGO, "operator": {
        "namespaces": ["a", "b"], "scopeGrants": ["a=farm"]}}).stdout)
    operator = by_kind(docs, "Deployment")["shards-operator"]
    # Two replicas electing a leader: an update starts a standby before an old pod goes.
    assert operator["spec"]["replicas"] == 2
    assert operator["spec"]["strategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    pod = operator["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "shards-operator"
    container = pod["containers"][0]
    assert container["image"] == "shards-operator:0.1.0" and container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["shards"]
    assert container["args"] == [
        "operator", "--liveness", "http://0.0.0.0:8080/healthz", "--metrics-port", "9100",
        "--metrics-address", "0.0.0.0", "--logs-port", "8082", "--logs-address", "0.0.0.0",
        "--status-interval", "1", "--delete-timeout", "30",
        "--leader-election", "--lease-name", "shards-operator",
        "--namespace", "a", "--namespace", "b", "--scope-grant", "a=farm"]
    env = {var["name"]: var.get("valueFrom") for var in container["env"]}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    spread = {(c["topologyKey"], c["whenUnsatisfiable"]) for c in pod["topologySpreadConstraints"]}
    assert spread == {("kubernetes.io/hostname", "ScheduleAnyway"),
                      ("topology.kubernetes.io/zone", "ScheduleAnyway")}
    assert all(c["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
               for c in pod["topologySpreadConstraints"])
    pdb = by_kind(docs, "PodDisruptionBudget")["shards-operator"]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    role = by_kind(docs, "Role")["shards-operator-leader-election"]
    assert role["metadata"]["namespace"] == "shards"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": ["shards-operator"], "verbs": ["get", "update"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}]
    binding = by_kind(docs, "RoleBinding")["shards-operator-leader-election"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "shards-operator", "namespace": "shards"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    secret = by_kind(docs, "Secret")["shards-mongo"]
    assert secret["stringData"] == {"uri": MONGO["mongo"]["uri"]}
    service = by_kind(docs, "Service")["shards-operator-metrics"]
    assert service["spec"]["ports"][0]["port"] == 9100
    assert not by_kind(docs, "ScaledObject") and not by_kind(docs, "NetworkPolicy")
    # The log service (kubectl shards logs): its port and Service, the reviews it asks for, and
    # the way in through the API server's proxy: that one Service port, to authenticated users.
    assert {"name": "logs", "containerPort": 8082, "protocol": "TCP"} in container["ports"]
    logs = by_kind(docs, "Service")["shards-operator"]
    assert logs["spec"]["ports"] == [{"name": "logs", "port": 8082, "targetPort": "logs", "protocol": "TCP"}]
    reviews = [rule for rule in by_kind(docs, "ClusterRole")["shards-operator"]["rules"]
               if rule["resources"][0].endswith("reviews")]
    assert reviews == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]}]
    assert by_kind(docs, "Role")["shards-operator-logs-proxy"]["rules"] == [
        {"apiGroups": [""], "resources": ["services/proxy"], "resourceNames": ["http:shards-operator:logs"],
         "verbs": ["get"]}]
    assert by_kind(docs, "RoleBinding")["shards-operator-logs-proxy"]["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}]
    without = {**MONGO, "operator": {"logs": {"enabled": False}}}
    off = objects(template(kube_cluster, tmp_path, without).stdout)
    [container] = by_kind(off, "Deployment")["shards-operator"]["spec"]["template"]["spec"]["containers"]
    assert "--logs-port" not in container["args"] and "shards-operator" not in by_kind(off, "Service")
    assert "shards-operator-logs-proxy" not in by_kind(off, "Role")
    assert not [rule for rule in by_kind(off, "ClusterRole")["shards-operator"]["rules"]
                if rule["resources"][0].endswith("reviews")]


def test_one_operator_replica_has_no_pdb(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    docs = objects(template(kube_cluster, tmp_path, {**MONGO, "operator": {
        "replicas": 1, "strategyType": "Recreate", "spreadPods": False}}).stdout)
    operator = by_kind(docs, "Deployment")["shards-operator"]
    assert operator["spec"]["replicas"] == 1 and operator["spec"]["strategy"] == {"type": "Recreate"}
    assert "topologySpreadConstraints" not in operator["spec"]["template"]["spec"]
    assert not by_kind(docs, "PodDisruptionBudget")
    assert "shards-operator-leader-election" in by_kind(docs, "Role")  # still elects: one at a time


def test_a_pool_renders_its_worker_command(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    docs = objects(template(kube_cluster, tmp_path, VALUE_SETS["two-pools"]).stdout)
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {"shards-operator", "shards-worker-default", "shards-worker-batch"}
    sheep = deployments["shards-worker-default"]
    assert sheep["spec"]["replicas"] == 3
    pod = sheep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "shards-example-sheep:0.1.0"
    assert container["command"] == ["shards", "worker"]
    assert container["args"] == ["sheep:app", "--pool", "default", "--concurrency", "4", "--shutdown-grace",
                                 "20", "--lease", "45", "--worker-id", "$(POD_NAME)", "--metrics-port",
                                 "9100", "--metrics-address", "0.0.0.0"]
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["serviceAccountName"] == "shards-worker"
    env = {var["name"]: var for var in container["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["SHEEP_COLOR"] == {"name": "SHEEP_COLOR", "value": "white"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    batch = deployments["shards-worker-batch"]["spec"]["template"]["spec"]
    assert batch["terminationGracePeriodSeconds"] == 150
    assert batch["containers"][0]["image"] == "shards-worker:0.1.0"
    assert batch["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    pdbs = by_kind(docs, "PodDisruptionBudget")
    assert pdbs["shards-worker-default"]["spec"]["minAvailable"] == 1
    assert pdbs["shards-worker-batch"]["spec"]["maxUnavailable"] == "50%"
    assert by_kind(docs, "ServiceAccount")["shards-worker"]["automountServiceAccountToken"] is False
    metrics = by_kind(docs, "Service")["shards-worker-metrics"]["spec"]  # every pool's pods, headless
    assert metrics["clusterIP"] == "None" and metrics["ports"][0]["targetPort"] == "metrics"
    assert metrics["selector"]["app.kubernetes.io/component"] == "worker"


# --- KEDA: the query is the store's --------------------------------------------------------------

def test_keda_query_is_the_stores_pending_launches_filter(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    values = {**VALUE_SETS["keda"], "mongo": {"existingSecret": "my-mongo", "existingSecretKey": "conn",
                                              "database": "shards-prod"}}
    docs = objects(template(kube_cluster, tmp_path, values).stdout)
    client: MongoClient[Any] = MongoClient("mongodb://127.0.0.1:1/shards", connect=False)
    try:
        collection = Store(client, client["shards"]).requests.collection.name
    finally:
        client.close()
    scaled = by_kind(docs, "ScaledObject")
    assert set(scaled) == {"shards-worker-default", "shards-worker-batch"}
    auth = by_kind(docs, "TriggerAuthentication")["shards-mongo"]
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "connectionString", "name": "my-mongo", "key": "conn"}]
    for pool in ("default", "batch"):
        spec = scaled[f"shards-worker-{pool}"]["spec"]
        assert spec["scaleTargetRef"]["name"] == f"shards-worker-{pool}"
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "mongodb"
        assert trigger["authenticationRef"] == {"name": "shards-mongo"}
        meta = trigger["metadata"]
        assert json.loads(meta["query"]) == json.loads(json.dumps(pending_launches_filter(pool)))
        assert meta["collection"] == collection == "requests"
        assert meta["dbName"] == "shards-prod"
    assert scaled["shards-worker-batch"]["spec"]["triggers"][0]["metadata"]["queryValue"] == "2"
    # KEDA owns the replica count: the Deployment does not set it (an upgrade would reset it).
    assert "replicas" not in by_kind(docs, "Deployment")["shards-worker-default"]["spec"]


def test_the_dashboard_is_off_by_default_and_safe_when_on(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    assert not [d for d in objects(template(kube_cluster, tmp_path, MONGO).stdout)
                if d["metadata"]["name"].endswith("-dashboard")]
    docs = objects(template(kube_cluster, tmp_path, VALUE_SETS["dashboard"]).stdout)
    deployment = by_kind(docs, "Deployment")["shards-dashboard"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    [container] = pod["containers"]
    assert container["image"] == "shards-operator:0.1.0"  # the operator image carries the dashboard
    assert container["command"] == ["shards"]
    assert container["args"] == ["dashboard", "--host", "0.0.0.0", "--port", "8765", "--scope", "default"]
    env = {var["name"]: var for var in container["env"]}
    assert env["SHARDS_DASHBOARD_TOKEN"] == {"name": "SHARDS_DASHBOARD_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "dash-token", "key": "token"}}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/api/config", "port": "http"}
    service = by_kind(docs, "Service")["shards-dashboard"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "dashboard"
    assert_hardened(docs)

    read_only = by_kind(objects(template(kube_cluster, tmp_path, VALUE_SETS["dashboard-read-only"]).stdout),
                        "Deployment")["shards-dashboard"]
    [container] = read_only["spec"]["template"]["spec"]["containers"]
    assert container["args"][-3:] == ["--poll", "2", "--read-only"]
    # Read-only hides the actions; the reads stay behind the token.
    assert "SHARDS_DASHBOARD_TOKEN" in {var["name"] for var in container["env"]}


def test_the_grafana_dashboard_is_off_by_default_and_carries_the_json(
    kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    assert not by_kind(objects(template(kube_cluster, tmp_path, MONGO).stdout), "ConfigMap")
    dashboard = json.loads((CHART / "dashboards" / "shards.json").read_text())
    docs = objects(template(kube_cluster, tmp_path, VALUE_SETS["grafana-dashboard"]).stdout)
    [config_map] = by_kind(docs, "ConfigMap").values()
    metadata = config_map["metadata"]
    assert metadata["name"] == "shards-grafana-dashboard" and metadata["namespace"] == "shards"
    assert metadata["labels"]["grafana_dashboard"] == "1"  # what the sidecar looks for
    assert metadata["labels"]["team"] == "ops"
    assert metadata["labels"]["app.kubernetes.io/instance"] == "shards"
    assert metadata["annotations"] == {"grafana_folder": "Shards"}
    assert list(config_map["data"]) == ["shards.json"]
    assert json.loads(config_map["data"]["shards.json"]) == dashboard

    # Another sidecar label (a number is quoted), another namespace; `labels` cannot override it.
    docs = objects(template(kube_cluster, tmp_path, {**MONGO, "grafana": {"dashboard": {
        "enabled": True, "sidecarLabel": "example.com/dashboard", "sidecarLabelValue": 1,
        "namespace": "monitoring", "labels": {"example.com/dashboard": "0"}}}}).stdout)
    [config_map] = by_kind(docs, "ConfigMap").values()
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["example.com/dashboard"] == "1"
    assert "grafana_dashboard" not in config_map["metadata"]["labels"]
    assert "annotations" not in config_map["metadata"]
    assert json.loads(config_map["data"]["shards.json"]) == dashboard


# --- values the schema or the templates refuse --------------------------------------------------

REFUSED = [
    ("unknown-key", {**MONGO, "operater": {}}, ["additional properties 'operater' not allowed"]),
    ("unknown-pool-key", {**MONGO, "workers": [{**SHEEP_POOL, "concurency": 2}]},
     ["/workers/0", "additional properties 'concurency' not allowed"]),
    ("wrong-type", {**MONGO, "worker": {"concurrency": "four"}},
     ["/worker/concurrency", "got string, want integer"]),
    ("missing-mongo", {}, ["mongo.uri or mongo.existingSecret is required"]),
    ("both-mongo", {"mongo": {"uri": "mongodb://x/shards", "existingSecret": "s"}},
     ["give only one of mongo.uri and mongo.existingSecret"]),
    ("hpa-and-keda", {**MONGO, "workers": [{**SHEEP_POOL, "autoscaling": {
        "hpa": {"enabled": True}, "keda": {"enabled": True}}}]},
     ["/workers/0/autoscaling/keda/enabled", "value must be false"]),
    ("pool-without-app", {**MONGO, "workers": [{"name": "x"}]}, ["/workers/0", "missing property 'app'"]),
    ("grace-margin-zero", {**MONGO, "worker": {"terminationGraceMarginSeconds": 0}},
     ["/worker/terminationGraceMarginSeconds", "minimum"]),
    ("negative-operators", {**MONGO, "operator": {"replicas": -1}}, ["/operator/replicas", "minimum"]),
    ("unknown-pdb-key", {**MONGO, "operator": {"pdb": {"maxUnavailable": 1}}},
     ["/operator/pdb", "additional properties 'maxUnavailable' not allowed"]),
    ("duplicate-pools", {**MONGO, "workers": [SHEEP_POOL, SHEEP_POOL]}, ['two pools are named "default"']),
    ("network-policy-without-mongo", {**MONGO, "networkPolicy": {"enabled": True}},
     ["networkPolicy.mongo.to is required"]),
    ("dashboard-without-token", {**MONGO, "dashboard": {"enabled": True}},
     ["set dashboard.token.existingSecret", "every read and action needs"]),
    ("dashboard-read-only-without-token", {**MONGO, "dashboard": {"enabled": True, "readOnly": True}},
     ["set dashboard.token.existingSecret"]),
    ("dashboard-literal-token", {**MONGO, "dashboard": {"enabled": True, "token": {"value": "x"}}},
     ["/dashboard/token", "additional properties 'value' not allowed"]),
    ("grafana-unknown-key", {**MONGO, "grafana": {"dashboard": {"enabled": True, "folder": "Shards"}}},
     ["/grafana/dashboard", "additional properties 'folder' not allowed"]),
    ("grafana-bad-label-value", {**MONGO, "grafana": {"dashboard": {"sidecarLabelValue": "a/b"}}},
     ["/grafana/dashboard/sidecarLabelValue", "does not match pattern"]),
]


@pytest.mark.parametrize(("case", "values", "messages"), REFUSED, ids=[case for case, _, _ in REFUSED])
def test_bad_values_are_refused_with_a_clear_message(
    kube_cluster: KubeCluster, tmp_path: Path, case: str, values: dict[str, Any], messages: list[str]
) -> None:
    result = template(kube_cluster, tmp_path, values, check=False)
    assert result.returncode != 0, f"{case}: rendered, expected a refusal"
    for message in messages:
        assert message in result.stderr, f"{message!r} not in: {result.stderr}"


# --- install, upgrade, uninstall ---------------------------------------------------------------

def test_install_upgrade_uninstall(kube_cluster: KubeCluster, release: Release) -> None:
    ns, name = release.namespace, release.fullname
    notes = release.install(MONGO)
    assert "STATUS: deployed" in notes and "kubectl get shp -n my-app -w" in notes
    for what in (("deployment", f"{name}-operator"), ("serviceaccount", f"{name}-operator"),
                 ("service", f"{name}-operator-metrics"), ("secret", f"{name}-mongo")):
        wait_until(lambda what=what: exists(kube_cluster, *what, "-n", ns), what=f"{what} to exist")
    for what in (("clusterrole", f"{name}-operator"), ("clusterrolebinding", f"{name}-operator")):
        assert exists(kube_cluster, *what)
    election = f"{name}-operator-leader-election"
    for what in (("role", election), ("rolebinding", election), ("pdb", f"{name}-operator")):
        assert exists(kube_cluster, *what, "-n", ns)
    assert not exists(kube_cluster, "deployment", f"{name}-worker-default", "-n", ns)

    release.upgrade({**VALUE_SETS["two-pools"], "operator": {"scopeGrants": [f"{ns}=farm"]}})
    deployments = kube_cluster.kubectl_json("get", "deployments", "-n", ns)["items"]
    names = {item["metadata"]["name"] for item in deployments}
    assert names == {f"{name}-operator", f"{name}-worker-default", f"{name}-worker-batch"}
    operator = kube_cluster.kubectl_json("get", "deployment", f"{name}-operator", "-n", ns)
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-2:] == ["--scope-grant", f"{ns}=farm"]
    history = json.loads(kube_cluster.helm("history", release.name, "-n", ns, "-o", "json").stdout)
    assert [(entry["revision"], entry["status"]) for entry in history] == [(1, "superseded"), (2, "deployed")]
    wait_until(lambda: exists(kube_cluster, "pdb", f"{name}-worker-default", "-n", ns), what="the PDB")

    assert "uninstalled" in release.uninstall()
    wait_until(lambda: not exists(kube_cluster, "clusterrole", f"{name}-operator"),
               what="the ClusterRole to go")
    wait_until(lambda: not exists(kube_cluster, "deployment", f"{name}-worker-batch", "-n", ns),
               what="the worker Deployment to go")
    assert not exists(kube_cluster, "secret", f"{name}-mongo", "-n", ns)
    assert exists(kube_cluster, "crd", "shardprocesses.shards.dev")  # Helm never deletes crds/


def test_service_accounts_have_exactly_their_rights(kube_cluster: KubeCluster, release: Release) -> None:
    release.install({**MONGO, "workers": [SHEEP_POOL]})
    ns, name = release.namespace, release.fullname
    operator = f"system:serviceaccount:{ns}:{name}-operator"
    worker = f"system:serviceaccount:{ns}:{name}-worker"
    wait_until(lambda: can_i(kube_cluster, ("watch", "shardprocesses.shards.dev", "--all-namespaces"),
                             as_user=operator) == "yes", what="the ClusterRoleBinding to take effect")
    allowed = {" ".join(check): can_i(kube_cluster, check, as_user=operator) for check in ALLOWED}
    assert allowed == dict.fromkeys(allowed, "yes")
    denied = {" ".join(check): can_i(kube_cluster, check, as_user=operator) for check in DENIED}
    assert denied == dict.fromkeys(denied, "no")
    # Leader election: its own Lease in the release namespace, and no other Lease anywhere.
    lease = f"leases.coordination.k8s.io/{name}-operator"
    leases = {" ".join(check): can_i(kube_cluster, check, as_user=operator) for check in (
        ("get", lease, "-n", ns), ("update", lease, "-n", ns),
        ("create", "leases.coordination.k8s.io", "-n", ns))}
    assert leases == dict.fromkeys(leases, "yes")
    other = {" ".join(check): can_i(kube_cluster, check, as_user=operator) for check in (
        ("get", "leases.coordination.k8s.io/kube-scheduler", "-n", ns),
        ("update", "leases.coordination.k8s.io/x", "-n", ns),
        ("delete", lease, "-n", ns), ("list", "leases.coordination.k8s.io", "-n", ns),
        ("create", "leases.coordination.k8s.io", "-n", "kube-system"),
        ("update", "leases.coordination.k8s.io/kube-controller-manager", "-n", "kube-system"))}
    assert other == dict.fromkeys(other, "no")
    nothing = [("get", "pods", "-n", ns), ("list", "shardprocesses.shards.dev", "--all-namespaces"),
               ("get", "secrets", "-n", ns), ("get", f"secrets/{name}-mongo", "-n", ns),
               ("create", "events", "-n", ns), ("list", "namespaces")]
    answers = {" ".join(check): can_i(kube_cluster, tuple(check), as_user=worker) for check in nothing}
    assert answers == dict.fromkeys(answers, "no")
    account = kube_cluster.kubectl_json("get", "serviceaccount", f"{name}-worker", "-n", ns)
    assert account["automountServiceAccountToken"] is False
    pool = kube_cluster.kubectl_json("get", "deployment", f"{name}-worker-default", "-n", ns)
    assert pool["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


# --- the plain manifests are the chart's ------------------------------------------------------

def test_deploy_manifests_are_rendered_from_the_chart(tmp_path: Path) -> None:
    result = subprocess.run(["make", "-s", "deploy-manifests", f"DEPLOY_MANIFESTS_DIR={tmp_path}"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    rendered = sorted(path.name for path in tmp_path.glob("*.yaml"))
    assert rendered == ["operator-rbac.yaml", "shards.yaml"]
    for name in rendered:
        assert (tmp_path / name).read_text() == (DEPLOY / name).read_text(), (
            f"deploy/{name} differs from the chart: run `make deploy-manifests` and commit it")
    docs = objects((DEPLOY / "shards.yaml").read_text())
    assert {doc["metadata"]["namespace"] for doc in docs} == {"shards-system"}
    assert set(by_kind(docs, "Deployment")) == {"shards-operator", "shards-worker-default"}


# --- the operator with the chart's ServiceAccount runs the example -----------------------------

def test_the_operator_with_the_charts_service_account_runs_the_example(
    kube_cluster: KubeCluster, kube_namespace: str, release: Release, mongo_db_uri: str, tmp_path: Path
) -> None:
    release.install({"mongo": {"uri": mongo_db_uri}, "workers": [SHEEP_POOL]})
    ns, name = release.namespace, release.fullname
    # The URI the chart's pods would get is the one in its Secret: the local processes use that.
    secret = kube_cluster.kubectl_json("get", "secret", f"{name}-mongo", "-n", ns)
    uri = base64.b64decode(secret["data"]["uri"]).decode()
    assert uri == mongo_db_uri
    operator_sa = f"system:serviceaccount:{ns}:{name}-operator"
    wait_until(lambda: can_i(kube_cluster, ("patch", "shardprocesses.shards.dev", "--subresource=status",
                                            "-n", kube_namespace), as_user=operator_sa) == "yes",
               what="the chart's ClusterRoleBinding to take effect")
    env = OperatorEnv(kube_cluster, kube_namespace, uri, tmp_path, service_account=(ns, f"{name}-operator"))
    try:
        env.start_workers(1)
        env.start_operator()
        env.apply(EXAMPLES / "process.yaml")
        status = env.wait_state("count-sheep", "Done")
        assert status["progress"]["percent"] == 100
        assert env.condition(status, "Complete")["status"] == "True"
        runs = env.shards.controller.history(kube_namespace, "count-sheep")
        assert [run.state.value for run in runs] == ["Done"]
        assert "Forbidden" not in env.operator_log()
    finally:
        env.close()


# --- monitoring: the Prometheus Operator's resources --------------------------------------------

MONITORED = {**MONGO, "workers": [SHEEP_POOL], "monitoring": {
    "enabled": True, "labels": {"release": "prometheus"}, "rules": {"enabled": True}}}


def test_monitoring_resources_render_only_where_their_api_exists(
    kube_cluster: KubeCluster, kube_namespace: str, monitoring_crds: None, tmp_path: Path
) -> None:
    """Off by default, and on a cluster without the Prometheus Operator nothing of it renders; with
    its API, a ServiceMonitor (operator), a PodMonitor (workers) and a PrometheusRule, accepted by
    the API server against the operator's own CRDs, whose alerts name only series Shards exports."""
    assert not _monitoring(objects(template(kube_cluster, tmp_path, MONGO).stdout))
    assert not _monitoring(objects(template(kube_cluster, tmp_path, MONITORED).stdout))  # no such API
    rendered = kube_cluster.helm("template", release_name(), str(CHART), "--namespace", kube_namespace,
                                 "-f", str(values_file(tmp_path, MONITORED)),
                                 "--api-versions", "monitoring.coreos.com/v1").stdout
    docs = _monitoring(objects(rendered))
    assert sorted(doc["kind"] for doc in docs) == ["PodMonitor", "PrometheusRule", "ServiceMonitor"]
    assert all(doc["metadata"]["labels"]["release"] == "prometheus" for doc in docs)
    result = kube_cluster.kubectl("apply", "--dry-run=server", "-n", kube_namespace, "-f", "-",
                                  input="\n---\n".join(yaml.safe_dump(doc) for doc in docs), check=False)
    assert result.returncode == 0, result.stderr
    [rule] = [doc for doc in docs if doc["kind"] == "PrometheusRule"]
    exprs = " ".join(str(r["expr"]) for group in rule["spec"]["groups"] for r in group["rules"])
    named = set(re.findall(r"\bshards_[a-z_]+", exprs))
    exported = metrics_reference.exported_series()
    assert named and named <= exported, named - exported
    alerts = rule["spec"]["groups"][0]["rules"]
    assert all(r["annotations"]["runbook_url"] == f"docs/alerts.md#{r['alert'].lower()}" for r in alerts)


def test_the_alerts_pass_promtool_checks_and_unit_tests(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    """The PrometheusRule's groups as a Prometheus rule file: `promtool check rules` accepts them, and
    `promtool test rules` fires each alert on the series that should fire it, and only then."""
    rendered = kube_cluster.helm("template", release_name(), str(CHART),
                                 "-f", str(values_file(tmp_path, MONITORED)),
                                 "--api-versions", "monitoring.coreos.com/v1").stdout
    [rule] = [doc for doc in _monitoring(objects(rendered)) if doc["kind"] == "PrometheusRule"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    promtool = str(promtool_build.ensure())
    checked = subprocess.run([promtool, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout, checked.stdout
    tested = subprocess.run([promtool, "test", "rules", ALERT_TESTS.name], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def _monitoring(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["apiVersion"].startswith("monitoring.coreos.com/")]
