"""The Kubernetes side of leader election: one coordination.k8s.io/v1 Lease through the official
client (the election's rules are in shards_operator.election)."""

from __future__ import annotations

import os
from collections.abc import Callable

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from shards_operator.election import LeaseConflict, LeaseError, LeaseRecord
from shards_operator.settings import IN_CLUSTER_NAMESPACE


def default_lease_namespace() -> str:
    """$POD_NAMESPACE (the downward API), the pod's own namespace (its ServiceAccount's), else the
    kubeconfig context's, else "default"."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return IN_CLUSTER_NAMESPACE.read_text().strip()
    except OSError:
        pass
    try:
        _, current = config.list_kube_config_contexts()
    except (ConfigException, OSError):
        return "default"
    return str((current or {}).get("context", {}).get("namespace") or "default")


class KubeLeases:
    """One Lease, `name` in `namespace`; every write is guarded by the resourceVersion it carries."""

    def __init__(self, name: str, namespace: str) -> None:
        self.name, self.namespace = name, namespace
        self._api = client.CoordinationV1Api(client.ApiClient(client.Configuration.get_default_copy()))

    def get(self, timeout: float) -> LeaseRecord | None:
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace, _request_timeout=timeout)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise self._error("read", error) from error
        except (HTTPError, OSError) as error:
            raise LeaseError(f"cannot read lease {self.namespace}/{self.name}: {error}") from error
        return record_of(lease)

    def create(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                              spec=spec_of(record))
        return self._write("create", lambda: self._api.create_namespaced_lease(
            self.namespace, body, _request_timeout=timeout))

    def update(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        body = client.V1Lease(metadata=client.V1ObjectMeta(
            name=self.name, namespace=self.namespace, resource_version=record.version), spec=spec_of(record))
        return self._write("update", lambda: self._api.replace_namespaced_lease(
            self.name, self.namespace, body, _request_timeout=timeout))

    def _write(self, what: str, call: Callable[[], client.V1Lease]) -> LeaseRecord:
        try:
            return record_of(call())
        except client.ApiException as error:
            if error.status == 409:  # AlreadyExists on create, Conflict on a stale resourceVersion
                raise LeaseConflict(f"lease {self.namespace}/{self.name} changed meanwhile") from error
            raise self._error(what, error) from error
        except (HTTPError, OSError) as error:
            raise LeaseError(f"cannot {what} lease {self.namespace}/{self.name}: {error}") from error

    def _error(self, what: str, error: client.ApiException) -> LeaseError:
        return LeaseError(f"cannot {what} lease {self.namespace}/{self.name}: {error.status} {error.reason}")


def spec_of(record: LeaseRecord) -> client.V1LeaseSpec:
    return client.V1LeaseSpec(holder_identity=record.holder or None,
                              lease_duration_seconds=record.duration_seconds,
                              acquire_time=record.acquire_time, renew_time=record.renew_time,
                              lease_transitions=record.transitions)


def record_of(lease: client.V1Lease) -> LeaseRecord:
    spec = lease.spec or client.V1LeaseSpec()
    return LeaseRecord(holder=spec.holder_identity or "", duration_seconds=spec.lease_duration_seconds or 0,
                       acquire_time=spec.acquire_time, renew_time=spec.renew_time,
                       transitions=spec.lease_transitions or 0,
                       version=(lease.metadata.resource_version if lease.metadata else None) or "")
