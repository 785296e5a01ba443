"""What the e2e tests share: where the real manifests are, who the operator is, and people
with a kubeconfig of their own."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


READ = "get,list,watch"


def kube_user(cluster: KubeCluster, namespace: str, name: str, workdir: Path, *, verbs: str = "") -> Path:
    """A ServiceAccount of `namespace` as a person with a kubeconfig (a bearer token, nothing
    else) who may do `verbs` (e.g. READ) to ShardProcesses there, as a team's Role would let
    them; without verbs, nothing of their own."""
    cluster.kubectl("create", "serviceaccount", name, "-n", namespace)
    if verbs:
        cluster.kubectl("create", "role", f"{name}-shp", "-n", namespace, f"--verb={verbs}",
                        "--resource=shardprocesses.shards.dev")
        cluster.kubectl("create", "rolebinding", f"{name}-shp", "-n", namespace, f"--role={name}-shp",
                        f"--serviceaccount={namespace}:{name}")
    token = cluster.kubectl("create", "token", name, "-n", namespace, "--duration=1h").stdout.strip()
    return cluster.token_kubeconfig(token, workdir / f"{name}.kubeconfig", user=name)


def kubectl_shards(cluster: KubeCluster, kubeconfig: Path, *args: str) -> subprocess.Popen[str]:
    """`kubectl shards ARGS` as the user of `kubeconfig`: kubectl finds kubectl-shards on PATH
    (this interpreter's bin folder, where the package installed it)."""
    path = os.pathsep.join((str(cluster.bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]))
    return subprocess.Popen([str(cluster.bin_dir / "kubectl"), "shards", *args],
                            env={**cluster.env(), "KUBECONFIG": str(kubeconfig), "PATH": path},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
