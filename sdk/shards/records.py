"""Plain records of what Shards stores, and their document form (camelCase, as the seed had)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shards.errors import InvalidDefinition
from shards.retries import Attempt, LaunchState, RunPolicy, check_backoff, check_retries
from shards.states import State

Document = dict[str, Any]
DEFAULT_POOL = "default"  # the pool of a process that names none, and of a worker started without --pool
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Every document Shards creates says which schema its writer knew (docs/upgrades.md): a document
# without the field was written before versions existed (0). Within a version, documents only
# gain fields, with defaults that readers of the version before ignore; what the version before
# must not act on gets a new `kind` or state it does not match, and a higher version.
SCHEMA_FIELD = "schemaVersion"
SCHEMA_VERSION = 1


CLOCK_SKEW_ENV = "SHARDS_TEST_CLOCK_SKEW"  # seconds: a test hook, see wall_clock


def _skew_from_env() -> timedelta:
    try:
        return timedelta(seconds=float(os.environ.get(CLOCK_SKEW_ENV) or 0))
    except (ValueError, OverflowError):
        return timedelta(0)


_skew = _skew_from_env()
_server_offset = timedelta(0)  # the server's clock minus this machine's, as the store measured it


def wall_clock() -> datetime:
    """This machine's wall clock. Tests put it off (SHARDS_TEST_CLOCK_SKEW, in a worker's
    environment) to play a host whose clock is wrong."""
    return datetime.now(UTC) + _skew


def set_server_offset(seconds: float) -> None:
    """The store measured the server's clock `seconds` ahead of this machine's: stored times
    (when a retry may start, when a run started and ended) follow the server's clock, so that
    they do not depend on the wall clock of whichever host wrote them."""
    global _server_offset
    _server_offset = timedelta(seconds=seconds)


def server_offset() -> float:
    return _server_offset.total_seconds()


def utcnow() -> datetime:
    """Now on the server's clock (as far as the store measured it), in UTC, at the millisecond
    precision MongoDB keeps."""
    now = wall_clock() + _server_offset
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def to_ms(value: datetime | None) -> int | None:
    """Times are stored as epoch milliseconds: an update that sets a date on an existing document
    is stored as a string by one test server (NX-27017), while integers behave everywhere."""
    return None if value is None else (value - EPOCH) // timedelta(milliseconds=1)


def at_ms(value: int | float) -> datetime:
    return EPOCH + timedelta(milliseconds=int(value))


def from_ms(value: int | float | None) -> datetime | None:
    return None if value is None else at_ms(value)


def now_ms() -> int:
    return (utcnow() - EPOCH) // timedelta(milliseconds=1)


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


@dataclass
class Progress:
    message: str = ""
    rate: float = 0.0

    def to_doc(self) -> Document:
        return {"message": self.message, "rate": self.rate}

    @classmethod
    def from_doc(cls, doc: Document | None) -> Progress:
        doc = doc or {}
        return cls(message=str(doc.get("message", "")), rate=float(doc.get("rate", 0.0)))


@dataclass
class ProcessStatus:
    state: State = State.IDLE
    error: str = ""
    running_since: datetime | None = None
    done_at: datetime | None = None
    duration: float | None = None  # seconds of the last finished run
    stopped_at: datetime | None = None
    failed_at: datetime | None = None
    retry_at: datetime | None = None  # a retry waits for this time to start
    start_at: datetime | None = None  # a delayed launch waits for this time to start

    def to_doc(self) -> Document:
        return {
            "state": self.state.value,
            "error": self.error,
            "runningSince": to_ms(self.running_since),
            "doneAt": to_ms(self.done_at),
            "duration": self.duration,
            "stoppedAt": to_ms(self.stopped_at),
            "failedAt": to_ms(self.failed_at),
            "retryAt": to_ms(self.retry_at),
            "startAt": to_ms(self.start_at),
        }

    @classmethod
    def ended(
        cls,
        state: State,
        *,
        error: str = "",
        running_since: datetime | None = None,
        at: datetime | None = None,
    ) -> ProcessStatus:
        """The status of a run that ended in `state` (Done, Stopped or Failed) at `at`."""
        at = at or utcnow()
        return cls(
            state=state,
            error=error,
            running_since=running_since,
            done_at=at if state is State.DONE else None,
            # Never negative: the two ends may come from hosts whose clocks the store corrected apart.
            duration=max(0.0, round((at - running_since).total_seconds(), 3)) if running_since else None,
            stopped_at=at if state is State.STOPPED else None,
            failed_at=at if state is State.FAILED else None,
        )

    @property
    def ended_at(self) -> datetime | None:
        return self.done_at or self.stopped_at or self.failed_at

    @classmethod
    def from_doc(cls, doc: Document | None) -> ProcessStatus:
        doc = doc or {}
        return cls(
            state=State(doc.get("state", State.IDLE)),
            error=str(doc.get("error") or ""),
            running_since=from_ms(doc.get("runningSince")),
            done_at=from_ms(doc.get("doneAt")),
            duration=doc.get("duration"),
            stopped_at=from_ms(doc.get("stoppedAt")),
            failed_at=from_ms(doc.get("failedAt")),
            retry_at=from_ms(doc.get("retryAt")),
            start_at=from_ms(doc.get("startAt")),
        )


@dataclass
class LaunchSpec:
    """What a launch asked for, kept on the record so that any worker can queue a retry."""

    args: Document = field(default_factory=dict)
    options: Document = field(default_factory=dict)

    def to_doc(self) -> Document:
        return {"args": self.args, "options": self.options}

    @classmethod
    def from_doc(cls, doc: Document | None) -> LaunchSpec:
        doc = doc or {}
        return cls(args=dict(doc.get("args") or {}), options=dict(doc.get("options") or {}))


@dataclass(frozen=True)
class QueuedLaunch:
    """A launch waiting behind the record's active run (`launch --queue`, a schedule's buffer):
    it is scheduled once that run ends."""

    run_id: str
    args: Document = field(default_factory=dict)
    options: Document = field(default_factory=dict)
    queued_at: datetime | None = None

    def to_doc(self) -> Document:
        return {"runId": self.run_id, "args": self.args, "options": self.options,
                "queuedAt": to_ms(self.queued_at)}

    @classmethod
    def from_doc(cls, doc: Document) -> QueuedLaunch:
        return cls(run_id=str(doc.get("runId", "")), args=dict(doc.get("args") or {}),
                   options=dict(doc.get("options") or {}), queued_at=from_ms(doc.get("queuedAt")))


@dataclass
class ProcessRecord:
    """One record per (scope, process id): the definition, its status and its progress."""

    scope_id: str
    process_id: str
    name: str
    warning: str = ""
    detail_level: int = 1
    special: bool = False
    pool: str = DEFAULT_POOL
    status: ProcessStatus = field(default_factory=ProcessStatus)
    progress: Progress = field(default_factory=Progress)
    run_id: str = ""  # the current or last run; "" before the first launch
    worker_id: str = ""  # the worker executing the current run; "" when none
    parent_run_id: str = ""  # set while running as a child process
    policy: RunPolicy = field(default_factory=RunPolicy)  # the definition's retry defaults
    launch_id: str = ""  # the run id of the launch's first attempt
    attempt: int = 0  # the current or last attempt of the launch (1: the first)
    retried: int = 0  # failed attempts of this launch retried so far
    handoffs: int = 0  # attempts of this launch handed off so far (they spend no retry)
    attempts: list[Attempt] = field(default_factory=list)  # how earlier attempts ended
    launch: LaunchSpec = field(default_factory=LaunchSpec)
    queue: list[QueuedLaunch] = field(default_factory=list)  # launches waiting behind this run
    forced_stop: str = ""  # the run whose stop was forced (a kill at once): its worker reads it here too

    @property
    def stop_forced(self) -> bool:
        """A forced stop was asked of the current run."""
        return bool(self.run_id) and self.forced_stop == self.run_id

    @property
    def state(self) -> State:
        return self.status.state

    def launch_state(self) -> LaunchState:
        """The launch as a retry decision sees it: the launch's own limits win over the
        process's defaults (a bad stored one falls back to them)."""
        options = self.launch.options
        try:
            retries = check_retries(options.get("retries", self.policy.retries))
            backoff = check_backoff(options.get("retryBackoff", self.policy.backoff))
        except InvalidDefinition:
            retries, backoff = self.policy.retries, self.policy.backoff
        return LaunchState(launch_id=self.launch_id or self.run_id, attempt=max(1, self.attempt),
                           retried=self.retried, retries=retries, backoff=backoff,
                           nested=bool(self.parent_run_id), handoffs=self.handoffs,
                           on_shutdown=self.policy.on_shutdown)

    def attempt_label(self) -> str:
        """`attempt 2 of 4` for a launch that retries or was retried, else ""."""
        launch = self.launch_state()
        if launch.attempt <= 1 and launch.retries == 0:
            return ""
        return f"attempt {launch.attempt} of {launch.attempt + max(0, launch.retries - launch.retried)}"

    def to_doc(self) -> Document:
        return {
            SCHEMA_FIELD: SCHEMA_VERSION,
            "scopeId": self.scope_id,
            "processId": self.process_id,
            "name": self.name,
            "warning": self.warning,
            "detailLevel": self.detail_level,
            "special": self.special,
            "pool": self.pool,
            "status": self.status.to_doc(),
            "progress": self.progress.to_doc(),
            "runId": self.run_id,
            "workerId": self.worker_id,
            "parentRunId": self.parent_run_id,
            "policy": self.policy.to_doc(),
            "launchId": self.launch_id,
            "attempt": self.attempt,
            "retried": self.retried,
            "handoffs": self.handoffs,
            "attempts": [attempt.to_doc() for attempt in self.attempts],
            "launch": self.launch.to_doc(),
            "queue": [queued.to_doc() for queued in self.queue],
            "queued": len(self.queue),  # the queue's length: what guarded writes compare
            "forcedStop": self.forced_stop,
        }

    @classmethod
    def from_doc(cls, doc: Document) -> ProcessRecord:
        return cls(
            scope_id=doc["scopeId"],
            process_id=doc["processId"],
            name=str(doc.get("name") or doc["processId"]),
            warning=doc.get("warning") or "",
            detail_level=int(doc.get("detailLevel", 1)),
            special=bool(doc.get("special", False)),
            pool=doc.get("pool") or DEFAULT_POOL,
            status=ProcessStatus.from_doc(doc.get("status")),
            progress=Progress.from_doc(doc.get("progress")),
            run_id=doc.get("runId", ""),
            worker_id=doc.get("workerId", ""),
            parent_run_id=doc.get("parentRunId", ""),
            policy=RunPolicy.from_doc(doc.get("policy")),
            launch_id=doc.get("launchId") or "",
            attempt=int(doc.get("attempt") or 0),
            retried=int(doc.get("retried") or 0),
            handoffs=int(doc.get("handoffs") or 0),
            attempts=[Attempt.from_doc(item) for item in doc.get("attempts") or []],
            launch=LaunchSpec.from_doc(doc.get("launch")),
            queue=[QueuedLaunch.from_doc(item) for item in doc.get("queue") or []],
            forced_stop=str(doc.get("forcedStop") or ""),
        )

    def to_json(self) -> Document:
        """The stable, script-readable form printed by `shards status -o json`."""
        status = self.status
        return {
            "scope": self.scope_id,
            "id": self.process_id,
            "name": self.name,
            "warning": self.warning,
            "detailLevel": self.detail_level,
            "special": self.special,
            "pool": self.pool,
            "state": status.state.value,
            "error": status.error,
            "progress": self.progress.to_doc(),
            "runningSince": iso(status.running_since),
            "doneAt": iso(status.done_at),
            "duration": status.duration,
            "stoppedAt": iso(status.stopped_at),
            "failedAt": iso(status.failed_at),
            "runId": self.run_id,
            "workerId": self.worker_id,
            "retryAt": iso(status.retry_at),
            "startAt": iso(status.start_at),
            "queued": [{"runId": q.run_id, "queuedAt": iso(q.queued_at)} for q in self.queue],
            "launchId": self.launch_id,
            "attempt": self.attempt,
            "retries": self.launch_state().retries,
            "attempts": [{**a.to_doc(), "endedAt": iso(from_ms(a.ended_at))} for a in self.attempts],
        }


@dataclass
class RunRecord:
    """One run of a process, kept in the history after the record moves on."""

    run_id: str
    scope_id: str
    process_id: str
    state: State
    args: Document = field(default_factory=dict)
    parent_run_id: str = ""
    worker_id: str = ""
    error: str = ""
    requested_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration: float | None = None
    launch_id: str = ""  # the launch this run is an attempt of
    attempt: int = 1

    @classmethod
    def from_doc(cls, doc: Document) -> RunRecord:
        return cls(
            run_id=doc.get("runId") or doc["_id"],  # entries written before the run id was the _id
            scope_id=doc["scopeId"],
            process_id=doc["processId"],
            state=State(doc["state"]),
            args=doc.get("args") or {},
            parent_run_id=doc.get("parentRunId", ""),
            worker_id=doc.get("workerId", ""),
            error=doc.get("error", ""),
            requested_at=from_ms(doc.get("requestedAt")),
            started_at=from_ms(doc.get("startedAt")),
            ended_at=from_ms(doc.get("endedAt")),
            duration=doc.get("duration"),
            launch_id=doc.get("launchId") or doc.get("runId") or doc["_id"],
            attempt=int(doc.get("attempt") or 1),
        )

    def to_json(self) -> Document:
        return {
            "runId": self.run_id,
            "launchId": self.launch_id,
            "attempt": self.attempt,
            "scope": self.scope_id,
            "id": self.process_id,
            "state": self.state.value,
            "args": self.args,
            "parentRunId": self.parent_run_id,
            "workerId": self.worker_id,
            "error": self.error,
            "requestedAt": iso(self.requested_at),
            "startedAt": iso(self.started_at),
            "endedAt": iso(self.ended_at),
            "duration": self.duration,
        }


@dataclass
class ScopeRecord:
    """What the last define of a scope produced."""

    scope_id: str
    state: str  # "Defined" or "Failed"
    process_ids: list[str] = field(default_factory=list)
    error: str = ""
    request_id: str = ""
    defined_at: datetime | None = None
    defined_by: str = ""

    @classmethod
    def from_doc(cls, doc: Document) -> ScopeRecord:
        return cls(
            scope_id=doc["_id"],
            state=doc.get("state", "Defined"),
            process_ids=list(doc.get("processIds", [])),
            error=doc.get("error", ""),
            request_id=doc.get("requestId", ""),
            defined_at=from_ms(doc.get("definedAt")),
            defined_by=doc.get("definedBy", ""),
        )

    def to_json(self) -> Document:
        return {
            "scope": self.scope_id,
            "state": self.state,
            "processIds": self.process_ids,
            "error": self.error,
            "definedAt": iso(self.defined_at),
            "definedBy": self.defined_by,
        }


@dataclass
class WorkerRecord:
    """A worker incarnation as the registry sees it. The id is new for every start of a worker
    process; the name is what it was started as (--worker-id), kept across restarts."""

    worker_id: str
    host: str
    pid: int
    concurrency: int
    name: str = ""
    state: str = "Alive"  # Alive, Lost (declared by another), Gone (left), Replaced (restarted)
    beat: int = 0  # heartbeats so far: others judge liveness by watching it move
    lease: float = 15.0  # seconds of an unmoving beat after which others declare it lost
    end_reason: str = ""  # why it is no longer Alive; what its unsettled runs fail with
    catalog: list[str] = field(default_factory=list)
    pool: str = DEFAULT_POOL
    running: int = 0
    heartbeat_at: datetime | None = None

    @classmethod
    def from_doc(cls, doc: Document) -> WorkerRecord:
        return cls(
            worker_id=str(doc["_id"]),
            host=doc.get("host", ""),
            pid=int(doc.get("pid", 0)),
            concurrency=int(doc.get("concurrency", 1)),
            name=doc.get("name", ""),
            state=doc.get("state", "Alive"),
            beat=int(doc.get("beat", 0)),
            lease=float(doc.get("lease", 15.0)),
            end_reason=doc.get("endReason", ""),
            catalog=list(doc.get("catalog", [])),
            pool=doc.get("pool") or DEFAULT_POOL,
            running=int(doc.get("running", 0)),
            heartbeat_at=from_ms(doc.get("heartbeatAt")),
        )

    def to_json(self) -> Document:
        return {
            "id": self.worker_id,
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "concurrency": self.concurrency,
            "running": self.running,
            "catalog": self.catalog,
            "pool": self.pool,
            "heartbeatAt": iso(self.heartbeat_at),
        }
