"""kopf handlers: unpack the resource, call one plain function, hand the outcome on."""

from __future__ import annotations

from typing import Any

import kopf

from shards_operator import metrics
from shards_operator.kube import GROUP, PLURAL, SCHEDULES, VERSION
from shards_operator.resource import Resource, apply_spec, release
from shards_operator.schedules import (
    STATUS_INTERVAL,
    ScheduleOutcome,
    apply_schedule,
    forget_schedule,
    mirror_schedule,
)
from shards_operator.shared import SHARED
from shards_operator.status import for_tenant


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


# -- ShardSchedule: the schedule record in MongoDB follows the spec; a timer mirrors it back ----


@kopf.on.create(GROUP, VERSION, SCHEDULES)
def create_schedule(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Write the schedule (paused from the start if the spec says so)."""
    resource = _resource(body)
    _deliver(resource, apply_schedule(SHARED.controller, resource, SHARED.settings.grants,
                                      sync_pause=True), logger)


@kopf.on.update(GROUP, VERSION, SCHEDULES, field="spec")
def update_schedule(body: kopf.Body, old: Any, new: Any, logger: kopf.Logger, **_: Any) -> None:
    """Give the schedule its new spec; pause or unpause it when spec.paused (or note) changed.
    With field="spec", kopf's old and new are the specs themselves."""
    before, after = dict(old or {}), dict(new or {})
    sync_pause = any(before.get(key) != after.get(key) for key in ("paused", "note"))
    resource = _resource(body)
    _deliver(resource, apply_schedule(SHARED.controller, resource, SHARED.settings.grants,
                                      sync_pause=sync_pause), logger)


@kopf.on.resume(GROUP, VERSION, SCHEDULES)
def resume_schedule(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """An operator (re)started: the spec again, without undoing a pause made elsewhere."""
    resource = _resource(body)
    _deliver(resource, apply_schedule(SHARED.controller, resource, SHARED.settings.grants,
                                      sync_pause=False), logger)


@kopf.timer(GROUP, VERSION, SCHEDULES, interval=STATUS_INTERVAL)
def mirror_schedule_status(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Only the leader runs kopf: the record's news goes into status, when it moved."""
    resource = _resource(body)
    _deliver(resource, mirror_schedule(SHARED.controller, resource), logger)


@kopf.on.delete(GROUP, VERSION, SCHEDULES)
def delete_schedule(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """No time fires after this; runs it launched are not touched. The resource goes either way."""
    resource = _resource(body)
    removed, message = forget_schedule(SHARED.controller, resource, SHARED.settings.grants,
                                       SHARED.settings.delete_timeout)
    if not removed:
        logger.warning("deleted, but %s", message)
        kopf.warn(body, reason="ScheduleNotRemoved", message=message)


def _deliver(resource: Resource, outcome: ScheduleOutcome, logger: kopf.Logger) -> None:
    for kind, reason, message, key in outcome.events:
        try:
            SHARED.schedules.event(resource, kind, reason, for_tenant(message), key=key)
        except Exception:  # an event is a courtesy: never fail on it
            logger.warning("could not post event %s", reason, exc_info=True)
    if outcome.status:
        SHARED.schedules.patch_status(resource, outcome.status)
    if outcome.retry_after is not None:
        logger.info("waiting: %s", outcome.message)
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)
