"""Run history: one document per run, kept after the process record moves on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shards.records import ProcessStatus, RunRecord, to_ms
from shards.states import State

from shards_store.collection import Collection


class RunHistory:
    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    def requested(
        self,
        run_id: str,
        scope_id: str,
        process_id: str,
        args: dict[str, Any],
        at: datetime,
        parent_run_id: str = "",
    ) -> None:
        doc = {
            "scopeId": scope_id,
            "processId": process_id,
            "args": args,
            "parentRunId": parent_run_id,
            "state": State.SCHEDULED.value,
            "requestedAt": to_ms(at),
            "workerId": "",
            "error": "",
        }
        self.collection.update_one({"runId": run_id}, {"$setOnInsert": doc}, upsert=True)

    def started(self, run_id: str, worker_id: str, at: datetime) -> None:
        fields = {"state": State.RUNNING.value, "workerId": worker_id, "startedAt": to_ms(at)}
        self.collection.update_one({"runId": run_id}, {"$set": fields})

    def ended(self, run_id: str, status: ProcessStatus) -> None:
        fields = {
            "state": status.state.value,
            "endedAt": to_ms(status.ended_at),
            "duration": status.duration,
            "error": status.error,
        }
        self.collection.update_one({"runId": run_id}, {"$set": fields})

    def of_process(self, scope_id: str, process_id: str, limit: int = 20) -> list[RunRecord]:
        docs = self.collection.find(
            {"scopeId": scope_id, "processId": process_id},
            sort=[("requestedAt", -1)],
            limit=limit,
        )
        return [RunRecord.from_doc(doc) for doc in docs]
