"""The Kubernetes side of the log service: who a user's token is (TokenReview), whether that user
may get a ShardProcess (SubjectAccessReview), and the resource itself, read with the operator's
own ServiceAccount. The same two reviews kube-rbac-proxy makes: Kubernetes decides."""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client

from shards_operator.kube import GROUP, PLURAL, REQUEST_TIMEOUT, VERSION
from shards_operator.log_service import Caller
from shards_operator.resource import Resource


class KubeReviews:
    def __init__(self) -> None:
        configuration = client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = 16  # the log service answers on a thread per request
        api = client.ApiClient(configuration)
        self._authentication = client.AuthenticationV1Api(api)
        self._authorization = client.AuthorizationV1Api(api)
        self._custom = client.CustomObjectsApi(api)

    def authenticate(self, token: str) -> Caller | None:
        """The user the API server says the token is, or None for a token it does not accept."""
        asked = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
        review = self._authentication.create_token_review(asked, _request_timeout=REQUEST_TIMEOUT)
        status = review.status
        if status is None or not status.authenticated or status.user is None:
            return None
        user = status.user
        extra = {key: list(values or ()) for key, values in (user.extra or {}).items()}
        return Caller(str(user.username or ""), str(user.uid or ""), tuple(user.groups or ()), extra)

    def may_get(self, caller: Caller, namespace: str, name: str) -> bool:
        """Whether the caller's own RBAC lets them `get` this ShardProcess."""
        review = self._authorization.create_subject_access_review(
            client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
                user=caller.username, uid=caller.uid or None, groups=list(caller.groups),
                extra=caller.extra or None,
                resource_attributes=client.V1ResourceAttributes(
                    group=GROUP, version=VERSION, resource=PLURAL, verb="get", namespace=namespace,
                    name=name),
            )),
            _request_timeout=REQUEST_TIMEOUT,
        )
        return bool(review.status is not None and review.status.allowed)

    def shard_process(self, namespace: str, name: str) -> Resource | None:
        try:
            body = cast("dict[str, Any]", self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT))
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        meta = body.get("metadata") or {}
        return Resource(namespace=namespace, name=name, uid=str(meta.get("uid") or ""),
                        generation=int(meta.get("generation") or 0),
                        spec=dict(body.get("spec") or {}), status=dict(body.get("status") or {}))
