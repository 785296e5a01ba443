"""Live requests for workers (define, launch, stop). Finished requests leave this collection,
so a claim stays cheap however long the history grows."""

from __future__ import annotations

import uuid

from shards.records import now_ms
from shards.requests import ANY_POOL, ANY_WORKER, Request, RequestKind, RequestState

from shards_store.collection import Collection


def pending_launches_filter(pool: str) -> dict[str, str]:
    """The launches of a pool that no worker has taken yet: what an autoscaler counts (the
    chart's KEDA query is generated from these same names; a test keeps them equal). Launches
    are never addressed to one worker; saying so keeps the query on the claim index."""
    return {"state": RequestState.PENDING, "kind": RequestKind.LAUNCH, "targetWorker": ANY_WORKER,
            "pool": pool}


class RequestQueue:
    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    def submit(self, request: Request) -> Request:
        # A string id chosen here: change events name it the same on every server (the embedded
        # server mangles ObjectIds and numbers in events), and workers claim by it.
        request.id = request.id or uuid.uuid4().hex
        self.collection.insert_one(request.to_doc())
        return request

    def claim(
        self, kind: str, worker_id: str, *, addressed: bool = False, pool: str = ANY_POOL
    ) -> Request | None:
        """Take the oldest pending request of a kind, exactly once across all workers.

        addressed=True claims only requests sent to this worker (stops reach the worker that
        runs the process); otherwise only requests any worker may take. Launches are claimed
        only by workers of their pool; other requests belong to no pool.
        """
        query: dict[str, object] = {
            "state": RequestState.PENDING,
            "kind": kind,
            "targetWorker": worker_id if addressed else ANY_WORKER,
            "pool": pool if kind == RequestKind.LAUNCH else ANY_POOL,
            # A retry is queued with the time it may start as its creation time: on the claim
            # index, after the equality fields, as a range.
            "createdAt": {"$lte": now_ms()},
        }
        update = {
            "$set": {"state": RequestState.TAKEN, "takenBy": worker_id, "takenAt": now_ms()}
        }
        doc = self.collection.find_one_and_update(query, update, sort=[("createdAt", 1)])
        return Request.from_doc(doc) if doc else None

    def claim_id(self, request_id: object, worker_id: str, pool: str | None = None) -> Request | None:
        """Take one request named by a change event, if it is still pending (and, given a pool,
        a launch of that pool): one round trip by `_id`, exactly once across all workers."""
        update = {"$set": {"state": RequestState.TAKEN, "takenBy": worker_id, "takenAt": now_ms()}}
        query = {"_id": request_id, "state": RequestState.PENDING, "createdAt": {"$lte": now_ms()}}
        if pool is not None:
            query["pool"] = pool
        doc = self.collection.find_one_and_update(query, update)
        return Request.from_doc(doc) if doc else None

    def get(self, request_id: object) -> Request | None:
        doc = self.collection.find_one({"_id": request_id})
        return Request.from_doc(doc) if doc else None

    def note_progress(self, request: Request, worker_id: str, progress: dict[str, object]) -> bool:
        """Record how far a taken request got (a define resumes there); False if this worker
        no longer holds it (released to another, or withdrawn)."""
        query = {"_id": request.id, "state": RequestState.TAKEN, "takenBy": worker_id}
        return self.collection.update_one(query, {"$set": {"progress": progress}}) > 0

    def complete(self, request: Request) -> None:
        self.collection.delete_one({"_id": request.id})

    def withdraw_launch(self, run_id: str) -> Request | None:
        """Remove a launch nobody has taken yet; None if a worker already took it."""
        doc = self.collection.find_one_and_delete({"runId": run_id, "state": RequestState.PENDING})
        return Request.from_doc(doc) if doc else None

    def withdraw(self, request_id: object) -> bool:
        """Remove a request nobody has taken yet; False if there is none (taken, or gone)."""
        return self.collection.delete_one({"_id": request_id, "state": RequestState.PENDING}) > 0

    def for_runs(self, run_ids: list[str]) -> list[Request]:
        """The live requests (launches and stops) of these runs."""
        if not run_ids:
            return []
        return [Request.from_doc(doc) for doc in self.collection.find({"runId": {"$in": sorted(run_ids)}})]

    def taken_by(self, worker_id: str) -> list[Request]:
        docs = self.collection.find({"takenBy": worker_id, "state": RequestState.TAKEN})
        return [Request.from_doc(doc) for doc in docs]

    def release(self, request: Request) -> None:
        """Put a taken request back for any worker (its taker was lost before finishing it)."""
        self.collection.update_one(
            {"_id": request.id},
            {"$set": {"state": RequestState.PENDING, "takenBy": "", "targetWorker": ANY_WORKER}},
        )

    def drop_addressed_to(self, worker_id: str) -> int:
        """Stops sent to a lost worker have nothing left to stop."""
        return self.collection.delete_many(
            {"state": RequestState.PENDING, "kind": "stop", "targetWorker": worker_id}
        )

    def upcoming(self, pool: str, within: float) -> list[Request]:
        """The launches of a pool and the schedules' fires that may be taken within `within`
        seconds from now, not before (on the claim index)."""
        now = now_ms()
        query = {"state": RequestState.PENDING, "kind": {"$in": [RequestKind.LAUNCH, RequestKind.FIRE]},
                 "targetWorker": ANY_WORKER, "pool": {"$in": [pool, ANY_POOL]},
                 "createdAt": {"$gt": now, "$lte": now + int(within * 1000)}}
        return [Request.from_doc(doc) for doc in self.collection.find(query)]

    def pending_launches(self) -> dict[str, int]:
        """Launches no worker has taken yet, per pool (one round trip, on the claim index)."""
        query = {"state": RequestState.PENDING, "kind": RequestKind.LAUNCH, "targetWorker": ANY_WORKER}
        return {str(pool): count for pool, count in self.collection.count_by(query, "pool").items()}

    def pending(self, kind: str, target: str = ANY_WORKER) -> int:
        return self.collection.count(
            {"state": RequestState.PENDING, "kind": kind, "targetWorker": target}
        )
