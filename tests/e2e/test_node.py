"""Pods really run on the local cluster's node, and the node leaves the host as it found it.

The host test brings up its own cluster with a node (its own SHARDS_CLUSTER_DIR), runs Pods
that make the node touch everything it touches (a Service, a hostPort, volumes), takes it down,
and compares a snapshot of the host from before and after. conftest.py runs it first in the
session: one node per machine, so it needs the slot free. Do not run it in parallel with itself.

The other tests use ``kube_node`` (the session's cluster with a node and the project's images).
"""

from __future__ import annotations

import json
import shutil
import textwrap
import time
from pathlib import Path

import pytest
from e2e.node_env import host_snapshot, pod_manifest, wait_pod
from tooling import programs
from tooling.cluster import ClusterError, KubeCluster, KubeNode, down, up, wait_for
from tooling.cluster import node as node_mod
from tooling.images import project_version

# First use on a machine installs Debian packages and may build the images: allow for it.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

PAUSE = "localhost/shards-pause:1"


def _worker() -> str:
    return f"shards-worker:{project_version()}"


def _operator() -> str:
    return f"shards-operator:{project_version()}"


def _apply(cluster: KubeCluster, namespace: str, obj: dict[str, object]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))


def test_host_snapshot_without_the_node_tools_shows_no_rules(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine that never had a node has no iptables or nft: its snapshot has empty rule sets."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ip = shutil.which("ip")
    assert ip is not None
    (bin_dir / "ip").symlink_to(ip)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(programs, "_search_path", lambda: str(bin_dir))
    snapshot = host_snapshot([str(tmp_path)])
    assert snapshot["rules"] == {"iptables-save": [], "ip6tables-save": [], "nft": []}
    assert snapshot["links"], "ip -o link still ran"


def test_node_down_leaves_the_host_as_it_found_it(node_host: None, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    other = node_mod.owner()
    if other is not None:
        pytest.skip(f"the machine's one node runs for {other} (make cluster-up NODE=1?); stop it to run this")
    cluster_dir = tmp_path / "cluster"
    roots = [str(cluster_dir), str(node_mod.RUN_DIR)]
    before = host_snapshot(roots)
    monkeypatch.setenv("SHARDS_CLUSTER_DIR", str(cluster_dir))
    try:
        started = time.monotonic()
        cluster = up(with_node=True)
        print(f"cluster with a Ready node in {time.monotonic() - started:.1f}s")
        ns = "host-test"
        cluster.kubectl("create", "namespace", ns)
        wait_for("default ServiceAccount", lambda: _has_sa(cluster, ns), timeout=60)
        # hostPort (portmap's CNI-* chains), a Service (KUBE-SVC-* chains), an emptyDir and the
        # ServiceAccount token (mounts under the kubelet's root), a container that ignores SIGTERM.
        pod = pod_manifest("busy", PAUSE, ["/pause"], labels={"app": "busy"})
        spec = pod["spec"]
        assert isinstance(spec, dict)
        spec["containers"][0]["ports"] = [{"containerPort": 8080, "hostPort": 18080}]
        spec["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
        _apply(cluster, ns, pod)
        cluster.kubectl("expose", "pod", "busy", "-n", ns, "--port=80", "--target-port=8080")
        wait_pod(cluster, ns, "busy", ("Running",))
        during = host_snapshot(roots)
        assert during["links"] != before["links"], "the node added no links?"
        assert during["mounts"], "no mounts under the node's private roots?"
        assert during["processes"], "no node processes?"
        assert during["cgroups"] != before["cgroups"], "no kubepods cgroups?"
    finally:
        down()
    after = host_snapshot(roots)
    for key in before:
        assert after[key] == before[key], f"{key} differs after down"


def _has_sa(cluster: KubeCluster, ns: str) -> bool | None:
    proc = cluster.kubectl("get", "serviceaccount", "default", "-n", ns, check=False)
    return True if proc.returncode == 0 else None


def test_a_second_node_fails_fast_naming_the_first(
    kube_node: KubeNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHARDS_CLUSTER_DIR", str(tmp_path / "second"))
    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"a node already runs for the cluster in .*cluster-down"):
        up(with_node=True)
    assert time.monotonic() - started < 5
    assert not (tmp_path / "second" / "state.json").exists()


def test_node_is_ready_with_its_address_and_images(kube_cluster: KubeCluster, kube_node: KubeNode) -> None:
    node = kube_cluster.kubectl_json("get", "node", kube_node.name)
    status = node["status"]
    assert isinstance(status, dict)
    assert {"type": "InternalIP", "address": kube_node.ip} in status["addresses"]
    ready = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    images = kube_node.images()
    for name in (PAUSE, f"docker.io/library/{_worker()}", f"docker.io/library/{_operator()}"):
        assert name in images


def test_pod_from_the_worker_image_succeeds(
    kube_cluster: KubeCluster, kube_node: KubeNode, kube_namespace: str
) -> None:
    started = time.monotonic()
    _apply(
        kube_cluster, kube_namespace, pod_manifest("help", _worker(), ["/opt/shards/bin/shards", "--help"])
    )
    pod = wait_pod(kube_cluster, kube_namespace, "help", ("Succeeded",))
    print(f"pod Succeeded in {time.monotonic() - started:.1f}s")
    status = pod["status"]
    assert isinstance(status, dict)
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0
    assert status["podIP"].startswith(kube_node.pod_cidr.rsplit(".", 1)[0])
    logs = kube_cluster.kubectl("logs", "help", "-n", kube_namespace).stdout
    assert "usage" in logs.lower()


def test_deployment_scales_from_one_to_two(
    kube_cluster: KubeCluster, kube_node: KubeNode, kube_namespace: str
) -> None:
    ns = kube_namespace
    kube_cluster.kubectl("create", "deployment", "pauses", f"--image={PAUSE}", "--replicas=1", "-n", ns)
    kube_cluster.kubectl("rollout", "status", "deployment/pauses", "-n", ns, "--timeout=90s", timeout=120)
    started = time.monotonic()
    kube_cluster.kubectl("scale", "deployment/pauses", "--replicas=2", "-n", ns)
    kube_cluster.kubectl("rollout", "status", "deployment/pauses", "-n", ns, "--timeout=90s", timeout=120)
    print(f"scaled 1 -> 2 in {time.monotonic() - started:.1f}s")
    deployment = kube_cluster.kubectl_json("get", "deployment", "pauses", "-n", ns)
    status = deployment["status"]
    assert isinstance(status, dict)
    assert status["availableReplicas"] == 2
    pods = kube_cluster.kubectl_json("get", "pods", "-n", ns, "-l", "app=pauses")["items"]
    assert isinstance(pods, list)
    assert {p["spec"]["nodeName"] for p in pods} == {kube_node.name}
    assert len({p["status"]["podIP"] for p in pods}) == 2


def test_kubectl_logs_exec_and_port_forward(
    kube_cluster: KubeCluster, kube_node: KubeNode, kube_namespace: str
) -> None:
    ns = kube_namespace
    script = textwrap.dedent(
        """
        import http.server, sys
        print("serving", flush=True)
        http.server.HTTPServer(("", 8000), http.server.SimpleHTTPRequestHandler).serve_forever()
        """
    )
    _apply(
        kube_cluster,
        ns,
        pod_manifest("web", _worker(), ["/opt/shards/bin/python", "-c", script], restart="Always"),
    )
    wait_pod(kube_cluster, ns, "web", ("Running",))
    wait_for(
        "the pod's first log line",
        lambda: (
            True if "serving" in kube_cluster.kubectl("logs", "web", "-n", ns, check=False).stdout else None
        ),
        timeout=30,
    )
    out = kube_cluster.kubectl(
        "exec", "web", "-n", ns, "--", "/opt/shards/bin/python", "-c", "import os; print(os.getuid())"
    )
    assert out.stdout.strip() == "10001"
    probe = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/').status)"
    out = kube_cluster.kubectl("exec", "web", "-n", ns, "--", "/opt/shards/bin/python", "-c", probe)
    assert out.stdout.strip() == "200"
    _port_forward_gets_200(kube_cluster, ns)


def _port_forward_gets_200(cluster: KubeCluster, ns: str) -> None:
    import socket
    import subprocess
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(cluster.bin_dir / "kubectl"), "port-forward", "-n", ns, "pod/web", f"{port}:8000"],
        env=cluster.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def get() -> int | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                return int(resp.status)

        assert wait_for("port-forward", get, timeout=30) == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_pod_reaches_the_api_server_with_in_cluster_config(
    kube_cluster: KubeCluster, kube_node: KubeNode, kube_namespace: str
) -> None:
    ns = kube_namespace
    wait_for("default ServiceAccount", lambda: _has_sa(kube_cluster, ns), timeout=60)
    script = textwrap.dedent(
        """
        import json, os, kubernetes
        kubernetes.config.load_incluster_config()
        review = kubernetes.client.AuthenticationV1Api().create_self_subject_review(
            kubernetes.client.V1SelfSubjectReview())
        try:
            kubernetes.client.CoreV1Api().list_namespace()
            namespaces = "allowed"
        except kubernetes.client.ApiException as exc:
            namespaces = exc.status
        print(json.dumps({"host": os.environ["KUBERNETES_SERVICE_HOST"],
                          "port": os.environ["KUBERNETES_SERVICE_PORT"],
                          "user": review.status.user_info.username, "namespaces": namespaces}))
        """
    )
    pod = pod_manifest("incluster", _operator(), ["/opt/shards/bin/python", "-c", script])
    spec = pod["spec"]
    assert isinstance(spec, dict)
    spec["automountServiceAccountToken"] = True
    _apply(kube_cluster, ns, pod)
    wait_pod(kube_cluster, ns, "incluster", ("Succeeded",), timeout=120)
    result = json.loads(kube_cluster.kubectl("logs", "incluster", "-n", ns).stdout.strip().splitlines()[-1])
    assert result == {
        "host": "10.0.0.1",  # the kubernetes Service's ClusterIP, through kube-proxy
        "port": "443",
        "user": f"system:serviceaccount:{ns}:default",
        "namespaces": 403,
    }
