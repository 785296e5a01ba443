"""The operator's settings (flags and environment of `shards operator`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Where a pod finds its own namespace (its ServiceAccount's).
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class OperatorSettings:
    mongo_uri: str | None = None  # default: $SHARDS_MONGO_URI
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    grants: dict[str, set[str]] = field(default_factory=dict)  # namespace -> other scopes allowed
    status_interval: float = 1.0  # at most one status patch per resource per interval
    delete_timeout: float = 30.0  # how long a delete waits for the run to stop
    liveness: str = "http://127.0.0.1:8080/healthz"
    metrics_port: int = 0
    metrics_address: str = "127.0.0.1"
    # Run logs for kubectl users (log_service.py), decided by Kubernetes RBAC; 0: not served.
    logs_port: int = 0
    logs_address: str = "127.0.0.1"
    logs_tls_cert: str = ""  # PEM files: TLS on the logs port (the tokens it receives are users')
    logs_tls_key: str = ""
    # Leader election on a Lease: only the replica holding it runs kopf and the status mirror.
    leader_election: bool = False
    lease_name: str = "shards-operator"
    lease_namespace: str = ""  # "": the pod's namespace, else the kubeconfig context's
    identity: str = ""  # the Lease's holderIdentity: "<pod or host>_<random>" when empty


def leader_election_default(env: Mapping[str, str], in_cluster: Path = IN_CLUSTER_NAMESPACE) -> bool:
    """On in a pod (POD_NAMESPACE from the downward API, or a ServiceAccount's namespace file):
    several replicas are then safe. Off for a local run, which acts as the only operator."""
    return bool(env.get("POD_NAMESPACE")) or in_cluster.exists()
