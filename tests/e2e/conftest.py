"""Fixtures for end-to-end tests against a real local Kubernetes control plane.

``kube_cluster`` (session) reuses a cluster started by ``make cluster-up`` when one runs,
otherwise starts its own (etcd + kube-apiserver + kube-controller-manager on loopback) and
stops it when the session ends. ``kube_namespace`` gives each test a fresh namespace.
Mark tests that use them with ``@pytest.mark.e2e``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from e2e.resources import CRD_FILE, CRD_NAME, DEPLOY, OPERATOR, can_i
from tooling.cluster import KubeCluster, down, ensure_tools, is_built, running, up, wait_for


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the pinned binaries before any e2e test runs, outside the per-test timeout.

    CI runs ``make tools`` first, so this is normally a no-op (the cache is reused).
    """
    if not is_built() and any(item.get_closest_marker("e2e") for item in session.items):
        ensure_tools()


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    existing = running()
    if existing is not None:
        yield existing  # started by `make cluster-up`: leave it running
        return
    cluster = up()
    try:
        yield cluster
    finally:
        down()


@pytest.fixture
def kube_namespace(kube_cluster: KubeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace named after the test; deleted (without waiting) afterwards."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    name = f"e2e-{slug}-{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("create", "namespace", name)
    kube_cluster.kubectl("label", "namespace", name, "shards.dev/e2e=true")
    try:
        yield name
    finally:
        kube_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="session")
def shp_crd(kube_cluster: KubeCluster) -> str:
    """The CRD, applied idempotently and left in place (it is the real one; others may use it)."""
    kube_cluster.kubectl("apply", "-f", str(CRD_FILE))
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=90s", timeout=120
    )

    def served() -> bool | None:  # Established, and kubectl's discovery knows the short name
        return True if kube_cluster.kubectl("get", "shp", "-A", check=False).returncode == 0 else None

    wait_for("shardprocesses to be served", served, timeout=60)
    return CRD_NAME


@pytest.fixture(scope="session")
def operator_rbac(kube_cluster: KubeCluster, shp_crd: str) -> str:
    """deploy/namespace.yaml and deploy/operator-rbac.yaml, applied (and left: they are the real ones)."""
    out = kube_cluster.kubectl(
        "apply", "-f", str(DEPLOY / "namespace.yaml"), "-f", str(DEPLOY / "operator-rbac.yaml")
    ).stdout
    for kind in ("namespace/shards-system", "serviceaccount/shards-operator",
                 "clusterrole.rbac.authorization.k8s.io/shards-operator",
                 "clusterrolebinding.rbac.authorization.k8s.io/shards-operator"):  # fmt: skip
        assert kind in out

    def effective() -> bool | None:
        probe = can_i(kube_cluster, ("watch", "shardprocesses.shards.dev", "--all-namespaces"))
        return True if probe == "yes" else None

    wait_for("the operator's ClusterRoleBinding to take effect", effective, timeout=60)
    return OPERATOR

