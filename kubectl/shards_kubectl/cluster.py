"""The user's cluster as their kubeconfig names it: an API client with their credentials, their
bearer token (which the operator's log service has the API server review) and their namespace."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException
from shards.errors import ShardsError


@dataclass
class UserCluster:
    api: client.ApiClient
    namespace: str  # the context's namespace, else "default"
    context: str

    def token(self) -> str:
        """The user's bearer token (a static one, or what an exec or OIDC provider gave)."""
        # The header the client would send (it runs an exec or OIDC provider's refresh first).
        bearer = self.api.configuration.auth_settings().get("BearerToken") or {}
        scheme, _, token = str(bearer.get("value") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ShardsError(f"the user of context {self.context!r} has no bearer token (a client "
                              "certificate?): the operator can only have Kubernetes review a token; use a "
                              "context with one (OIDC, `kubectl create token`), or `shards logs` with "
                              "MongoDB access")
        return token.strip()


def user_cluster(kubeconfig: str | None, context: str | None) -> UserCluster:
    """The cluster of `context` (default: the current one) in `kubeconfig` (default: $KUBECONFIG,
    else ~/.kube/config), as kubectl would pick it."""
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
        chosen = next((each for each in contexts if each["name"] == context), None) if context else current
        if chosen is None:
            raise ShardsError(f"no context {context!r} in the kubeconfig")
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=chosen["name"],
                                client_configuration=configuration)
    except (ConfigException, OSError) as error:
        raise ShardsError(f"no usable kubeconfig: {error}") from None
    namespace = str((chosen.get("context") or {}).get("namespace") or "default")
    return UserCluster(client.ApiClient(configuration), namespace, str(chosen["name"]))
