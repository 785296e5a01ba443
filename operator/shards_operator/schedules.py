"""What the operator does for one ShardSchedule: every decision, through the controller API.

A ShardSchedule is one schedule record in MongoDB (the workers fire it, any of them, exactly
once per nominal time); the operator writes the spec there, removes it on delete and mirrors the
record into the resource's status. A firing creates no Kubernetes object (unlike a CronJob's
Jobs): a run is a run of the process, in its history, named in status.lastActions.

The kopf handlers only unpack the resource, call one function here and deliver what it says.
Plain Python: no kopf, no Kubernetes client; unit-tested without a cluster.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shards.errors import (
    InvalidArgs,
    InvalidDefinition,
    ShardsError,
    StoreUnavailable,
    UnknownProcess,
    UnknownSchedule,
    UnknownScope,
)
from shards.records import iso
from shards.schedule_times import Timing, format_duration, parse_duration
from shards.schedules import (
    DEFAULT_BUFFER_LIMIT,
    DEFAULT_CATCHUP_WINDOW,
    Action,
    Outcome,
    Overlap,
    ScheduleRecord,
    ScheduleSpec,
    check_name,
)
from shards_controller import Controller, check_args
from shards_controller.inputs import launch_options
from shards_store.schedules import ScheduleExists

from shards_operator.resource import INTERNAL, Resource, guarded, may_use
from shards_operator.status import Status, merge_conditions

log = logging.getLogger("shards.operator")

STATUS_INTERVAL = 5.0  # seconds between looks at a schedule's record (its status timer)
SHOWN_ACTIONS = 10  # the status keeps the last actions (the record keeps 20)
READY = "Ready"
RETRY_SOON = 2.0  # seconds: a store outage, an operator error
RETRY_LATER = 5.0  # seconds: unknown process or scope (a worker may define it)
FORGET_POLL = 0.5  # seconds between tries of a delete while MongoDB is unreachable
# The fields of status the record decides (the timer's); the rest is the handlers'.
RECORD_FIELDS = ("phase", "timing", "timeZone", "paused", "note", "nextFireTime", "lastFireTime", "active",
                 "fired", "launched", "skipped", "missed", "lastActions")
FIRED = (Outcome.LAUNCHED, Outcome.QUEUED, Outcome.SKIPPED, Outcome.FAILED)  # acted on: lastFireTime


@dataclass
class ScheduleOutcome:
    status: Status = field(default_factory=dict)
    events: list[tuple[str, str, str, str]] = field(default_factory=list)  # (type, reason, message, key)
    retry_after: float | None = None  # the handler asks kopf to try again after this
    message: str = ""


def schedule_name(resource: Resource) -> str:
    """The schedule's name in Shards: the resource's name in its namespace's own scope (what
    `shards schedule get NAME` finds); in a scope granted to the namespace, `<namespace>_<name>`,
    so that two namespaces sharing a scope never write one schedule (a Kubernetes name has no
    `_`, so this cannot be another resource's name)."""
    if resource.scope == resource.namespace:
        return resource.name
    return f"{resource.namespace}_{resource.name}"


def schedule_spec(resource: Resource) -> ScheduleSpec:
    """The ScheduleSpec a resource asks for, or InvalidArgs with a one-line reason for what the
    API server's validation cannot catch (a time zone it does not know, a cron field out of
    range, args too large)."""
    spec = resource.spec
    try:
        timing = timing_of(spec)
        start_at, end_at = (_time(spec, "startAt"), _time(spec, "endAt"))
        overlap = Overlap(spec.get("overlap") or Overlap.SKIP)
        return ScheduleSpec(
            name=check_name(schedule_name(resource)), scope_id=resource.scope,
            process_id=str(spec.get("process") or ""), timing=timing,
            args=check_args(spec.get("args")),
            options=launch_options(spec.get("timeoutSeconds"), spec.get("retries"),
                                   spec.get("retryBackoffSeconds")),
            overlap=overlap, buffer_limit=int(spec.get("bufferLimit") or DEFAULT_BUFFER_LIMIT),
            catchup_window=_duration(spec, "catchupWindow", DEFAULT_CATCHUP_WINDOW),
            jitter=_duration(spec, "jitter", 0.0), pause_on_failure=bool(spec.get("pauseOnFailure")),
            start_at=start_at, end_at=end_at,
            max_runs=int(spec["maxRuns"]) if spec.get("maxRuns") is not None else None,
            confirm=bool(spec.get("confirm")),
        ).check()
    except InvalidDefinition as error:
        raise InvalidArgs(str(error)) from None
    except ValueError as error:  # an enum the API server's schema would have refused
        raise InvalidArgs(str(error)) from None


def timing_of(spec: dict[str, Any]) -> Timing:
    if spec.get("schedule"):
        return Timing(cron=str(spec["schedule"]).strip(), timezone=str(spec.get("timeZone") or "UTC"))
    if not spec.get("every"):
        raise InvalidDefinition("give exactly one of spec.schedule (a cron expression) and spec.every "
                                "(an interval)")
    return Timing(every=_duration(spec, "every", 0.0), offset=_duration(spec, "offset", 0.0))


def _duration(spec: dict[str, Any], key: str, default: float) -> float:
    value = spec.get(key)
    if value is None or value == "":
        return default
    try:
        return parse_duration(value)
    except InvalidDefinition as error:
        raise InvalidDefinition(f"spec.{key}: {error}") from None


def _time(spec: dict[str, Any], key: str) -> datetime | None:
    value = spec.get(key)
    if not value:
        return None
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidDefinition(f"spec.{key} must be an RFC 3339 time like 2030-01-01T00:00:00Z, "
                                f"got {value!r}") from None
    if at.tzinfo is None:
        raise InvalidDefinition(f"spec.{key} must carry a time zone (Z or +01:00), got {value!r}")
    return at


# -- create, update, resume ---------------------------------------------------------------------


def apply_schedule(controller: Controller, resource: Resource, grants: dict[str, set[str]], *,
                   sync_pause: bool) -> ScheduleOutcome:
    """Write the spec into Shards (create, or change: the same spec again changes nothing) and
    say whether it could (condition Ready). `sync_pause`: spec.paused or spec.note was set or
    changed (a create, an edit of them) and decides both ways; otherwise (a resume, other edits)
    paused: true still holds, but a pause by pauseOnFailure or `shards schedule pause` is kept."""
    return guarded(resource, lambda: _apply(controller, resource, grants, sync_pause), _not_ready)


def _apply(controller: Controller, resource: Resource, grants: dict[str, set[str]],
           sync_pause: bool) -> ScheduleOutcome:
    scope = resource.scope
    if not may_use(resource.namespace, scope, grants):
        return _not_ready(resource, "ScopeNotAllowed", f"namespace {resource.namespace!r} may not use scope "
                          f"{scope!r} (the operator's --scope-grant allows it)", None, warn=True)
    try:
        spec = schedule_spec(resource)
        record = _write(controller, spec, resource)
    except InvalidArgs as error:
        return _not_ready(resource, "InvalidSpec", str(error), None, warn=True)
    except UnknownScope:
        controller.define(scope, only_if_missing=True)  # a worker defines it; then we go on
        return _not_ready(resource, "UnknownScope", f"scope {scope!r} is not defined yet; a worker was "
                          "asked to define it", RETRY_LATER)
    except UnknownProcess as error:
        if controller.offered(str(resource.spec.get("process"))):
            controller.define(scope)  # a worker that offers it appeared: its catalog goes in
        return _not_ready(resource, "UnknownProcess", str(error), RETRY_LATER)
    want_paused = bool(resource.spec.get("paused"))
    note = str(resource.spec.get("note") or "")
    if want_paused and (not record.paused or (sync_pause and record.note != (note or "paused"))):
        record = controller.schedules.pause(spec.scope_id, spec.name, note)
    elif not want_paused and record.paused and sync_pause:
        record = controller.schedules.unpause(spec.scope_id, spec.name, note)
    status = {**identity_status(resource, spec), **schedule_status(record, process_state(controller, record))}
    status["conditions"] = merge_conditions(
        resource.status.get("conditions"),
        [(READY, True, "Applied", f"schedule {spec.name!r} in scope {scope!r}")], resource.generation)
    return ScheduleOutcome(status=status)


def _write(controller: Controller, spec: ScheduleSpec, resource: Resource) -> ScheduleRecord:
    """A new schedule is created paused when the spec says so (it never fires before the pause)."""
    try:
        controller.schedules.get(spec.scope_id, spec.name)
    except UnknownSchedule:
        try:
            return controller.schedules.create(spec, paused=bool(resource.spec.get("paused")),
                                               note=str(resource.spec.get("note") or ""))
        except ScheduleExists:  # created meanwhile (another replay of the event): changed below
            pass
    return controller.schedules.apply(spec)


def identity_status(resource: Resource, spec: ScheduleSpec | None = None) -> Status:
    return {"scope": resource.scope, "scheduleName": spec.name if spec else schedule_name(resource),
            "observedGeneration": resource.generation}


def _not_ready(resource: Resource, reason: str, message: str, retry_after: float | None, *,
               warn: bool = False) -> ScheduleOutcome:
    """Ready False with the reason; a refused spec (retry_after None) also gets a Warning Event,
    once per generation. The schedule, if it exists, keeps its last good spec."""
    status = identity_status(resource)
    status["conditions"] = merge_conditions(resource.status.get("conditions"),
                                            [(READY, False, reason, message)], resource.generation)
    outcome = ScheduleOutcome(status=status, retry_after=retry_after, message=message)
    if warn:
        outcome.events.append(("Warning", reason, message, f"{reason}/{resource.generation}"))
    return outcome


# -- the status mirror --------------------------------------------------------------------------


def process_state(controller: Controller, record: ScheduleRecord) -> str:
    """The state of the process's current (or last) run, whoever launched it ("" if unknown)."""
    process = controller.store.processes.get(record.spec.scope_id, record.spec.process_id)
    return process.state.value if process is not None else ""


def timing_text(timing: Timing) -> str:
    if timing.cron:
        return timing.cron
    text = f"every {format_duration(timing.every)}"
    return f"{text} +{format_duration(timing.offset)}" if timing.offset else text


def schedule_status(record: ScheduleRecord, active: str = "") -> Status:
    """The status fields a schedule record decides (RECORD_FIELDS). A None drops the field (a
    merge patch's null)."""
    fired = record.last(*FIRED)
    return {
        "phase": record.phase.value,
        "timing": timing_text(record.spec.timing),
        "timeZone": record.spec.timing.timezone or "UTC",
        "paused": record.paused,
        "note": record.note,
        "nextFireTime": iso(record.next.fire_at) if record.next is not None and not record.paused else None,
        "lastFireTime": iso(fired.at) if fired is not None else None,
        "active": active,
        "fired": record.fired,
        "launched": record.launched,
        "skipped": record.skipped,
        "missed": record.missed,
        "lastActions": [action_status(action) for action in record.actions[-SHOWN_ACTIONS:]],
    }


def action_status(action: Action) -> Status:
    # A list is patched whole: a null in it would be kept, and refused by the schema.
    status: Status = {"runId": action.run_id, "outcome": action.outcome.value, "detail": action.detail[:1024]}
    if action.nominal is not None:
        status["nominalTime"] = iso(action.nominal)
    if action.at is not None:
        status["actualTime"] = iso(action.at)
    return status


def changed(current: dict[str, Any], wanted: Status) -> Status:
    """The part of `wanted` that differs from the current status (a null only for a field
    that is there): what a merge patch must carry, empty when nothing moved."""
    return {key: value for key, value in wanted.items()
            if current.get(key) != value and not (value is None and key not in current)}


def mirror_schedule(controller: Controller, resource: Resource) -> ScheduleOutcome:
    """What the status timer patches: the record's fields that moved, and the Events of what
    they show happened (times missed, launches refused, a pause after a failure). Nothing while
    the schedule does not exist (its spec was refused: Ready False says why) or MongoDB is away."""
    try:
        spec_name, scope = schedule_name(resource), resource.scope
        record = controller.store.schedules.get(scope, spec_name)
        if record is None:
            return ScheduleOutcome()
        wanted = schedule_status(record, process_state(controller, record))
    except ShardsError as error:  # the next tick tries again
        log.warning("%s/%s: schedule status not read: %s", resource.namespace, resource.name, error)
        return ScheduleOutcome()
    status = changed(resource.status, wanted)
    return ScheduleOutcome(status=status, events=record_events(resource, record) if status else [])


def record_events(resource: Resource, record: ScheduleRecord) -> list[tuple[str, str, str, str]]:
    """Events of what the record shows that the resource's status does not yet: each action
    that missed times or whose launch was refused, and a pause by pauseOnFailure. Each is keyed
    by what it announces, so posting it twice posts it once."""
    shown = {(a.get("nominalTime"), a.get("actualTime"), a.get("outcome"))
             for a in resource.status.get("lastActions") or []}
    events = []
    for action in record.actions[-SHOWN_ACTIONS:]:
        if (iso(action.nominal), iso(action.at), action.outcome.value) in shown:
            continue
        key = f"{action.outcome.value}/{action.label}/{iso(action.at)}"
        if action.outcome is Outcome.MISSED:
            events.append(("Warning", "Missed", action.detail or f"missed {action.label}", key))
        elif action.outcome is Outcome.FAILED:
            events.append(("Warning", "LaunchFailed", action.detail or f"launch of {action.label} refused",
                           key))
    if (record.paused and record.spec.pause_on_failure and not resource.spec.get("paused")
            and not resource.status.get("paused")):
        events.append(("Warning", "PausedOnFailure", record.note or "paused after a failed run",
                       f"paused/{record.generation}"))
    return events


# -- delete -------------------------------------------------------------------------------------


def forget_schedule(controller: Controller, resource: Resource, grants: dict[str, set[str]],
                    timeout: float) -> tuple[bool, str]:
    """On delete: remove the schedule (no time fires after this; its runs are not touched),
    retrying through MongoDB outages until the timeout. Returns (removed, message); the caller
    lets the resource go either way. A scope the namespace may not use was never written to."""
    if not may_use(resource.namespace, resource.scope, grants):
        return True, (f"namespace {resource.namespace!r} may not use scope {resource.scope!r}: "
                      "nothing to remove")
    deadline = time.monotonic() + timeout
    name = schedule_name(resource)
    while True:
        try:
            controller.schedules.delete(resource.scope, name)
            return True, f"schedule {name!r} removed"
        except UnknownSchedule:
            return True, f"schedule {name!r} was not there"
        except StoreUnavailable as error:
            log.warning("%s/%s is deleted while %s", resource.namespace, resource.name, error)
            if time.monotonic() >= deadline:
                return False, (f"could not remove schedule {name!r}: MongoDB stayed unreachable for "
                               f"{timeout:g}s; remove it with `shards schedule delete {name} "
                               f"--scope {resource.scope}`")
        except Exception as error:  # the resource goes all the same; the detail stays in this log
            log.warning("%s/%s is deleted; could not remove its schedule: %s", resource.namespace,
                        resource.name, error, exc_info=not isinstance(error, ShardsError))
            return False, f"could not remove schedule {name!r}: {INTERNAL}"
        time.sleep(min(FORGET_POLL, max(0.0, deadline - time.monotonic())))
