"""Every index the store declares, and the rule that says whether a query is served by one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Each query the store runs must be served by one of these (a test checks every shape it sees).
INDEXES: dict[str, list[tuple[str, list[str], bool]]] = {
    # (index name, key fields in order, unique)
    "processes": [
        ("scope_process", ["scopeId", "processId"], True),
        ("worker_state", ["workerId", "status.state"], False),
        # The reconciler's active records, and ended ones with launches queued behind them.
        ("state_queued", ["status.state", "queued"], False),
        # Serves no query on MongoDB (scope_process does) and costs an entry per record, never
        # rewritten (processId does not change). The embedded server uses single-field indexes
        # only: without it every key read and guarded write scans all records (23 ms at 20,000,
        # bench/record_lookups.py), with it the records of one process id (under 1 ms).
        ("process", ["processId"], False),
    ],
    "requests": [
        # Launches are claimed per pool; defines and stops carry the pool "" (any).
        ("claim_by_pool", ["state", "kind", "targetWorker", "pool", "createdAt"], False),
        ("run", ["runId", "state"], False),
        ("taken_by", ["takenBy", "state"], False),
    ],
    "runs": [
        ("history", ["scopeId", "processId", "requestedAt"], False),
        ("scope_requested", ["scopeId", "requestedAt"], False),  # a scope's runs of the last hour
        ("state", ["state"], False),  # the reconciler's look at entries still Running
    ],
    "workers": [
        ("liveness", ["state", "heartbeatAt"], False),
        ("name", ["name", "state"], False),
    ],
    "scopes": [],
    "schedules": [
        ("next_fire", ["nextFireAt"], False),  # the repair pass: fires left unarmed
        ("scope", ["scopeId"], False),
    ],
    "runlogs": [],  # read and written by _id (the run id) only
}

# Indexes an earlier version declared: dropped when the indexes are ensured.
OBSOLETE: dict[str, list[str]] = {
    "requests": ["claim"],  # replaced by claim_by_pool
    "processes": ["state"],  # replaced by state_queued
}


@dataclass(frozen=True)
class QueryShape:
    """The fields a query filters on (by equality or by range) and sorts by."""

    collection: str
    equality: frozenset[str]
    ranges: frozenset[str]
    sort: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, collection: str, query: dict[str, Any], sort: list[tuple[str, int]] | None = None
    ) -> QueryShape:
        equality: set[str] = set()
        ranges: set[str] = set()
        _collect(query, equality, ranges)
        return cls(collection, frozenset(equality), frozenset(ranges), tuple(f for f, _ in sort or []))


_EQUALITY_OPS = {"$eq", "$in"}


def _collect(query: dict[str, Any], equality: set[str], ranges: set[str]) -> None:
    for key, value in query.items():
        if key == "$and":
            for clause in value:
                _collect(clause, equality, ranges)
        elif key == "$or":
            # A disjunction is served only if every branch is; treat its fields as ranges.
            for clause in value:
                _collect(clause, ranges, ranges)
        elif isinstance(value, dict) and value and all(op.startswith("$") for op in value):
            (equality if set(value) <= _EQUALITY_OPS else ranges).add(key)
        else:
            equality.add(key)


def is_served(shape: QueryShape) -> bool:
    """True when a declared index (or _id) serves this query without a collection scan.

    Served means: a unique index fully matched by equality (a point lookup), or an index whose
    leading keys are exactly the equality fields, followed by the sort fields in order, with
    every range field among the keys.
    """
    if "_id" in shape.equality:
        return True
    for _name, keys, unique in INDEXES[shape.collection]:
        prefix = 0
        while prefix < len(keys) and keys[prefix] in shape.equality:
            prefix += 1
        # No equality at all: served when the index leads with the range or the sort.
        if prefix == 0 and (shape.equality or keys[0] not in shape.ranges | set(shape.sort[:1])):
            continue
        if unique and prefix == len(keys):
            return True
        if set(keys[:prefix]) != shape.equality:
            continue
        sort = [field for field in shape.sort if field not in shape.equality]
        rest = keys[prefix:]
        if rest[: len(sort)] == sort and shape.ranges <= set(rest):
            return True
    return False
