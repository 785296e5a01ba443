"""The Kubernetes side of the mirror: status patches and Events through the official client."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from shards_operator.resource import Resource

log = logging.getLogger("shards.operator")

GROUP, VERSION, PLURAL, KIND = "shards.dev", "v1alpha1", "shardprocesses", "ShardProcess"
SCHEDULES, SCHEDULE_KIND = "shardschedules", "ShardSchedule"
COMPONENT = "shards-operator"
REQUEST_TIMEOUT = (5.0, 15.0)  # seconds to connect, to read: a patch never hangs the mirror


def load_credentials() -> None:
    """In a pod: its ServiceAccount; elsewhere: the kubeconfig ($KUBECONFIG or ~/.kube/config)."""
    try:
        config.load_incluster_config()
    except ConfigException:
        config.load_kube_config()


class KubePatcher:
    """Status patches and Events of one kind of resource (ShardProcess unless told)."""

    def __init__(self, plural: str = PLURAL, kind: str = KIND) -> None:
        self.plural, self.kind = plural, kind
        configuration = client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = 32  # the mirror's patch threads and up to 16 handler threads
        api = client.ApiClient(configuration)
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)

    def patch_status(self, resource: Resource, status: dict[str, Any]) -> None:
        try:
            self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, resource.namespace, self.plural, resource.name, {"status": status},
                _request_timeout=REQUEST_TIMEOUT,
            )
        except client.ApiException as error:
            if error.status != 404:  # a deleted resource has no status to keep
                raise

    def event(self, resource: Resource, kind: str, reason: str, message: str, key: str = "") -> None:
        """An Event with a `key` is named after the resource's uid and the key: a second post of
        it (a restarted operator announcing what the last one did) is refused, and skipped."""
        now = datetime.now(UTC)
        if key:
            digest = hashlib.sha256(f"{resource.uid}/{key}".encode()).hexdigest()[:20]
            metadata = client.V1ObjectMeta(name=f"{resource.name[:200].rstrip('.-')}.{digest}")
        else:
            metadata = client.V1ObjectMeta(generate_name=f"{resource.name[:200].rstrip('.-')}.")
        event = client.CoreV1Event(
            metadata=metadata,
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}", kind=self.kind, name=resource.name,
                namespace=resource.namespace, uid=resource.uid,
            ),
            reason=reason, message=message[:1024], type=kind, count=1,
            first_timestamp=now, last_timestamp=now,
            source=client.V1EventSource(component=COMPONENT), reporting_component=COMPONENT,
        )
        try:
            self._core.create_namespaced_event(resource.namespace, event, _request_timeout=REQUEST_TIMEOUT)
        except client.ApiException as error:
            if error.status != 409 or not key:  # 409: this Event was posted already
                raise
