"""The registry of live workers: who they are, what they can run, when they were last seen."""

from __future__ import annotations

from datetime import datetime

from shards.records import WorkerRecord, now_ms, to_ms

from shards_store.collection import Collection

ALIVE, LOST, GONE = "Alive", "Lost", "Gone"


class WorkerRegistry:
    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    def register(
        self, worker_id: str, *, host: str, pid: int, catalog: list[str], concurrency: int
    ) -> None:
        now = now_ms()
        doc = {
            "host": host,
            "pid": pid,
            "catalog": catalog,
            "concurrency": concurrency,
            "startedAt": now,
            "heartbeatAt": now,
            "state": ALIVE,
        }
        self.collection.update_one({"_id": worker_id}, {"$set": doc}, upsert=True)

    def heartbeat(self, worker_id: str, running: int) -> bool:
        """Renew the lease; False if this worker was already declared lost (it must stop)."""
        fields = {"heartbeatAt": now_ms(), "running": running}
        return self.collection.update_one({"_id": worker_id, "state": ALIVE}, {"$set": fields}) > 0

    def deregister(self, worker_id: str) -> None:
        self.collection.update_one({"_id": worker_id}, {"$set": {"state": GONE}})

    def claim_lost(self, cutoff: datetime) -> str | None:
        """Declare one silent worker lost; exactly one reaper wins each."""
        doc = self.collection.find_one_and_update(
            {"state": ALIVE, "heartbeatAt": {"$lt": to_ms(cutoff)}},
            {"$set": {"state": LOST, "lostAt": now_ms()}},
            sort=[("heartbeatAt", 1)],
        )
        return str(doc["_id"]) if doc else None

    def alive(self) -> list[WorkerRecord]:
        docs = self.collection.find({"state": ALIVE}, sort=[("heartbeatAt", 1)])
        return [WorkerRecord.from_doc(doc) for doc in docs]
