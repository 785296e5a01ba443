"""The registry of worker incarnations: who they are, what they can run, whether they live.

Each start of a worker process registers a new incarnation with an id of its own, so a restart
under the same name never revives the runs of the one before. Liveness is a heartbeat counter
that only its owner moves; others watch it (see shards.ownership), never compare clocks.
"""

from __future__ import annotations

import uuid

from shards.records import DEFAULT_POOL, SCHEMA_FIELD, SCHEMA_VERSION, WorkerRecord, now_ms

from shards_store.collection import Collection

ALIVE, LOST, GONE, REPLACED = "Alive", "Lost", "Gone", "Replaced"


class WorkerRegistry:
    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    def register(
        self, name: str, *, host: str, pid: int, catalog: list[str], concurrency: int, lease: float,
        pool: str = DEFAULT_POOL,
    ) -> str:
        """Register a new incarnation of the worker called `name`; returns its id."""
        worker_id = f"{name}-{uuid.uuid4().hex[:6]}"
        now = now_ms()
        self.collection.insert_one({
            "_id": worker_id,
            SCHEMA_FIELD: SCHEMA_VERSION,
            "name": name,
            "host": host,
            "pid": pid,
            "catalog": catalog,
            "pool": pool,
            "concurrency": concurrency,
            "lease": lease,  # observers judge its silence by its own lease
            "startedAt": now,
            "heartbeatAt": now,  # for people; liveness is judged by `beat`
            "beat": 0,
            "running": 0,
            "state": ALIVE,
            "endReason": "",
        })
        return worker_id

    def heartbeat(self, worker_id: str, running: int) -> bool:
        """Renew the lease; False if this incarnation is no longer Alive (it must stop)."""
        update = {"$inc": {"beat": 1}, "$set": {"heartbeatAt": now_ms(), "running": running}}
        return self.collection.update_one({"_id": worker_id, "state": ALIVE}, update) > 0

    def retire(self, worker_id: str, state: str, reason: str, *, beat: int | None = None) -> bool:
        """Move an Alive incarnation to Lost, Gone or Replaced, with the reason its unsettled
        runs end with. Given `beat`, only if the counter still has that value: exactly one of
        several reapers wins, and never against a heartbeat that just landed."""
        query: dict[str, object] = {"_id": worker_id, "state": ALIVE}
        if beat is not None:
            query["beat"] = beat
        fields = {"state": state, "endReason": reason, "endedAt": now_ms()}
        return self.collection.update_one(query, {"$set": fields}) > 0

    def alive(self) -> list[WorkerRecord]:
        docs = self.collection.find({"state": ALIVE}, sort=[("heartbeatAt", 1)])
        return [WorkerRecord.from_doc(doc) for doc in docs]

    def named(self, name: str) -> list[WorkerRecord]:
        """The Alive incarnations of one worker name (a restart finds its predecessor here)."""
        return [WorkerRecord.from_doc(doc) for doc in self.collection.find({"name": name, "state": ALIVE})]

    def get(self, worker_id: str) -> WorkerRecord | None:
        doc = self.collection.find_one({"_id": worker_id})
        return WorkerRecord.from_doc(doc) if doc else None
