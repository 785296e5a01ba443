from __future__ import annotations

import pytest
from shards_store.indexes import INDEXES, QueryShape, is_served


def shape(collection: str, query: dict, sort: list[tuple[str, int]] | None = None) -> QueryShape:
    return QueryShape.of(collection, query, sort)


def test_shapes_separate_equality_ranges_and_sorts() -> None:
    query = {"$and": [{"state": "Alive"}, {"$or": [{"a": 1}, {"b": {"$lt": 2}}]}],
             "heartbeatAt": {"$lt": 5}, "kind": {"$in": ["x"]}}
    got = shape("workers", query, [("heartbeatAt", 1)])
    assert got.equality == {"state", "kind"}
    assert got.ranges == {"heartbeatAt", "a", "b"}
    assert got.sort == ("heartbeatAt",)


@pytest.mark.parametrize(
    ("collection", "query", "sort"),
    [
        ("requests", {"state": "Pending", "kind": "launch", "targetWorker": "", "pool": "default"},
         [("createdAt", 1)]),
        ("processes", {"scopeId": "s", "processId": "p", "runId": "r", "status.state": {"$in": ["Idle"]}},
         None),
        ("processes", {"scopeId": "s"}, [("processId", 1)]),
        ("workers", {"state": "Alive", "heartbeatAt": {"$lt": 1}}, [("heartbeatAt", 1)]),
        ("scopes", {"_id": "s"}, None),
        ("processes", {"status.state": {"$in": ["Running"]}}, None),  # the reconciler
        ("processes", {"workerId": {"$in": ["w1"]}, "status.state": {"$in": ["Running"]}},
         None),  # the census's runs of workers that are not live
        ("workers", {"name": "w1", "state": "Alive"}, None),
        ("runs", {"scopeId": "s", "processId": "p"}, [("requestedAt", -1)]),  # a process's history
        ("runs", {"scopeId": "s", "requestedAt": {"$gte": 1}}, [("requestedAt", -1)]),  # the timeline
    ],
)
def test_store_queries_are_served(collection: str, query: dict, sort: list | None) -> None:
    assert is_served(shape(collection, query, sort))


@pytest.mark.parametrize(
    ("collection", "query", "sort"),
    [
        ("requests", {"kind": "launch"}, None),  # not a prefix of any index
        ("requests", {"state": "Pending", "kind": "launch", "targetWorker": ""}, [("takenAt", 1)]),
        ("processes", {"scopeId": "s", "name": "x"}, None),  # extra equality outside the index
        ("processes", {"status.state": "Running", "name": "x"}, None),  # extra equality
        ("workers", {"heartbeatAt": {"$lt": 1}}, None),
        ("runs", {"scopeId": "s", "processId": "p"}, [("endedAt", -1)]),
    ],
)
def test_scans_are_detected(collection: str, query: dict, sort: list | None) -> None:
    assert not is_served(shape(collection, query, sort))


def test_every_collection_is_declared() -> None:
    assert set(INDEXES) == {"processes", "requests", "runs", "workers", "scopes", "runlogs", "schedules"}
