"""The upgrade step: bring what an older release left in the database up to this one.

Run by every worker and operator at start, before they act on anything. Idempotent and safe
from several pods at once: each step finds documents by what marks them old and rewrites each
with that same mark in its filter, so a document moves once whoever gets there first, and a
second run finds nothing. Nothing here blocks a rolling update: every step leaves documents a
reader of the release before can still read (docs/upgrades.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shards.records import DEFAULT_POOL, SCHEMA_FIELD, SCHEMA_VERSION
from shards.requests import ANY_POOL, ANY_WORKER, RequestKind, RequestState

from shards_store.store import Store

log = logging.getLogger("shards.store")

# `{"$in": [None]}` matches a missing field on every server the store runs on; plain `None`
# does too except in NX-27017's count, and `$exists` is wrong there (see the conformance tests).
NO_POOL = {"$in": [None, ANY_POOL]}


@dataclass(frozen=True)
class Upgraded:
    """What one run of the upgrade step changed."""

    launches: int = 0  # pending launches without a pool, given their process's pool


def upgrade(store: Store) -> Upgraded:
    """Every step, in order; returns what this call changed (another pod may have done the rest)."""
    upgraded = Upgraded(launches=_pool_less_launches(store))
    if upgraded.launches:
        log.info("shards.store: upgrade: %d pending launch(es) from before pools now in their "
                 "process's pool", upgraded.launches)
    return upgraded


def _pool_less_launches(store: Store) -> int:
    """A release before pools queued launches without `pool`; workers claim by pool, so each
    goes to its process's pool (the default one for a process its record does not place)."""
    legacy = {"state": RequestState.PENDING, "kind": RequestKind.LAUNCH, "targetWorker": ANY_WORKER,
              "pool": NO_POOL}  # on the claim index: nothing to read when nothing is old
    pools: dict[tuple[str, str], str] = {}
    moved = 0
    for doc in store.requests.collection.find(legacy):
        key = (str(doc.get("scopeId", "")), str(doc.get("processId", "")))
        if key not in pools:
            pools[key] = _pool_of(store, *key)
        fields = {"pool": pools[key], SCHEMA_FIELD: SCHEMA_VERSION}
        moved += store.requests.collection.update_one({"_id": doc["_id"], **legacy}, {"$set": fields})
    return moved


def _pool_of(store: Store, scope_id: str, process_id: str) -> str:
    """The pool a process's record names; the default one when there is no record, or one this
    release cannot read (the upgrade step must never keep a worker or operator from starting)."""
    try:
        record = store.processes.get(scope_id, process_id)
    except (KeyError, TypeError, ValueError) as error:
        log.warning("shards.store: upgrade: the record of %s/%s is unreadable (%s): its launch goes "
                    "to the default pool", scope_id, process_id, error)
        return DEFAULT_POOL
    return record.pool if record is not None else DEFAULT_POOL
