"""Run history: one document per run, keyed by the run id (`_id`), kept after the process record
moves on. Every write is a point update by `_id`, fast on every server however long the history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError
from shards.records import SCHEMA_FIELD, SCHEMA_VERSION, ProcessStatus, RunRecord, to_ms
from shards.states import FINAL, State

from shards_store.collection import Collection


class RunHistory:
    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    def started(
        self, run_id: str, scope_id: str, process_id: str, worker_id: str, at: datetime,
        *, args: dict[str, Any], requested_at: datetime | None = None, parent_run_id: str = "",
        launch_id: str = "", attempt: int = 1,
    ) -> None:
        """A run started: the history entry of a launch is first written here, with the args
        and the time of its request (a launch costs its client no history write), and which
        attempt of which launch it is."""
        fields: dict[str, Any] = {
            "state": State.RUNNING.value, "workerId": worker_id, "startedAt": to_ms(at),
            "args": args, "parentRunId": parent_run_id, "requestedAt": to_ms(requested_at or at),
            "launchId": launch_id or run_id, "attempt": attempt,
        }
        self._write(run_id, scope_id, process_id, fields, requested_at=at)

    def ended(
        self, run_id: str, scope_id: str, process_id: str, status: ProcessStatus,
        *, args: dict[str, Any] | None = None, requested_at: datetime | None = None,
        parent_run_id: str = "", launch_id: str = "", attempt: int = 1, if_open: bool = False,
    ) -> None:
        """A run ended; the args, request time and attempt come along when it ends without
        having started (its entry is first written here). if_open: leave an entry that says
        how the run ended already (a writer that may be late: its read of the run may be older
        than that end)."""
        fields: dict[str, Any] = {
            "state": status.state.value,
            "endedAt": to_ms(status.ended_at),
            "duration": status.duration,
            "error": status.error,
        }
        if args is not None:
            fields.update(args=args, parentRunId=parent_run_id)
        if requested_at is not None:
            fields["requestedAt"] = to_ms(requested_at)
        self._write(run_id, scope_id, process_id, fields, requested_at=status.ended_at,
                    launch_id=launch_id, attempt=attempt, if_open=if_open)

    def _write(
        self, run_id: str, scope_id: str, process_id: str, fields: dict[str, Any],
        *, requested_at: datetime | None, launch_id: str = "", attempt: int = 1, if_open: bool = False,
    ) -> None:
        """Upsert: every run id a record names has its history entry, whichever write comes
        first (a launching client that died before writing it, a worker ahead of the client)."""
        on_insert: dict[str, Any] = {
            SCHEMA_FIELD: SCHEMA_VERSION,
            "runId": run_id,  # also the _id; kept for databases with the old unique index on it
            "scopeId": scope_id,
            "processId": process_id,
            "args": {},
            "parentRunId": "",
            "state": State.SCHEDULED.value,
            "requestedAt": to_ms(requested_at),
            "workerId": "",
            "error": "",
            "launchId": launch_id or run_id,
            "attempt": attempt,
        }
        on_insert = {key: value for key, value in on_insert.items() if key not in fields}
        update = {"$set": fields, "$setOnInsert": on_insert}
        where: dict[str, Any] = {"_id": run_id}
        if if_open:  # an entry not there yet, or not ended: an ended one makes the upsert collide
            where["state"] = {"$in": [state.value for state in State if state not in FINAL]}
        try:
            self.collection.update_one(where, update, upsert=True)
        except DuplicateKeyError:  # a concurrent upsert (a worker and a reconciler) came first
            self.collection.update_one(where, {"$set": fields})

    def get(self, run_id: str) -> RunRecord | None:
        doc = self.collection.find_one({"_id": run_id})
        return RunRecord.from_doc(doc) if doc else None

    def existing(self, run_ids: list[str]) -> set[str]:
        """Which of these runs the history holds (one round trip)."""
        if not run_ids:
            return set()
        return {doc["_id"] for doc in self.collection.find({"_id": {"$in": sorted(run_ids)}})}

    def executing(self) -> list[RunRecord]:
        """The entries of runs still Running, as far as the history knows."""
        return [RunRecord.from_doc(doc) for doc in self.collection.find({"state": State.RUNNING.value})]

    def of_process(self, scope_id: str, process_id: str, limit: int = 20) -> list[RunRecord]:
        docs = self.collection.find(
            {"scopeId": scope_id, "processId": process_id},
            sort=[("requestedAt", -1)],
            limit=limit,
        )
        return [RunRecord.from_doc(doc) for doc in docs]

    def of_scope_since(self, scope_id: str, since: datetime, limit: int = 500) -> list[RunRecord]:
        """The runs of a scope requested at `since` or later, newest first, at most `limit` (the
        dashboard's timeline; served by the scope_requested index)."""
        docs = self.collection.find(
            {"scopeId": scope_id, "requestedAt": {"$gte": to_ms(since)}},
            sort=[("requestedAt", -1)],
            limit=limit,
        )
        return [RunRecord.from_doc(doc) for doc in docs]
