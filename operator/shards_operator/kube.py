"""The Kubernetes side of the mirror: status patches and Events through the official client."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from shards_operator.resource import Resource

log = logging.getLogger("shards.operator")

GROUP, VERSION, PLURAL, KIND = "shards.dev", "v1alpha1", "shardprocesses", "ShardProcess"
COMPONENT = "shards-operator"


def load_credentials() -> None:
    """In a pod: its ServiceAccount; elsewhere: the kubeconfig ($KUBECONFIG or ~/.kube/config)."""
    try:
        config.load_incluster_config()
    except ConfigException:
        config.load_kube_config()


class KubePatcher:
    def __init__(self) -> None:
        configuration = client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = 32  # the mirror and up to 16 handler threads
        api = client.ApiClient(configuration)
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)

    def patch_status(self, resource: Resource, status: dict[str, Any]) -> bool:
        """Patch the status; False when the resource is gone (a deleted resource has no status)."""
        try:
            self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, resource.namespace, PLURAL, resource.name, {"status": status}
            )
        except client.ApiException as error:
            if error.status != 404:
                raise
            return False
        return True

    def event(self, resource: Resource, kind: str, reason: str, message: str) -> None:
        now = datetime.now(UTC)
        self._core.create_namespaced_event(resource.namespace, client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{resource.name}."),
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}", kind=KIND, name=resource.name,
                namespace=resource.namespace, uid=resource.uid,
            ),
            reason=reason, message=message[:1024], type=kind, count=1,
            first_timestamp=now, last_timestamp=now,
            source=client.V1EventSource(component=COMPONENT), reporting_component=COMPONENT,
        ))
