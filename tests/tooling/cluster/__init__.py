"""Local Kubernetes control plane for tests and the demo (etcd + kube-apiserver + KCM),
optionally with one node (containerd + kubelet + kube-scheduler + kube-proxy) so Pods run.

CLI: ``PYTHONPATH=tests python -m tooling.cluster {tools,up [--node],down,status}``; see README.md.
"""

from ._common import ClusterError, state_dir, tools_cache_root, wait_for
from .client import KubeCluster, KubectlError
from .control_plane import add_node, down, restart, running, running_node, status, up
from .node import KubeNode, can_run_node
from .node import ensure_packages as ensure_node_packages
from .tools import bin_dir, ensure_tools, is_built, pins

__all__ = [
    "ClusterError",
    "KubeCluster",
    "KubeNode",
    "KubectlError",
    "add_node",
    "bin_dir",
    "can_run_node",
    "down",
    "ensure_node_packages",
    "ensure_tools",
    "is_built",
    "pins",
    "restart",
    "running",
    "running_node",
    "state_dir",
    "status",
    "tools_cache_root",
    "up",
    "wait_for",
]
