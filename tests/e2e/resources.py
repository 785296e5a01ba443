"""What the e2e tests share: where the real manifests are, and who the operator is."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tooling.cluster import KubeCluster
from tooling.cluster._common import REPO_ROOT

CRD_FILE = REPO_ROOT / "crds" / "shardprocesses.shards.dev.yaml"
CRD_NAME = "shardprocesses.shards.dev"
SHS_CRD_FILE = REPO_ROOT / "crds" / "shardschedules.shards.dev.yaml"
SHS_CRD_NAME = "shardschedules.shards.dev"
DEPLOY = REPO_ROOT / "deploy"
EXAMPLES = REPO_ROOT / "examples" / "kubernetes"  # ShardProcess resources of examples/sheep.py
OPERATOR = "system:serviceaccount:shards-system:shards-operator"


def can_i(kube_cluster: KubeCluster, check: tuple[str, ...], as_user: str = OPERATOR) -> str:
    """`kubectl auth can-i` as the operator's ServiceAccount (or ``as_user``): "yes" or "no"."""
    result = kube_cluster.kubectl("auth", "can-i", *check, f"--as={as_user}", check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    assert result.returncode == (0 if answer == "yes" else 1)
    return answer


@contextlib.contextmanager
def fresh_namespace(cluster: KubeCluster, name: str) -> Iterator[str]:
    """Create a labelled namespace; delete it (without waiting) afterwards."""
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, "shards.dev/e2e=true")
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)
