"""Stop and rerun: patches of a ShardProcess's spec with the user's own credentials, so their
RBAC applies exactly as to `kubectl patch` (patch on shardprocesses in that namespace)."""

from __future__ import annotations

import json
from typing import Any, cast

from kubernetes import client
from shards.errors import ShardsError

from shards_kubectl.cluster import UserCluster

GROUP, VERSION, PLURAL = "shards.dev", "v1alpha1", "shardprocesses"
TIMEOUT = (10.0, 30.0)  # seconds to connect, to read


def stop(cluster: UserCluster, namespace: str, name: str, *, force: bool) -> None:
    """spec.stop (and spec.forceStop): the operator stops the current run, and launches no other
    while it is set."""
    _patch(cluster, namespace, name, {"spec": {"stop": True, **({"forceStop": True} if force else {})}})


def rerun(cluster: UserCluster, namespace: str, name: str) -> int:
    """spec.runs one higher, and stop cleared: the operator launches the next run once the
    current one has ended. Conditional on the resourceVersion read, so that two reruns at once
    ask for two runs, not one. Returns the run number asked for."""
    current = _get(cluster, namespace, name)
    runs = int((current.get("spec") or {}).get("runs") or 1) + 1
    _patch(cluster, namespace, name, {
        "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
        "spec": {"runs": runs, "stop": False, "forceStop": False},
    })
    return runs


def _api(cluster: UserCluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api)


def _get(cluster: UserCluster, namespace: str, name: str) -> dict[str, Any]:
    try:
        return cast("dict[str, Any]", _api(cluster).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=TIMEOUT))
    except client.ApiException as error:
        raise ShardsError(said(error)) from None


def _patch(cluster: UserCluster, namespace: str, name: str, patch: dict[str, Any]) -> None:
    try:
        _api(cluster).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch,
                                                     _request_timeout=TIMEOUT)
    except client.ApiException as error:
        raise ShardsError(said(error)) from None


def said(error: client.ApiException) -> str:
    """The API server's own message (`shardprocesses.shards.dev "x" is forbidden: ...`)."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        return f"{error.status} {error.reason}"
