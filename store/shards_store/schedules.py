"""Schedules as stored: one document per schedule (`_id` "scope/name"), changed only by writes
guarded on its generation (spec and pause changes) and on the nominal time it waits for; and the
fire requests that wake a worker at each next time (shards_store.firing acts on them)."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError
from shards.errors import ShardsError
from shards.records import to_ms, utcnow
from shards.requests import ANY_POOL, ANY_WORKER, Request, RequestKind
from shards.schedules import Action, NextFire, Outcome, ScheduleRecord, ScheduleSpec, first_next, kept_actions

from shards_store.collection import Collection
from shards_store.requests import RequestQueue


class ScheduleExists(ShardsError):
    pass


def fire_request_id(record: ScheduleRecord) -> str:
    """One fire request per schedule, generation and nominal time: arming again adds nothing."""
    assert record.next is not None
    return f"fire/{record.key}/{record.generation}/{record.next.label}"


class ScheduleBook:
    def __init__(self, collection: Collection, requests: RequestQueue) -> None:
        self.collection = collection
        self.requests = requests

    def get(self, scope_id: str, name: str) -> ScheduleRecord | None:
        doc = self.collection.find_one({"_id": f"{scope_id}/{name}"})
        return ScheduleRecord.from_doc(doc) if doc else None

    def get_key(self, key: str) -> ScheduleRecord | None:
        doc = self.collection.find_one({"_id": key})
        return ScheduleRecord.from_doc(doc) if doc else None

    def all(self, scope_id: str | None = None) -> list[ScheduleRecord]:
        query = {} if scope_id is None else {"scopeId": scope_id}
        docs = sorted(self.collection.find(query), key=lambda doc: str(doc["_id"]))
        return [ScheduleRecord.from_doc(doc) for doc in docs]

    def create(self, spec: ScheduleSpec, *, paused: bool = False, note: str = "") -> ScheduleRecord:
        now = utcnow()
        record = ScheduleRecord(
            spec=spec, paused=paused, note=note, created_at=now, updated_at=now, next=first_next(spec, now)
        )
        try:
            self.collection.insert_one(record.to_doc())
        except DuplicateKeyError:
            raise ScheduleExists(
                f"schedule {spec.name!r} exists in scope {spec.scope_id!r} "
                "(change it with apply, or delete it first)"
            ) from None
        self.arm(record)
        return record

    def change(
        self,
        seen: ScheduleRecord,
        *,
        spec: ScheduleSpec | None = None,
        paused: bool | None = None,
        note: str | None = None,
    ) -> ScheduleRecord | None:
        """A new spec or pause state: a new generation, whose next time counts from now (times
        that passed while paused are not fired). None: changed meanwhile by someone else."""
        now = utcnow()
        changed = replace(
            seen,
            spec=spec or seen.spec,
            generation=seen.generation + 1,
            paused=seen.paused if paused is None else paused,
            note=seen.note if note is None else note,
            updated_at=now,
        )
        # Active after the change: its next time counts from now (a fire may have moved `next`
        # since it was read: the generation guards that, not `next`). Paused: `next` stays as is.
        keys = ["spec", "generation", "paused", "note", "nextFireAt", "updatedAt"]
        if not changed.paused:
            changed.next = first_next(changed.spec, now)
            keys.append("next")
        doc = changed.to_doc()
        fields = {k: doc[k] for k in keys}
        if (
            self.collection.update_one({"_id": seen.key, "generation": seen.generation}, {"$set": fields})
            == 0
        ):
            return None
        self.arm(changed)
        return changed

    def advance(
        self,
        seen: ScheduleRecord,
        following: NextFire | None,
        actions: list[Action],
        *,
        skipped: int = 0,
        missed: int = 0,
        launched: int = 0,
    ) -> ScheduleRecord | None:
        """Record what the fire of `seen.next` did and move to the following time, if the
        schedule still waits for that time under the same generation (else another worker did,
        or the schedule changed: nothing is written). The following time is armed first: a
        schedule never waits for a time no request will wake anyone for (an arming for a time
        that does not come to pass is completed as stale when claimed)."""
        assert seen.next is not None
        after = replace(
            seen,
            next=following,
            fired=seen.fired + sum(a.outcome is not Outcome.MISSED for a in actions),
            launched=seen.launched + launched,
            skipped=seen.skipped + skipped,
            missed=seen.missed + missed,
            actions=kept_actions(seen.actions, actions),
            updated_at=utcnow(),
        )
        doc = after.to_doc()
        fields = {
            k: doc[k]
            for k in ("next", "nextFireAt", "fired", "launched", "skipped", "missed", "actions", "updatedAt")
        }
        self.arm(after)
        query = {"_id": seen.key, "generation": seen.generation, "next.label": seen.next.label}
        if self.collection.update_one(query, {"$set": fields}) == 0:
            return None
        return after

    def note_actions(
        self, seen: ScheduleRecord, actions: list[Action], *, skipped: int = 0, launched: int = 0
    ) -> bool:
        """Record actions that do not move the schedule (a trigger, a backfill), guarded on the
        generation; False if it changed (the caller reads it again)."""
        fields: dict[str, Any] = {
            "actions": [a.to_doc() for a in kept_actions(seen.actions, actions)],
            "updatedAt": to_ms(utcnow()),
        }
        update = {"$set": fields, "$inc": {"fired": len(actions), "skipped": skipped, "launched": launched}}
        query = {"_id": seen.key, "generation": seen.generation, "fired": seen.fired}
        return self.collection.update_one(query, update) > 0

    def pause_after_failure(self, key: str, note: str) -> bool:
        """pauseOnFailure: a run of the schedule ended Failed after its retries."""
        seen = self.get_key(key)
        if seen is None or seen.paused or not seen.spec.pause_on_failure:
            return False
        return self.change(seen, paused=True, note=note) is not None

    def delete(self, record: ScheduleRecord) -> bool:
        """Remove the schedule and its pending fire (one already taken finds nothing to do)."""
        deleted = self.collection.delete_one({"_id": record.key}) > 0
        self.disarm(record)
        return deleted

    def disarm(self, record: ScheduleRecord) -> None:
        """Withdraw the pending fire request of the schedule's next time, as `record` had it."""
        if record.next is not None:
            self.requests.withdraw(fire_request_id(record))

    def overdue(self, before: datetime, limit: int = 100) -> list[ScheduleRecord]:
        """Schedules whose next fire is older than `before`: normally none (a fire request wakes a
        worker at each); left so, their fire request was lost, and the reconciler arms it again."""
        docs = self.collection.find(
            {"nextFireAt": {"$lt": to_ms(before)}}, sort=[("nextFireAt", 1)], limit=limit
        )
        return [ScheduleRecord.from_doc(doc) for doc in docs]

    def arm(self, record: ScheduleRecord) -> bool:
        """The fire request of the schedule's next time (a worker claims it then); True if new."""
        if record.next is None or record.paused:
            return False
        request = Request(
            kind=RequestKind.FIRE,
            scope_id=record.spec.scope_id,
            process_id=record.spec.process_id,
            options={"schedule": record.key, "generation": record.generation, "label": record.next.label},
            target_worker=ANY_WORKER,
            pool=ANY_POOL,
            created_at=record.next.fire_at,
            id=fire_request_id(record),
        )
        with contextlib.suppress(DuplicateKeyError):
            self.requests.submit(request)
            return True
        return False

    def count(self) -> int:
        return self.collection.count({})
