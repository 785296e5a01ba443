"""What the operator does for one ShardProcess: every decision, through the controller API.

The kopf handlers only unpack the resource, call `apply_spec` or `release`, and return what it
says. Plain Python: no kopf, no Kubernetes client; unit-tested without a cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from shards.errors import (
    ConfirmationRequired,
    InvalidArgs,
    ProcessActive,
    ShardsError,
    StoreUnavailable,
    UnknownProcess,
    UnknownScope,
)
from shards.records import ProcessRecord
from shards.states import ACTIVE, FINAL
from shards_controller import Controller, check_args

from shards_operator.status import (
    RunView,
    Status,
    merge_conditions,
    run_conditions,
    run_status,
    waiting_conditions,
)

RETRY_SOON = 2.0  # seconds: a busy process, a store outage
RETRY_LATER = 5.0  # seconds: unknown process or scope
WORKERS_MAX_AGE = 1.0  # seconds a registry read may serve for "no worker of the pool" messages


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

    def run_id(self, number: int) -> str:
        """The run id of this resource's n-th run: the same for every retry and replica."""
        return f"k8s-{self.uid}-{number}"


@dataclass
class Outcome:
    status: Status = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    retry_after: float | None = None  # the handler asks kopf to try again after this
    message: str = ""


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
    try:
        return _apply(controller, resource, grants)
    except StoreUnavailable as error:
        return _waiting(resource, "StoreUnavailable", str(error), RETRY_SOON)


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
    try:
        args = check_args(resource.spec.get("args"))
        record = controller.launch(scope, str(resource.spec["process"]), args=args,
                                   confirm=bool(resource.spec.get("confirm")),
                                   run_id=resource.run_id(number),
                                   timeout=resource.spec.get("timeoutSeconds"))
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
    outcome = observed(resource, view_of(controller, record))
    outcome.status["runs"] = number
    outcome.events.append(("Normal", "Launched", f"run {number} of {record.process_id} in scope {scope}"))
    return outcome


def _follow(controller: Controller, resource: Resource) -> Outcome:
    """The current run was launched: stop it if asked, and report it as it is."""
    run = current_run(controller, resource)
    if run is None:
        return Outcome(status={"observedGeneration": resource.generation})
    outcome = observed(resource, run)
    force = bool(resource.spec.get("forceStop"))
    if (resource.spec.get("stop") or force) and run.state in ACTIVE:
        controller.stop(resource.scope, str(resource.spec["process"]), force=force)
        verb = "kill" if force else "stop"
        outcome.events.append(("Normal", "Stopping", f"{verb} requested for run {resource.launched_runs}"))
    return outcome


def current_run(controller: Controller, resource: Resource) -> RunView | None:
    """This resource's current run, from the process record or, once it moved on, the history."""
    run_id = resource.run_id(resource.launched_runs)
    record = controller.store.processes.get(resource.scope, str(resource.spec["process"]))
    if record is not None and record.run_id == run_id:
        return view_of(controller, record)
    past = controller.store.runs.get(run_id)
    return RunView.of_history(past) if past is not None else None


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
    """On delete: stop an active run of this resource and wait a bounded time for it to end.

    Returns (ended, message); the caller lets the resource go either way once it returns.
    """
    if resource.launched_runs == 0:
        return True, "no run was launched"
    deadline = time.monotonic() + timeout
    try:
        run = current_run(controller, resource)
        if run is None or run.state in FINAL:
            return True, "the run had ended"
        controller.stop(resource.scope, str(resource.spec["process"]))
        while time.monotonic() < deadline:
            run = current_run(controller, resource)
            if run is None or run.state in FINAL:
                return True, f"the run ended {run.state.value if run else 'elsewhere'}"
            time.sleep(0.2)
        return False, f"the run did not end within {timeout:g}s of the stop"
    except ShardsError as error:
        return False, f"could not stop the run: {error}"
