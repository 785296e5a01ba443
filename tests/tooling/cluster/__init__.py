"""Local Kubernetes control plane for tests and the demo (etcd + kube-apiserver + KCM).

CLI: ``PYTHONPATH=tests python -m tooling.cluster {tools,up,down,status}``; see README.md.
"""

from ._common import ClusterError, state_dir, tools_cache_root, wait_for
from .client import KubeCluster, KubectlError
from .control_plane import down, running, status, up
from .tools import bin_dir, ensure_tools, is_built, pins

__all__ = [
    "ClusterError",
    "KubeCluster",
    "KubectlError",
    "bin_dir",
    "down",
    "ensure_tools",
    "is_built",
    "pins",
    "running",
    "state_dir",
    "status",
    "tools_cache_root",
    "up",
    "wait_for",
]
