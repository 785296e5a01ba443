"""The local control plane behaves like a real cluster: CRDs, validation, RBAC, helm, GC."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from tooling.cluster import KubeCluster, KubectlError, procs, wait_for
from tooling.cluster._common import REPO_ROOT

pytestmark = pytest.mark.e2e

GROUP = "harness.e2e.shards.dev"
CRD_NAME = f"widgets.{GROUP}"
CRD = textwrap.dedent(
    f"""
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: {CRD_NAME}
    spec:
      group: {GROUP}
      scope: Namespaced
      names: {{plural: widgets, singular: widget, kind: Widget, shortNames: [wdg]}}
      versions:
      - name: v1
        served: true
        storage: true
        subresources: {{status: {{}}}}
        additionalPrinterColumns:
        - {{name: Replicas, type: integer, jsonPath: .spec.replicas}}
        - {{name: Phase, type: string, jsonPath: .status.phase}}
        - {{name: Age, type: date, jsonPath: .metadata.creationTimestamp}}
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                required: [replicas]
                x-kubernetes-validations:
                - rule: "!has(self.minReplicas) || self.minReplicas <= self.replicas"
                  message: minReplicas must not exceed replicas
                properties:
                  replicas: {{type: integer, minimum: 0}}
                  minReplicas: {{type: integer, minimum: 0}}
              status:
                type: object
                properties:
                  phase: {{type: string}}
    """
)


def widget(name: str, replicas: object, min_replicas: object | None = None) -> str:
    spec: dict[str, object] = {"replicas": replicas}
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    return json.dumps(
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


@pytest.fixture(scope="module")
def widget_crd(kube_cluster: KubeCluster) -> Iterator[str]:
    kube_cluster.kubectl("apply", "-f", "-", input=CRD)
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=90s", timeout=120
    )
    yield CRD_NAME
    kube_cluster.kubectl("delete", "crd", CRD_NAME, "--timeout=90s", check=False, timeout=120)


def test_apiserver_is_ready_on_loopback_with_tls(kube_cluster: KubeCluster) -> None:
    assert kube_cluster.server.startswith("https://127.0.0.1:")
    assert kube_cluster.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    assert kube_cluster.kubeconfig.is_file()
    version = json.loads(kube_cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.")


def test_namespace_fixture_gives_an_active_namespace(kube_cluster: KubeCluster, kube_namespace: str) -> None:
    ns = kube_cluster.kubectl_json("get", "namespace", kube_namespace)
    assert ns["status"] == {"phase": "Active"}


def test_custom_resource_printer_columns_and_status(
    kube_cluster: KubeCluster, kube_namespace: str, widget_crd: str
) -> None:
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", input=widget("alpha", 3))
    kube_cluster.kubectl(
        "patch", "widget", "alpha", "-n", kube_namespace, "--subresource=status",
        "--type=merge", "-p", '{"status": {"phase": "Running"}}',
    )  # fmt: skip
    table = kube_cluster.kubectl("get", "widgets", "-n", kube_namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "REPLICAS", "PHASE", "AGE"]
    assert table[1].split()[:3] == ["alpha", "3", "Running"]
    # The status subresource ignores spec changes and the main resource ignores status.
    kube_cluster.kubectl(
        "patch", "wdg", "alpha", "-n", kube_namespace, "--type=merge",
        "-p", '{"spec": {"replicas": 5}, "status": {"phase": "Ignored"}}',
    )  # fmt: skip
    obj = kube_cluster.kubectl_json("get", "widget", "alpha", "-n", kube_namespace)
    assert obj["spec"] == {"replicas": 5}
    assert obj["status"] == {"phase": "Running"}


def test_schema_violation_is_rejected_by_the_apiserver(
    kube_cluster: KubeCluster, kube_namespace: str, widget_crd: str
) -> None:
    with pytest.raises(KubectlError) as err:
        kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", input=widget("bad-type", "three"))
    assert 'spec.replicas: Invalid value: "string"' in err.value.stderr
    assert "must be of type integer" in err.value.stderr
    with pytest.raises(KubectlError) as err:
        kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", input=widget("neg", -1))
    assert "spec.replicas" in err.value.stderr
    assert "should be greater than or equal to 0" in err.value.stderr
    listed = kube_cluster.kubectl_json("get", "widgets", "-n", kube_namespace)
    assert listed["items"] == []


def test_cel_validation_is_rejected_with_its_message(
    kube_cluster: KubeCluster, kube_namespace: str, widget_crd: str
) -> None:
    with pytest.raises(KubectlError) as err:
        kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", input=widget("cel", 1, min_replicas=2))
    assert "minReplicas must not exceed replicas" in err.value.stderr
    assert "is invalid" in err.value.stderr
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", input=widget("cel", 2, min_replicas=2))


def test_finalizer_holds_deletion_until_removed(
    kube_cluster: KubeCluster, kube_namespace: str, widget_crd: str
) -> None:
    ns = ("-n", kube_namespace)
    kube_cluster.kubectl("apply", *ns, "-f", "-", input=widget("held", 1))
    kube_cluster.kubectl(
        "patch", "widget", "held", *ns, "--type=merge",
        "-p", '{"metadata": {"finalizers": ["harness.e2e.shards.dev/hold"]}}',
    )  # fmt: skip
    kube_cluster.kubectl("delete", "widget", "held", *ns, "--wait=false")
    obj = kube_cluster.kubectl_json("get", "widget", "held", *ns)
    metadata = obj["metadata"]
    assert isinstance(metadata, dict)
    assert "deletionTimestamp" in metadata
    kube_cluster.kubectl(
        "patch", "widget", "held", *ns, "--type=json",
        "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]',
    )  # fmt: skip
    kube_cluster.kubectl("wait", "--for=delete", "widget/held", *ns, "--timeout=60s", timeout=90)


def test_watch_sees_new_objects(kube_cluster: KubeCluster, kube_namespace: str, widget_crd: str) -> None:
    argv = [str(kube_cluster.bin_dir / "kubectl"), "get", "widgets", "-n", kube_namespace,
            "--watch", "-o", "name"]  # fmt: skip
    watcher = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=kube_cluster.env()
    )
    lines: queue.Queue[str] = queue.Queue()
    assert watcher.stdout is not None
    threading.Thread(target=_pump, args=(watcher.stdout, lines), daemon=True).start()
    try:
        kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", input=widget("seen", 1))
        seen = wait_for("watch event", lambda: _drain_until(lines, "seen"), timeout=60)
        assert seen.endswith("/seen")
    finally:
        watcher.kill()
        watcher.wait(timeout=10)


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line.strip())


def _drain_until(lines: queue.Queue[str], suffix: str) -> str | None:
    try:
        line = lines.get(timeout=1)
    except queue.Empty:
        return None
    return line if line.endswith(f"/{suffix}") else None


def test_serviceaccount_token_needs_a_rolebinding(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    ns = ("-n", kube_namespace)
    kube_cluster.kubectl("create", "serviceaccount", "robot", *ns)
    token = kube_cluster.kubectl("create", "token", "robot", *ns, "--duration=10m").stdout.strip()
    as_robot = kube_cluster.token_kubeconfig(token, tmp_path / "robot.kubeconfig")

    who = kube_cluster.kubectl("auth", "whoami", "-o", "json", kubeconfig=as_robot).stdout
    username = f"system:serviceaccount:{kube_namespace}:robot"
    assert json.loads(who)["status"]["userInfo"]["username"] == username

    denied = kube_cluster.kubectl("get", "configmaps", *ns, kubeconfig=as_robot, check=False)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr
    assert username in denied.stderr
    can_i = kube_cluster.kubectl("auth", "can-i", "list", "configmaps", *ns, kubeconfig=as_robot, check=False)
    assert can_i.stdout.strip() == "no"

    kube_cluster.kubectl("create", "role", "cm-reader", *ns, "--verb=get,list",
                         "--resource=configmaps")  # fmt: skip
    kube_cluster.kubectl("create", "rolebinding", "robot-cm-reader", *ns, "--role=cm-reader",
                         f"--serviceaccount={kube_namespace}:robot")  # fmt: skip

    def allowed() -> str | None:
        result = kube_cluster.kubectl("get", "configmaps", *ns, "-o", "name",
                                      kubeconfig=as_robot, check=False)  # fmt: skip
        return result.stdout if result.returncode == 0 else None

    wait_for("RoleBinding to take effect", allowed, timeout=60)
    can_i = kube_cluster.kubectl("auth", "can-i", "list", "configmaps", *ns, kubeconfig=as_robot)
    assert can_i.stdout.strip() == "yes"
    still_denied = kube_cluster.kubectl("get", "secrets", *ns, kubeconfig=as_robot, check=False)
    assert "Forbidden" in still_denied.stderr


def test_helm_installs_and_uninstalls_a_chart(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    chart = tmp_path / "hello"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: hello\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("greeting: hi\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )
    kube_cluster.helm("install", "demo", str(chart), "-n", kube_namespace,
                      "--set", "greeting=hello", "--wait", "--timeout=2m")  # fmt: skip
    cm = kube_cluster.kubectl_json("get", "configmap", "demo-greeting", "-n", kube_namespace)
    assert cm["data"] == {"greeting": "hello"}
    releases = json.loads(kube_cluster.helm("list", "-n", kube_namespace, "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in releases] == [("demo", "deployed")]
    kube_cluster.helm("uninstall", "demo", "-n", kube_namespace, "--wait", "--timeout=2m")
    gone = kube_cluster.kubectl("get", "configmap", "demo-greeting", "-n", kube_namespace,
                                check=False)  # fmt: skip
    assert "NotFound" in gone.stderr


def test_garbage_collector_deletes_dependents(kube_cluster: KubeCluster, kube_namespace: str) -> None:
    if not kube_cluster.controller_manager:
        pytest.skip("cluster runs without kube-controller-manager")
    ns = ("-n", kube_namespace)
    kube_cluster.kubectl("create", "configmap", "owner", *ns)
    owner_uid = kube_cluster.kubectl(
        "get", "configmap", "owner", *ns, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}],
        },
    }
    kube_cluster.kubectl("apply", *ns, "-f", "-", input=json.dumps(dependent))
    kube_cluster.kubectl("delete", "configmap", "owner", *ns)
    kube_cluster.kubectl("wait", "--for=delete", "configmap/dependent", *ns, "--timeout=90s", timeout=120)


def test_cli_status_and_a_second_up_reuse_the_running_cluster(kube_cluster: KubeCluster) -> None:
    cli = [sys.executable, "-m", "tooling.cluster"]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "tests"))
    status = subprocess.run([*cli, "status"], capture_output=True, text=True, env=env, timeout=60, check=True)
    info = json.loads(status.stdout)
    assert info["running"] is True
    assert info["server"] == kube_cluster.server
    pids = {name: proc["pid"] for name, proc in info["processes"].items()}
    assert set(pids) >= {"etcd", "kube-apiserver"}
    again = subprocess.run([*cli, "up"], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert "already running" in again.stderr
    after = json.loads(
        subprocess.run(
            [*cli, "status"], capture_output=True, text=True, env=env, timeout=60, check=True
        ).stdout
    )
    assert {name: proc["pid"] for name, proc in after["processes"].items()} == pids


def test_stop_signals_only_the_recorded_process(tmp_path: Path) -> None:
    sleeper = procs.start("sleeper", ["sleep", "120"], tmp_path / "sleeper.log")
    assert procs.is_alive(sleeper)
    # Same pid, different start time: a recycled pid must never be signalled.
    impostor = dataclasses.replace(sleeper, start_ticks=sleeper.start_ticks + 1)
    assert not procs.is_alive(impostor)
    procs.stop(impostor)
    assert procs.is_alive(sleeper)
    procs.stop(sleeper)
    assert not procs.is_alive(sleeper)
    assert procs.exit_reason(sleeper) is not None
