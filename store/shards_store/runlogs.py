"""Run logs: one document per run, keyed by the run id (`_id`), holding its last lines.

    {_id: run id, runId (the same), scopeId, processId, lines: [str, ...], dropped: int, updatedAt: epoch ms}

A worker (the only writer of a run's log) appends a batch with `$push` + `$each` + `$slice`, so
the array never holds more than the run keeps, and sets how many earlier lines were dropped.
Every write and read is a point operation by `_id`. Lines are strings: NX-27017 stores embedded
documents pushed this way as JSON text (see the conformance module).

Documents live as long as the run's history entry: the history is not trimmed yet, so neither
are the logs (each is bounded: 1,000 lines / 256 KiB).
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import DuplicateKeyError
from shards.records import SCHEMA_FIELD, SCHEMA_VERSION, now_ms

from shards_store.changes import ChangeFeed
from shards_store.collection import Collection


class RunLogs:
    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    def append(self, run_id: str, scope_id: str, process_id: str, lines: list[str], *,
               keep: int, dropped: int) -> None:
        """Add lines (oldest first) to the run's log, keeping its last `keep` lines in all;
        `dropped`: how many of the run's lines are no longer kept."""
        update: dict[str, Any] = {
            "$set": {"dropped": dropped, "updatedAt": now_ms()},
            "$setOnInsert": {SCHEMA_FIELD: SCHEMA_VERSION, "runId": run_id, "scopeId": scope_id,
                             "processId": process_id},
        }
        if lines:
            update["$push"] = {"lines": {"$each": lines, "$slice": -max(1, keep)}}
        else:
            update["$setOnInsert"]["lines"] = []
        try:
            self.collection.update_one({"_id": run_id}, update, upsert=True)
        except DuplicateKeyError:  # an upsert racing with another: the document exists now
            update.pop("$setOnInsert")
            self.collection.update_one({"_id": run_id}, update)

    def get(self, run_id: str) -> tuple[list[str], int] | None:
        """(lines, dropped) of a run, or None if it has logged nothing."""
        doc = self.collection.find_one({"_id": run_id})
        if doc is None:
            return None
        return [str(line) for line in doc.get("lines") or []], int(doc.get("dropped") or 0)

    def feed(self, run_id: str) -> ChangeFeed:
        """Wakes a follower when the run's log changes. Matched on the looked-up document's runId:
        documentKey is wrong on a test server (see the conformance module's quirks)."""
        match = {"operationType": {"$in": ["insert", "update", "replace"]}, "fullDocument.runId": run_id}
        return ChangeFeed(self.collection, match)
