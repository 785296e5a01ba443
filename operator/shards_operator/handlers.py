"""kopf handlers: unpack the resource, call one plain function, hand the outcome on."""

from __future__ import annotations

from typing import Any

import kopf

from shards_operator import metrics
from shards_operator.kube import GROUP, PLURAL, VERSION
from shards_operator.resource import Resource, apply_spec, release
from shards_operator.shared import SHARED


def _resource(body: kopf.Body) -> Resource:
    meta = body.metadata
    return Resource(
        namespace=str(meta.namespace), name=str(meta.name), uid=str(meta.uid),
        generation=int(meta.get("generation") or 0),
        spec=dict(body.spec), status=dict(body.status),
    )


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def apply(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Launch the run the spec asks for, stop it when asked, or say why it waits."""
    resource = _resource(body)
    outcome = apply_spec(SHARED.controller, resource, SHARED.settings.grants)
    SHARED.mirror.update(resource, outcome)
    if outcome.launched:
        metrics.LAUNCHES.inc()
    if outcome.retry_after is not None:
        logger.info("waiting: %s", outcome.message)
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)


@kopf.on.delete(GROUP, VERSION, PLURAL)
def delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Stop an active run and wait a bounded time; the resource goes either way."""
    resource = _resource(body)
    ended, message = release(SHARED.controller, resource, SHARED.settings.delete_timeout)
    SHARED.mirror.forget(resource.uid)
    if not ended:
        logger.warning("deleted before its run ended: %s", message)
        kopf.warn(body, reason="DeletedWhileActive", message=message)
