"""What the operator does for one ShardProcess: every decision, through the controller API.

The kopf handlers only unpack the resource, call `apply_spec` or `release`, and return what it
says. Plain Python: no kopf, no Kubernetes client; unit-tested without a cluster.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from shards.errors import (
    ConfirmationRequired,
    InvalidArgs,
    NotActive,
    NoWorker,
    ProcessActive,
    ShardsError,
    StoreUnavailable,
    UnknownProcess,
    UnknownScope,
)
from shards.records import ProcessRecord, RunRecord
from shards.retries import attempt_run_id
from shards.states import ACTIVE, FINAL, State
from shards_controller import Controller, check_args
from shards_controller.inputs import check_start_at

from shards_operator.status import (
    RunView,
    Status,
    merge_conditions,
    run_conditions,
    run_status,
    waiting_conditions,
)

log = logging.getLogger("shards.operator")

T = TypeVar("T")
UNREACHABLE = "MongoDB is unreachable; retrying"  # what a tenant reads: no server address
# What a tenant reads of anything else that went wrong on the operator's side (a store error
# other than an outage, a bug): the detail, which may name servers, stays in the operator's log.
INTERNAL = "an error on the operator's side (its log has the detail)"
# Errors about the tenant's own request: their text is for the tenant.
TENANT_ERRORS = (InvalidArgs, ConfirmationRequired, UnknownProcess, UnknownScope, ProcessActive, NoWorker,
                 NotActive)
RELEASE_POLL = 0.2  # seconds between looks at a deleted resource's run

RETRY_SOON = 2.0  # seconds: a busy process, a store outage
RETRY_LATER = 5.0  # seconds: unknown process or scope
WORKERS_MAX_AGE = 1.0  # seconds a registry read may serve for "no worker of the pool" messages
# A launch has at most 101 attempts that failed (MAX_RETRIES) but any number of hand-offs: the
# walk through its history is bounded so that a runaway launch cannot stall the operator.
MAX_ATTEMPTS_READ = 1000


class RunLookup(Protocol):
    """The run history's point read (the store's `runs`; a dict in unit tests)."""

    def get(self, run_id: str) -> RunRecord | None: ...


@dataclass(frozen=True)
class Resource:
    namespace: str
    name: str
    uid: str
    generation: int
    spec: dict[str, Any]
    status: dict[str, Any]

    @property
    def scope(self) -> str:
        return str(self.spec.get("scope") or self.namespace)

    @property
    def wanted_runs(self) -> int:
        return int(self.spec.get("runs") or 1)

    @property
    def launched_runs(self) -> int:
        return int(self.status.get("runs") or 0)

    def launch_id(self, number: int) -> str:
        """The launch id of this resource's n-th run (the run id of its first attempt; retries
        run as `<launch id>.<attempt>`): the same for every handler retry and replica."""
        return f"k8s-{self.uid}-{number}"


@dataclass
class Outcome:
    status: Status = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    retry_after: float | None = None  # the handler asks kopf to try again after this
    message: str = ""
    launched: bool = False  # this call launched the run (or found it launched): status.runs moves


def parse_grants(text: str) -> dict[str, set[str]]:
    """`team-a=farm,barn;team-b=*`: namespace team-a may use scopes farm and barn, team-b any."""
    grants: dict[str, set[str]] = {}
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        namespace, _, scopes = entry.partition("=")
        if not namespace or not scopes:
            raise ShardsError(f"scope grant {entry!r} is not NAMESPACE=SCOPE[,SCOPE...]")
        grants.setdefault(namespace.strip(), set()).update(s.strip() for s in scopes.split(",") if s.strip())
    return grants


def may_use(namespace: str, scope: str, grants: dict[str, set[str]]) -> bool:
    allowed = grants.get(namespace, set())
    return scope == namespace or scope in allowed or "*" in allowed


def apply_spec(controller: Controller, resource: Resource, grants: dict[str, set[str]]) -> Outcome:
    """Launch the run the spec asks for (once), stop it when asked, or say why it waits."""
    return guarded(resource, lambda: _apply(controller, resource, grants), _waiting)


def guarded(resource: Resource, act: Callable[[], T],
            waiting: Callable[[Resource, str, str, float | None], T]) -> T:
    """What `act` returns; an outage, or a bug, is said by `waiting` (the resource's own condition)
    and retried soon, never raised to kopf (it would put the text in an Event and an annotation)."""
    try:
        return act()
    except StoreUnavailable as error:  # the server's address stays in this log, not in the status
        log.warning("%s/%s waits: %s", resource.namespace, resource.name, error)
        return waiting(resource, "StoreUnavailable", UNREACHABLE, RETRY_SOON)
    except Exception:
        log.exception("%s/%s: the operator could not act on it; retrying", resource.namespace, resource.name)
        return waiting(resource, "OperatorError", f"{INTERNAL}; retrying", RETRY_SOON)


def _apply(controller: Controller, resource: Resource, grants: dict[str, set[str]]) -> Outcome:
    scope = resource.scope
    if not may_use(resource.namespace, scope, grants):
        return _waiting(resource, "ScopeNotAllowed", f"namespace {resource.namespace!r} may not use scope "
                        f"{scope!r} (the operator's --scope-grant allows it)", None)
    number = resource.wanted_runs
    if resource.launched_runs >= number:
        return _follow(controller, resource)
    if resource.spec.get("stop") or resource.spec.get("forceStop"):
        return Outcome(status={"scope": scope, "observedGeneration": resource.generation})
    launch_id = resource.launch_id(number)
    try:
        args = check_args(resource.spec.get("args"))
        start_at = start_time(resource.spec)
        record = controller.launch(scope, str(resource.spec["process"]), args=args,
                                   confirm=bool(resource.spec.get("confirm")),
                                   run_id=launch_id,
                                   timeout=resource.spec.get("timeoutSeconds"),
                                   retries=resource.spec.get("retries"),
                                   retry_backoff=resource.spec.get("retryBackoffSeconds"),
                                   at=start_at, queue=bool(resource.spec.get("queue")))
    except InvalidArgs as error:
        return _waiting(resource, "InvalidArgs", str(error), None)
    except ConfirmationRequired as error:
        return _waiting(resource, "ConfirmationRequired", str(error), None)
    except UnknownScope:
        controller.define(scope, only_if_missing=True)  # a worker defines it; then we go on
        return _waiting(resource, "UnknownScope", f"scope {scope!r} is not defined yet; a worker was "
                        "asked to define it", RETRY_LATER)
    except UnknownProcess as error:
        if controller.offered(str(resource.spec["process"])):
            controller.define(scope)  # a worker that offers it appeared: its catalog goes in
        return _waiting(resource, "UnknownProcess", str(error), RETRY_LATER)
    except ProcessActive as error:
        return _waiting(resource, "ProcessBusy", str(error), RETRY_SOON)
    # A launch repeated after its run happened returns the record as it is now, maybe moved on.
    run = launch_view(controller, record, launch_id)
    if run is not None:
        outcome = observed(resource, run)
    elif (place := queue_place(record, launch_id)) is not None:  # waits behind another run
        outcome = _queued(resource, record, place)
    else:
        outcome = Outcome(status={"scope": scope, "observedGeneration": resource.generation})
    outcome.status["runs"] = number
    outcome.launched = True  # the Launched Event follows the status that shows it (the mirror's)
    return outcome


def start_time(spec: dict[str, Any]) -> datetime | None:
    """spec.startAt (a delayed launch) as a time, checked as the controller checks it; InvalidArgs
    with one line, also for startAt and queue together (the schema's rule says so first)."""
    value = spec.get("startAt")
    if not value:
        return None
    if spec.get("queue"):
        raise InvalidArgs("a launch waits either for spec.startAt or behind the active run (spec.queue), "
                          "not both")
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return check_start_at(at)
    except ValueError:
        raise InvalidArgs(f"spec.startAt must be an RFC 3339 time like 2030-01-01T00:00:00Z, "
                          f"got {value!r}") from None
    except ShardsError as error:
        raise InvalidArgs(f"spec.startAt: {error}") from None


def queue_place(record: ProcessRecord, launch_id: str) -> int | None:
    """The launch's place (1 = next) among those waiting behind the record's run, if it waits."""
    return next((n for n, queued in enumerate(record.queue, start=1) if queued.run_id == launch_id), None)


def _queued(resource: Resource, record: ProcessRecord, place: int) -> Outcome:
    """spec.queue: this launch waits behind another run of the process; it starts once that run
    and the launches queued before it have ended (the mirror follows it from then)."""
    message = f"queued behind run {record.run_id} ({place} of {len(record.queue)} waiting)"
    status: Status = {"scope": resource.scope, "observedGeneration": resource.generation,
                      "state": State.SCHEDULED.value, "queued": len(record.queue),
                      "progress": {"message": message, "rate": 0.0, "percent": 0}}
    status["conditions"] = merge_conditions(resource.status.get("conditions"),
                                            run_conditions(State.SCHEDULED, ""), resource.generation)
    return Outcome(status=status)


def _follow(controller: Controller, resource: Resource) -> Outcome:
    """The current run was launched: stop it if asked, and report it as it is. A status that
    shows it Done needs no read (an operator resumed over thousands of them reads none)."""
    if launch_done(resource):
        conditions = merge_conditions(resource.status.get("conditions"), run_conditions(State.DONE, ""),
                                      resource.generation)
        return Outcome(status={"observedGeneration": resource.generation, "conditions": conditions})
    run = current_run(controller, resource)
    if run is None:
        return Outcome(status={"observedGeneration": resource.generation})
    force = bool(resource.spec.get("forceStop"))
    if (resource.spec.get("stop") or force) and run.state in ACTIVE:
        controller.stop(resource.scope, str(resource.spec["process"]), force=force)
        # Read again: a stop may end the run at once (a Scheduled one), and the change stream's
        # news of it may reach the mirror before this outcome, which must not undo it.
        run = current_run(controller, resource) or run
        outcome = observed(resource, run)
        verb = "kill" if force else "stop"
        outcome.events.append(("Normal", "Stopping", f"{verb} requested for run {resource.launched_runs}"))
        return outcome
    return observed(resource, run)


def launch_done(resource: Resource) -> bool:
    """Its status shows its current launch Done, which ends a launch (see launch_history): nothing
    in MongoDB can move that status again."""
    launch_id = resource.launch_id(resource.launched_runs)
    run_id = str(resource.status.get("runId") or "")
    return resource.status.get("state") == State.DONE.value and (
        run_id == launch_id or run_id.startswith(f"{launch_id}."))


def current_run(controller: Controller, resource: Resource) -> RunView | None:
    """This resource's current run, from the process record or, once it moved on, the history."""
    record = controller.store.processes.get(resource.scope, str(resource.spec["process"]))
    return launch_view(controller, record, resource.launch_id(resource.launched_runs))


def launch_view(controller: Controller, record: ProcessRecord | None, launch_id: str) -> RunView | None:
    """The launch's current attempt while the record is the launch's (whichever attempt it
    runs), else its last attempt as the history has it."""
    if record is not None and launch_of(record) == launch_id:
        return view_of(controller, record)
    attempts = launch_history(controller.store.runs, launch_id)
    return RunView.of_history(attempts) if attempts else None


def launch_of(record: ProcessRecord) -> str:
    """The launch a record's run is an attempt of (a record written before retries has none:
    its run is its launch)."""
    return record.launch_id or record.run_id


def launch_history(runs: RunLookup, launch_id: str) -> list[RunRecord]:
    """The history entries of a launch's attempts, in order. The history has no query by launch,
    so this reads attempt run ids 1, 2, ... by _id until one is missing; Done ends a launch,
    so a launch that succeeded at once costs one read, as before retries."""
    attempts: list[RunRecord] = []
    for number in range(1, MAX_ATTEMPTS_READ + 1):
        entry = runs.get(attempt_run_id(launch_id, number))
        if entry is None:
            break
        attempts.append(entry)
        if entry.state is State.DONE:
            break
    return attempts


def view_of(controller: Controller, record: ProcessRecord) -> RunView:
    """The run as its record shows it; a Scheduled one says why it waits, if it does (the
    registry is read at most once a second for all resources)."""
    waiting = controller.waiting_reasons([record], max_age=WORKERS_MAX_AGE).get(record.process_id, "")
    return RunView.of_record(record, waiting)


def observed(resource: Resource, run: RunView) -> Outcome:
    status = run_status(run)
    status["scope"] = resource.scope
    status["observedGeneration"] = resource.generation
    status["conditions"] = merge_conditions(
        resource.status.get("conditions"), run_conditions(run.state, run.error, run.waiting),
        resource.generation)
    return Outcome(status=status)


def _waiting(resource: Resource, reason: str, message: str, retry_after: float | None) -> Outcome:
    status = {
        "scope": resource.scope,
        "observedGeneration": resource.generation,
        "progress": {"message": message[:1024], "rate": 0.0, "percent": 0},
        "conditions": merge_conditions(resource.status.get("conditions"),
                                       waiting_conditions(reason, message), resource.generation),
    }
    if not resource.status.get("state"):
        status["state"] = "Idle"
    return Outcome(status=status, retry_after=retry_after, message=message)


def release(controller: Controller, resource: Resource, timeout: float) -> tuple[bool, str]:
    """On delete: stop an active run of this resource and wait a bounded time for it to end,
    retrying through MongoDB outages (a failover) until the timeout.

    Returns (ended, message); the caller lets the resource go either way once it returns.
    """
    if resource.launched_runs == 0:
        return True, "no run was launched"
    deadline = time.monotonic() + timeout
    stopped = False
    while True:
        try:
            run = current_run(controller, resource)
            if run is None or run.state in FINAL:
                if not stopped:
                    return True, "the run had ended"
                return True, f"the run ended {run.state.value if run else 'elsewhere'}"
            if not stopped:
                controller.stop(resource.scope, str(resource.spec["process"]))
                stopped = True
        except StoreUnavailable as error:
            log.warning("%s/%s is deleted while %s", resource.namespace, resource.name, error)
            if time.monotonic() >= deadline:
                return False, f"could not stop the run: MongoDB stayed unreachable for {timeout:g}s"
        except Exception as error:  # the resource goes all the same; the detail stays in this log
            log.warning("%s/%s is deleted; could not stop its run: %s", resource.namespace, resource.name,
                        error, exc_info=not isinstance(error, ShardsError))
            return False, f"could not stop the run: {tenant_text(error)}"
        if time.monotonic() >= deadline:
            return False, f"the run did not end within {timeout:g}s of the stop"
        time.sleep(min(RELEASE_POLL, max(0.0, deadline - time.monotonic())))


def tenant_text(error: BaseException) -> str:
    """What a tenant reads of an error: its text when it is about the tenant's request, else a
    generic line (store errors name servers)."""
    if isinstance(error, StoreUnavailable):
        return "MongoDB is unreachable"
    return str(error) if isinstance(error, TENANT_ERRORS) else INTERNAL
