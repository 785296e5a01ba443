"""Process records: one per (scope, process id), moved between states only by guarded writes."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from shards.records import (
    DEFAULT_POOL,
    LaunchSpec,
    ProcessRecord,
    ProcessStatus,
    Progress,
    QueuedLaunch,
    iso,
    to_ms,
    utcnow,
)
from shards.retries import Attempt, RetryPlan, kept
from shards.states import ACTIVE, EXECUTING, LAUNCHABLE, RETRY_FROM, State, sources_of

from shards_store.collection import Collection


def _key(scope_id: str, process_id: str) -> dict[str, Any]:
    return {"scopeId": scope_id, "processId": process_id}


def _definition(scope_id: str, process_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The upsert that creates a record with these definition fields or refreshes them, keeping
    status and progress."""
    fresh = ProcessRecord(scope_id=scope_id, process_id=process_id, name=fields["name"])
    on_insert = {k: v for k, v in fresh.to_doc().items() if k not in fields and k not in _key("", "")}
    return {"$set": fields, "$setOnInsert": on_insert}


def _with_set(doc: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The document as a `$set` of these (dotted) fields leaves it, computed here: a write
    returns one version of the document, and the caller may need both."""
    result = copy.deepcopy(doc)
    for path, value in fields.items():
        *parents, leaf = path.split(".")
        target = result
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return result


ATTEMPT_FIELDS = ("launchId", "attempt", "retried", "handoffs", "attempts", "launch")


def _first_attempt(run_id: str, launch: LaunchSpec | None) -> dict[str, Any]:
    """The fields a launch starts its attempts with."""
    return {"launchId": run_id, "attempt": 1, "retried": 0, "handoffs": 0, "attempts": [],
            "launch": (launch or LaunchSpec()).to_doc()}


def _queue_length(length: int) -> Any:
    """A guard on the queue's length; records written before queues have no such field."""
    return {"$in": [0, None]} if length == 0 else length


def _scheduled_fields(run_id: str, launch: LaunchSpec, start_at: datetime | None = None) -> dict[str, Any]:
    """What a record holds once a new launch is Scheduled on it."""
    return {
        "status.state": State.SCHEDULED.value,
        "runId": run_id,
        "workerId": "",
        "parentRunId": "",
        "status.error": "",
        "status.doneAt": None,
        "status.duration": None,
        "status.stoppedAt": None,
        "status.failedAt": None,
        "status.retryAt": None,
        "status.startAt": to_ms(start_at),
        "progress": Progress(f"Starts at {iso(start_at)}" if start_at else "Scheduled", 0.0).to_doc(),
        **_first_attempt(run_id, launch),
    }


def _states(states: list[State] | frozenset[State]) -> dict[str, list[str]]:
    return {"$in": sorted(s.value for s in states)}


class ProcessRecords:
    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    def get(self, scope_id: str, process_id: str) -> ProcessRecord | None:
        doc = self.collection.find_one(_key(scope_id, process_id))
        return ProcessRecord.from_doc(doc) if doc else None

    def in_scope(self, scope_id: str) -> list[ProcessRecord]:
        docs = self.collection.find({"scopeId": scope_id}, sort=[("processId", 1)])
        return [ProcessRecord.from_doc(doc) for doc in docs]

    def executing_on(self, worker_id: str, states: frozenset[State] = EXECUTING) -> list[ProcessRecord]:
        docs = self.collection.find({"workerId": worker_id, "status.state": _states(states)})
        return [ProcessRecord.from_doc(doc) for doc in docs]

    def executing_per_worker(self) -> dict[str, int]:
        """How many runs execute (Running, StopRequested, Stopping) per worker id in `workerId`
        ("": a stop asked before any worker started the run). One aggregate round trip on the
        state index: the server reads the executing records, one small document per worker
        comes back."""
        counts = self.collection.count_by({"status.state": _states(EXECUTING)}, "workerId")
        return {str(worker or ""): n for worker, n in counts.items()}

    def executing_per_pool(self, worker_ids: list[str]) -> dict[str, int]:
        """The runs executing on these workers, per pool of their process (one aggregate round
        trip on the worker index)."""
        query = {"workerId": {"$in": sorted(worker_ids)}, "status.state": _states(EXECUTING)}
        per_pool: dict[str, int] = {}
        for value, count in self.collection.count_by(query, "pool").items():
            pool = str(value or DEFAULT_POOL)  # records an older release wrote name no pool
            per_pool[pool] = per_pool.get(pool, 0) + count
        return per_pool

    def active(self) -> list[ProcessRecord]:
        """Every active record of every scope: what the reconciler checks for an owner."""
        docs = self.collection.find({"status.state": _states(ACTIVE)})
        return [ProcessRecord.from_doc(doc) for doc in docs]

    def define(self, scope_id: str, process_id: str, fields: dict[str, Any]) -> None:
        """Create the record or refresh its definition fields; status and progress are kept."""
        self.collection.update_one(_key(scope_id, process_id), _definition(scope_id, process_id, fields),
                                   upsert=True)

    def define_many(self, scope_id: str, definitions: list[tuple[str, dict[str, Any]]]) -> int:
        """define() for many processes: one read of those that exist, then one unordered bulk
        write of the missing (inserted) and the changed (upserted); unchanged records are not
        written. Idempotent: written again, a batch changes nothing. Returns how many records
        it created."""
        if not definitions:
            return 0
        ids = sorted(process_id for process_id, _ in definitions)
        existing = {doc["processId"]: doc
                    for doc in self.collection.find({"scopeId": scope_id, "processId": {"$in": ids}})}
        inserts, upserts = [], []
        for process_id, fields in definitions:
            key, update = _key(scope_id, process_id), _definition(scope_id, process_id, fields)
            found = existing.get(process_id)
            if found is None:
                inserts.append(({**key, **update["$setOnInsert"], **fields}, key, update))
            elif any(found.get(name) != value for name, value in fields.items()):
                upserts.append((key, update))
        return self.collection.write_many(inserts, upserts)

    def remove_idle(self, scope_id: str, keep: list[str] | None = None) -> int:
        """Delete the scope's records that are not active (all of them, or those not in keep).

        The state is checked again in the delete itself, so a process launched meanwhile stays.
        """
        kept = None if keep is None else set(keep)
        doomed = [
            record.process_id
            for record in self.in_scope(scope_id)
            if record.state in LAUNCHABLE and (kept is None or record.process_id not in kept)
        ]
        if not doomed:
            return 0
        return self.collection.delete_many(
            {"scopeId": scope_id, "processId": {"$in": doomed}, "status.state": _states(LAUNCHABLE)}
        )

    def move(
        self,
        scope_id: str,
        process_id: str,
        target: State,
        *,
        run_id: str | None = None,
        fields: dict[str, Any] | None = None,
        sources: frozenset[State] | None = None,
    ) -> ProcessRecord | None:
        """Atomically enter `target` if the transition is allowed (and the run matches);
        `sources` narrows the allowed source states further.

        Returns the record after the write, or None when the guard did not hold.
        """
        allowed = sources_of(target) if sources is None else [s for s in sources_of(target) if s in sources]
        query: dict[str, Any] = {**_key(scope_id, process_id), "status.state": _states(allowed)}
        if run_id is not None:
            query["runId"] = run_id
        fields = dict(fields or {})
        if "status" in fields:  # setting "status" and "status.state" together is a conflict
            fields["status"] = {**fields["status"], "state": target.value}
        else:
            fields["status.state"] = target.value
        update = {"$set": fields}
        doc = self.collection.find_one_and_update(query, update)
        return ProcessRecord.from_doc(doc) if doc else None

    def force_stop(self, seen: ProcessRecord) -> ProcessRecord | None:
        """Mark the stop of a run that is stopping already as forced; None when the run moved on
        (ended, or another run)."""
        query = {**_key(seen.scope_id, seen.process_id), "runId": seen.run_id,
                 "status.state": _states([State.STOP_REQUESTED, State.STOPPING])}
        doc = self.collection.find_one_and_update(query, {"$set": {"forcedStop": seen.run_id}})
        return ProcessRecord.from_doc(doc) if doc else None

    def schedule(
        self, scope_id: str, process_id: str, run_id: str, *, confirmed: bool = True,
        launch: LaunchSpec | None = None, start_at: datetime | None = None,
    ) -> tuple[ProcessRecord, ProcessRecord] | None:
        """Enter Scheduled for a new run in one guarded write; confirmed=False schedules only a
        process without a warning; start_at: a delayed launch, shown on the record. Returns (the
        record before, the record after), or None when the guard did not hold (unknown, active,
        or needing confirmation: the caller reads why)."""
        query: dict[str, Any] = {
            **_key(scope_id, process_id), "status.state": _states(sources_of(State.SCHEDULED))
        }
        if not confirmed:
            query["warning"] = ""
        fields = _scheduled_fields(run_id, launch or LaunchSpec(), start_at)
        before = self.collection.find_one_and_update(query, {"$set": fields}, before=True)
        if before is None:
            return None
        return ProcessRecord.from_doc(before), ProcessRecord.from_doc(_with_set(before, fields))

    def enqueue(self, seen: ProcessRecord, queued: QueuedLaunch) -> ProcessRecord | None:
        """Add a launch behind the active run, if the record is still as seen (the same run and
        queue); None when it moved (the caller reads it again)."""
        query = {**_key(seen.scope_id, seen.process_id), "runId": seen.run_id,
                 "status.state": _states(ACTIVE), "queued": _queue_length(len(seen.queue))}
        queue = [*seen.queue, queued]
        doc = self.collection.find_one_and_update(
            query, {"$set": {"queue": [q.to_doc() for q in queue], "queued": len(queue)}})
        return ProcessRecord.from_doc(doc) if doc else None

    def schedule_queued(self, seen: ProcessRecord) -> ProcessRecord | None:
        """Schedule the first queued launch of a record whose run has ended, if it is still as
        seen; None when it moved (another promoter came first, or a launch)."""
        if not seen.queue:
            return None
        head, rest = seen.queue[0], seen.queue[1:]
        query = {**_key(seen.scope_id, seen.process_id), "runId": seen.run_id,
                 "status.state": _states(LAUNCHABLE), "queued": len(seen.queue)}
        fields = {**_scheduled_fields(head.run_id, LaunchSpec(head.args, head.options)),
                  "queue": [q.to_doc() for q in rest], "queued": len(rest)}
        doc = self.collection.find_one_and_update(query, {"$set": fields})
        return ProcessRecord.from_doc(doc) if doc else None

    def unqueue(self, seen: ProcessRecord, run_id: str) -> ProcessRecord | None:
        """Take one queued launch out (a stop of it), if the queue is still as seen."""
        rest = [q for q in seen.queue if q.run_id != run_id]
        query = {**_key(seen.scope_id, seen.process_id), "runId": seen.run_id,
                 "queued": _queue_length(len(seen.queue))}
        doc = self.collection.find_one_and_update(
            query, {"$set": {"queue": [q.to_doc() for q in rest], "queued": len(rest)}})
        return ProcessRecord.from_doc(doc) if doc else None

    def ended_with_queue(self) -> list[ProcessRecord]:
        """Records whose run ended while launches wait behind it: normally none for long (the
        writer of the end schedules the next; a reconciler finishes that if it died)."""
        docs = self.collection.find({"queued": {"$gt": 0}, "status.state": _states(LAUNCHABLE)})
        return [ProcessRecord.from_doc(doc) for doc in docs]

    def unschedule(self, previous: ProcessRecord, run_id: str) -> bool:
        """Undo a schedule whose launch could not be queued: the record gets back exactly what it
        had (state, run, progress), if it is still Scheduled for that run."""
        query = {**_key(previous.scope_id, previous.process_id), "runId": run_id,
                 "status.state": State.SCHEDULED.value}
        fields = {key: value for key, value in previous.to_doc().items()
                  if key in ("status", "progress", "runId", "workerId", "parentRunId", *ATTEMPT_FIELDS)}
        return self.collection.update_one(query, {"$set": fields}) > 0

    def start(
        self, scope_id: str, process_id: str, run_id: str, *, worker_id: str, parent_run_id: str = ""
    ) -> ProcessRecord | None:
        """Enter Running for run_id in one guarded write: a launch from Scheduled (its own run),
        a child from Idle or an end state (never taking over a launch that is scheduled)."""
        status = ProcessStatus(state=State.RUNNING, running_since=utcnow())
        fields = {
            "runId": run_id,
            "workerId": worker_id,
            "parentRunId": parent_run_id,
            "status": status.to_doc(),
            "progress": Progress("Starting...", 0.0).to_doc(),
        }
        if parent_run_id:  # a child run is a launch of its own, of one attempt
            fields.update(_first_attempt(run_id, LaunchSpec()))
        return self.move(
            scope_id,
            process_id,
            State.RUNNING,
            run_id=None if parent_run_id else run_id,
            sources=LAUNCHABLE if parent_run_id else frozenset({State.SCHEDULED}),
            fields=fields,
        )

    def retry(self, record: ProcessRecord, ended: ProcessStatus, plan: RetryPlan, retry_at: datetime,
              progress: Progress) -> ProcessRecord | None:
        """Schedule the next attempt of a launch whose attempt ended (Running, for that run):
        the record names the new run and keeps how the attempt ended."""
        attempt = Attempt(record.attempt, record.run_id, ended.state, ended.error, to_ms(ended.ended_at))
        waiting = ProcessStatus(state=State.SCHEDULED, retry_at=retry_at)
        fields = {
            "runId": plan.run_id,
            "workerId": "",
            "parentRunId": "",
            "status": waiting.to_doc(),
            "progress": progress.to_doc(),
            "attempt": plan.attempt,
            "retried": plan.retried,
            "handoffs": plan.handoffs,
            "attempts": [a.to_doc() for a in kept(record.attempts, attempt)],
        }
        query = {**_key(record.scope_id, record.process_id), "runId": record.run_id,
                 "status.state": RETRY_FROM.value}
        doc = self.collection.find_one_and_update(query, {"$set": fields})
        return ProcessRecord.from_doc(doc) if doc else None

    def write_progress(self, scope_id: str, process_id: str, run_id: str, progress: Progress) -> bool:
        query = {
            **_key(scope_id, process_id),
            "runId": run_id,
            "status.state": _states(EXECUTING),
        }
        return self.collection.update_one(query, {"$set": {"progress": progress.to_doc()}}) > 0

    def finish(
        self,
        scope_id: str,
        process_id: str,
        run_id: str,
        status: ProcessStatus,
        progress: Progress,
        sources: frozenset[State] | None = None,
    ) -> ProcessRecord | None:
        """Record the end of a run (Done, Stopped or Failed) and release the worker."""
        fields = {"status": status.to_doc(), "progress": progress.to_doc(), "workerId": ""}
        return self.move(scope_id, process_id, status.state, run_id=run_id, fields=fields, sources=sources)

    def dismiss(self, scope_id: str, process_id: str) -> ProcessRecord | None:
        fields = {
            "status.error": "",
            "status.failedAt": None,
            "status.stoppedAt": None,
            "progress": Progress().to_doc(),
        }
        return self.move(scope_id, process_id, State.IDLE, fields=fields)
