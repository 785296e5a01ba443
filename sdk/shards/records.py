"""Plain records of what Shards stores, and their document form (camelCase, as the seed had)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shards.states import State

Document = dict[str, Any]
DEFAULT_POOL = "default"  # the pool of a process that names none, and of a worker started without --pool
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    """Now, in UTC, at the millisecond precision MongoDB keeps."""
    now = datetime.now(UTC)
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

    def to_doc(self) -> Document:
        return {
            "state": self.state.value,
            "error": self.error,
            "runningSince": to_ms(self.running_since),
            "doneAt": to_ms(self.done_at),
            "duration": self.duration,
            "stoppedAt": to_ms(self.stopped_at),
            "failedAt": to_ms(self.failed_at),
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
            duration=round((at - running_since).total_seconds(), 3) if running_since else None,
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
        )


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

    @property
    def state(self) -> State:
        return self.status.state

    def to_doc(self) -> Document:
        return {
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
        }


class RequestKind:
    DEFINE = "define"
    LAUNCH = "launch"
    STOP = "stop"


class RequestState:
    PENDING = "Pending"
    TAKEN = "Taken"


ANY_WORKER = ""  # targetWorker of a request that any worker may claim
ANY_POOL = ""  # pool of a request that is not a launch (defines and stops are for any pool)


@dataclass
class Request:
    """A live request for workers. Finished requests leave this collection."""

    kind: str
    scope_id: str
    process_id: str = ""
    run_id: str = ""
    args: Document = field(default_factory=dict)
    options: Document = field(default_factory=dict)
    target_worker: str = ANY_WORKER
    pool: str = ANY_POOL  # a launch's: only workers of this pool claim it
    state: str = RequestState.PENDING
    taken_by: str = ""
    created_at: datetime = field(default_factory=utcnow)
    id: Any = None

    def to_doc(self) -> Document:
        doc: Document = {
            "kind": self.kind,
            "scopeId": self.scope_id,
            "processId": self.process_id,
            "runId": self.run_id,
            "args": self.args,
            "options": self.options,
            "targetWorker": self.target_worker,
            "pool": self.pool,
            "state": self.state,
            "takenBy": self.taken_by,
            "createdAt": to_ms(self.created_at),
        }
        if self.id is not None:
            doc["_id"] = self.id
        return doc

    @classmethod
    def from_doc(cls, doc: Document) -> Request:
        return cls(
            kind=doc["kind"],
            scope_id=doc["scopeId"],
            process_id=doc.get("processId", ""),
            run_id=doc.get("runId", ""),
            args=doc.get("args") or {},
            options=doc.get("options") or {},
            target_worker=doc.get("targetWorker", ANY_WORKER),
            pool=doc.get("pool", ANY_POOL),
            state=doc.get("state", RequestState.PENDING),
            taken_by=doc.get("takenBy", ""),
            created_at=at_ms(doc["createdAt"]),
            id=doc.get("_id"),
        )


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
        )

    def to_json(self) -> Document:
        return {
            "runId": self.run_id,
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
