"""Requests for workers (define, launch, stop) and their document form."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shards.records import DEFAULT_POOL, SCHEMA_FIELD, SCHEMA_VERSION, Document, at_ms, to_ms, utcnow


class RequestKind:
    DEFINE = "define"
    LAUNCH = "launch"
    STOP = "stop"
    FIRE = "fire"  # a schedule's next time has come (shards_store.firing); created at that time


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
    progress: Document = field(default_factory=dict)  # a define's: how far it got (it resumes there)
    created_at: datetime = field(default_factory=utcnow)
    id: Any = None

    def to_doc(self) -> Document:
        doc: Document = {
            SCHEMA_FIELD: SCHEMA_VERSION,
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
        if self.progress:
            doc["progress"] = self.progress
        if self.id is not None:
            doc["_id"] = self.id
        return doc

    @classmethod
    def from_doc(cls, doc: Document) -> Request:
        # A launch queued before pools existed carries none: it is the default pool's.
        no_pool = DEFAULT_POOL if doc["kind"] == RequestKind.LAUNCH else ANY_POOL
        return cls(
            kind=doc["kind"],
            scope_id=doc["scopeId"],
            process_id=doc.get("processId", ""),
            run_id=doc.get("runId", ""),
            args=doc.get("args") or {},
            options=doc.get("options") or {},
            target_worker=doc.get("targetWorker", ANY_WORKER),
            pool=doc.get("pool") or no_pool,
            state=doc.get("state", RequestState.PENDING),
            taken_by=doc.get("takenBy", ""),
            progress=doc.get("progress") or {},
            created_at=at_ms(doc["createdAt"]),
            id=doc.get("_id"),
        )
