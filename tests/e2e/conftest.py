"""Fixtures for end-to-end tests against a real local Kubernetes control plane.

``kube_cluster`` (session) reuses a cluster started by ``make cluster-up`` when one runs,
otherwise starts its own (etcd + kube-apiserver + kube-controller-manager on loopback) and
stops it when the session ends. ``kube_namespace`` gives each test a fresh namespace.
``kube_node`` (session) makes sure that cluster has a node, so Pods really run, with the
project's images loaded into it. Mark tests that use them with ``@pytest.mark.e2e``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.operator_env import OperatorEnv
from e2e.resources import (
    CRD_FILE,
    CRD_NAME,
    DEPLOY,
    OPERATOR,
    SHS_CRD_FILE,
    SHS_CRD_NAME,
    can_i,
    fresh_namespace,
)
from tooling.cluster import (
    KubeCluster,
    KubeNode,
    add_node,
    can_run_node,
    down,
    ensure_node_packages,
    ensure_tools,
    is_built,
    running,
    up,
    wait_for,
)

# Runs before every other test of the session: it needs the machine's only node slot free and
# compares the host before its own node cluster's up and after its down (see test_node.py).
HOST_SNAPSHOT_TEST = "test_node.py::test_node_down_leaves_the_host_as_it_found_it"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the pinned binaries before any e2e test runs, outside the per-test timeout.

    CI runs ``make tools`` first, so this is normally a no-op (the cache is reused).
    """
    if not is_built() and any(item.get_closest_marker("e2e") for item in session.items):
        ensure_tools()


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    first = [item for item in items if item.nodeid.endswith(HOST_SNAPSHOT_TEST)]
    if first:
        items[:] = first + [item for item in items if item not in first]


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
    with fresh_namespace(kube_cluster, f"e2e-{slug}-{uuid.uuid4().hex[:6]}") as name:
        yield name


def _applied_crd(kube_cluster: KubeCluster, path: Path, name: str, short_name: str) -> str:
    """A CRD, applied idempotently and left in place (the real one; others may use it), once it
    is Established and kubectl's discovery knows its short name."""
    kube_cluster.kubectl("apply", "-f", str(path))
    kube_cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=90s", timeout=120)

    def served() -> bool | None:
        return True if kube_cluster.kubectl("get", short_name, "-A", check=False).returncode == 0 else None

    wait_for(f"{name} to be served", served, timeout=60)
    return name


@pytest.fixture(scope="session")
def shp_crd(kube_cluster: KubeCluster) -> str:
    return _applied_crd(kube_cluster, CRD_FILE, CRD_NAME, "shp")


@pytest.fixture(scope="session")
def shs_crd(kube_cluster: KubeCluster) -> str:
    return _applied_crd(kube_cluster, SHS_CRD_FILE, SHS_CRD_NAME, "shs")


@pytest.fixture(scope="session")
def operator_rbac(kube_cluster: KubeCluster, shp_crd: str, shs_crd: str) -> str:
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


@pytest.fixture
def env(kube_cluster: KubeCluster, kube_namespace: str, operator_rbac: str, mongo_db_uri: str,
        tmp_path: Path) -> Iterator[OperatorEnv]:
    """The operator's tests' world (e2e/operator_env.py): their namespace, a database, workers and
    operators as local processes; all stopped afterwards."""
    operator_env = OperatorEnv(kube_cluster, kube_namespace, mongo_db_uri, tmp_path)
    try:
        yield operator_env
    finally:
        operator_env.close()


@pytest.fixture(scope="session")
def node_host() -> None:
    """This machine, ready to run a node: its Debian packages installed (tooling.programs' "node").

    Every test that brings a node up or looks at what a node leaves on the host takes this first,
    so no test depends on an earlier one having installed them. Skipped only where a node cannot
    run (not root, no cgroups, no /dev/kmsg, packages missing without apt-get).
    """
    reason = can_run_node()
    if reason is not None:
        pytest.skip(f"no node on this machine: {reason}")
    ensure_node_packages()


@pytest.fixture(scope="session")
def kube_node(node_host: None, kube_cluster: KubeCluster) -> KubeNode:
    """The session's cluster with a node (Pods run), the project's images loaded into it.

    Reuses the node of a ``make cluster-up NODE=1`` cluster; otherwise adds one to the session's
    cluster (``add_node``), which ``cluster-down`` (or the session's own ``down()``) removes with
    the rest. Images come from the images tooling's docker-archives (built if needed, cached);
    Pods name them ``shards-worker:<version>`` etc. with ``imagePullPolicy: Never``. Skipped only
    where a node cannot run (not root, no cgroups, no /dev/kmsg ...). Another cluster folder
    owning the machine's node is an error, not a skip.
    """
    from tooling.images import image_archives

    node = add_node(kube_cluster)
    for archive in image_archives().values():
        node.load_image(archive)
    return node
