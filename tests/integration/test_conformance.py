"""Conformance of the MongoDB servers we run against the query vocabulary the Shards store uses.

Every assertion is MongoDB's documented result, so the module must pass on real MongoDB
(`SHARDS_TEST_MONGO_URI`), on NX-27017 (`SHARDS_TEST_MONGO_SERVER=nx`, the default) and on
mongo-java-server (`SHARDS_TEST_MONGO_SERVER=java`).

One test per vocabulary item, so that a server's deviation shows up as exactly one test. A
deviation measured on one server is marked `@deviates_on(kind="what it does")`: a strict xfail on
that server (it fails loudly once the server is fixed), an ordinary test everywhere else. Those
items are vocabulary the store must not rely on while it runs on that server. Operators that are
outside the vocabulary because some server gets them wrong are in `test_known_quirks` at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from pymongo import ASCENDING, DESCENDING, InsertOne, MongoClient, ReturnDocument, UpdateOne
from pymongo.change_stream import ChangeStream
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure
from tooling.mongo_servers import MongoServerInfo

Doc = dict[str, Any]

EVENT_TIMEOUT_S = 10.0
WATCH_PIPELINE = [{"$match": {"operationType": {"$in": ["insert", "update", "replace"]}}}]
T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """T0 plus `minutes`: tz-aware UTC with millisecond precision."""
    return T0 + timedelta(minutes=minutes)


TestFn = TypeVar("TestFn", bound=Callable[..., None])


def deviates_on(**reasons: str) -> Callable[[TestFn], TestFn]:
    """A measured deviation of one server kind (`nx=...`, `java=...`) from MongoDB's documented
    result: the test is a strict xfail on that server only, and an ordinary test everywhere else.
    """

    def mark(test: TestFn) -> TestFn:
        test.deviations = reasons  # type: ignore[attr-defined]
        return test

    return mark


@pytest.fixture(autouse=True)
def _known_deviation(request: pytest.FixtureRequest, mongo_server: MongoServerInfo) -> None:
    reason = getattr(request.function, "deviations", {}).get(mongo_server.kind)
    if reason:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"{mongo_server.kind}: {reason}"))


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def jobs(mongo_db: Database) -> Collection:
    """A small collection shaped like the store's: sentinels instead of null/missing."""
    coll = mongo_db["jobs"]
    coll.insert_many(
        [
            {"name": "a", "scopeId": "s1", "status": {"state": "Idle", "attempt": 0},
             "workerId": "", "enabled": True, "priority": 1, "score": 0.5, "createdAt": at(0)},
            {"name": "b", "scopeId": "s1", "status": {"state": "Running", "attempt": 1},
             "workerId": "w1", "enabled": False, "priority": 3, "score": 2.25, "createdAt": at(1)},
            {"name": "c", "scopeId": "s2", "status": {"state": "Done", "attempt": 2},
             "workerId": "", "enabled": True, "priority": 2, "score": -1.0, "createdAt": at(2)},
            {"name": "d", "scopeId": "s2", "status": {"state": "Running", "attempt": 1},
             "workerId": "w2", "enabled": True, "priority": 3, "score": 10.0, "createdAt": at(3)},
            {"name": "e", "scopeId": "s1", "status": {"state": "Failed", "attempt": 3},
             "workerId": "w1", "enabled": False, "priority": 0, "score": 2.0, "createdAt": at(4)},
        ]
    )
    return coll


def names(coll: Collection, query: Doc, **kwargs: Any) -> set[str]:
    return {doc["name"] for doc in coll.find(query, **kwargs)}


def snapshot(coll: Collection) -> dict[Any, Doc]:
    return {doc["_id"]: doc for doc in coll.find({})}


def next_event(stream: ChangeStream, timeout: float = EVENT_TIMEOUT_S) -> Doc:
    """The next change event, polling `try_next()` for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = stream.try_next()
        if event is not None:
            return event
        time.sleep(0.02)
    raise AssertionError(f"no change event within {timeout:.0f}s")


def assert_no_more_events(stream: ChangeStream, quiet_s: float = 1.0) -> None:
    deadline = time.monotonic() + quiet_s
    while time.monotonic() < deadline:
        event = stream.try_next()
        assert event is None, f"unexpected change event: {event}"
        time.sleep(0.05)


def watch(coll: Collection, pipeline: list[Doc] | None = None, **kwargs: Any) -> ChangeStream:
    return coll.watch(
        pipeline=WATCH_PIPELINE if pipeline is None else pipeline,
        full_document="updateLookup",
        max_await_time_ms=100,
        **kwargs,
    )


def without_id(doc: Doc | None) -> Doc | None:
    return None if doc is None else {k: v for k, v in doc.items() if k != "_id"}


# ---------------------------------------------------------------- client


def test_default_database_comes_from_the_uri_path(
    mongo_db_uri: str, mongo_server: MongoServerInfo
) -> None:
    expected = mongo_db_uri.split("?")[0].rsplit("/", 1)[1]
    client: MongoClient[Doc]
    with MongoClient(mongo_db_uri, tz_aware=True) as client:
        assert client.get_default_database("shards").name == expected
    if mongo_server.kind != "external":
        with MongoClient(mongo_server.uri, tz_aware=True) as client:
            assert client.get_default_database("shards").name == "shards"


def test_hello_or_is_master_gives_the_servers_local_time(mongo_db: Database) -> None:
    """The store measures the server's clock with this (Store.sync_clock): `hello`, or `isMaster`
    where the server is older than hello (mongo-java-server)."""
    admin = mongo_db.client.admin
    sent = datetime.now(UTC)
    try:
        reply = admin.command("hello")
    except Exception:
        reply = admin.command("isMaster")
    server = reply["localTime"]
    assert isinstance(server, datetime)
    server = server if server.tzinfo else server.replace(tzinfo=UTC)
    assert abs((server - sent).total_seconds()) < 5  # the same machine's clock


def test_tz_aware_datetimes_round_trip_with_millisecond_precision(mongo_db: Database) -> None:
    coll = mongo_db["times"]
    written = datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)
    stored = written.replace(microsecond=891000)
    coll.insert_one({"_id": "t", "at": written})
    doc = coll.find_one({"_id": "t"})
    assert doc is not None
    assert doc["at"] == stored
    assert doc["at"].tzinfo is not None and doc["at"].utcoffset() == timedelta(0)
    assert coll.count_documents({"at": stored}) == 1


# ---------------------------------------------------------------- queries


def test_equality_on_top_level_and_dotted_fields(jobs: Collection) -> None:
    assert names(jobs, {"name": "c"}) == {"c"}
    assert names(jobs, {"status.state": "Running"}) == {"b", "d"}
    assert names(jobs, {"scopeId": "s1", "status.state": "Running"}) == {"b"}
    assert names(jobs, {"status.attempt": 1}) == {"b", "d"}
    assert names(jobs, {"status.state": "Nope"}) == set()


def test_equality_on_booleans_ints_strings_and_sentinels(jobs: Collection) -> None:
    assert names(jobs, {"enabled": True}) == {"a", "c", "d"}
    assert names(jobs, {"enabled": False}) == {"b", "e"}
    assert names(jobs, {"priority": 3}) == {"b", "d"}
    assert names(jobs, {"priority": 0}) == {"e"}
    assert names(jobs, {"workerId": ""}) == {"a", "c"}
    assert names(jobs, {"workerId": "w1", "enabled": False}) == {"b", "e"}


def test_in_and_nin_on_strings(jobs: Collection) -> None:
    assert names(jobs, {"status.state": {"$in": ["Idle", "Done"]}}) == {"a", "c"}
    assert names(jobs, {"status.state": {"$nin": ["Idle", "Done"]}}) == {"b", "d", "e"}
    assert names(jobs, {"status.state": {"$in": []}}) == set()
    assert names(jobs, {"workerId": {"$nin": [""]}, "scopeId": "s1"}) == {"b", "e"}


def test_ranges_on_datetimes(jobs: Collection) -> None:
    assert names(jobs, {"createdAt": {"$lt": at(1)}}) == {"a"}
    assert names(jobs, {"createdAt": {"$lte": at(1)}}) == {"a", "b"}
    assert names(jobs, {"createdAt": {"$gt": at(3)}}) == {"e"}
    assert names(jobs, {"createdAt": {"$gte": at(3)}}) == {"d", "e"}
    assert names(jobs, {"createdAt": {"$gte": at(1), "$lt": at(3)}}) == {"b", "c"}
    assert names(jobs, {"createdAt": {"$gt": at(0.5), "$lte": at(2)}}) == {"b", "c"}
    assert jobs.count_documents({"createdAt": {"$lt": at(2.5)}}) == 3
    assert jobs.update_many({"createdAt": {"$lte": at(1)}}, {"$set": {"old": True}}) \
        .modified_count == 2
    assert names(jobs, {"old": True}) == {"a", "b"}
    assert jobs.delete_many({"createdAt": {"$gt": at(3.5)}}).deleted_count == 1
    assert names(jobs, {}) == {"a", "b", "c", "d"}


@deviates_on(
    nx="datetime $lt/$lte/$gt/$gte compare whole seconds in find/update/delete filters "
    "(count_documents is exact)"
)
def test_ranges_on_datetimes_to_the_millisecond(mongo_db: Database) -> None:
    coll = mongo_db["times"]
    t = at(0)  # .678 s
    ms = timedelta(milliseconds=1)
    coll.insert_one({"_id": "t", "t": t})
    for query, matches in [
        ({"$lt": t + ms}, True),
        ({"$lt": t}, False),
        ({"$lte": t - ms}, False),
        ({"$gt": t - ms}, True),
        ({"$gt": t}, False),
        ({"$gte": t + ms}, False),
        ({"$gt": t - ms, "$lt": t + ms}, True),
    ]:
        expected = 1 if matches else 0
        assert coll.count_documents({"t": query}) == expected, query
        assert len(list(coll.find({"t": query}))) == expected, query
        assert (coll.find_one({"t": query}) is not None) == matches, query
        assert coll.update_one({"t": query}, {"$inc": {"n": 1}}).matched_count == expected, query
        doc = coll.find_one_and_update({"t": query}, {"$inc": {"n": 1}})
        assert (doc is not None) == matches, query
    whole = datetime(2026, 2, 1, 0, 0, 0, tzinfo=UTC)
    coll.insert_one({"_id": "whole", "t": whole})
    assert coll.delete_many({"t": {"$gt": whole, "$lt": whole + 999 * ms}}).deleted_count == 0
    assert coll.delete_many({"t": {"$gte": whole, "$lt": whole + ms}}).deleted_count == 1


def test_ranges_on_numbers(jobs: Collection) -> None:
    assert names(jobs, {"priority": {"$gt": 1}}) == {"b", "c", "d"}
    assert names(jobs, {"priority": {"$gte": 1, "$lt": 3}}) == {"a", "c"}
    assert names(jobs, {"priority": {"$lte": 0}}) == {"e"}
    assert names(jobs, {"score": {"$gt": 2.0}}) == {"b", "d"}
    assert names(jobs, {"score": {"$gte": 2}}) == {"b", "d", "e"}
    assert names(jobs, {"score": {"$lt": 0}}) == {"c"}


def test_and_containing_or(jobs: Collection) -> None:
    query = {"$and": [{"scopeId": "s1"}, {"$or": [{"status.state": "Idle"}, {"workerId": "w1"}]}]}
    assert names(jobs, query) == {"a", "b", "e"}
    assert jobs.count_documents(query) == 3
    query = {"$and": [{"scopeId": "s2"}, {"$or": [{"priority": 2}, {"enabled": False}]}]}
    assert names(jobs, query) == {"c"}
    query = {"$and": [{"scopeId": "s2"}, {"$or": [{"name": "a"}, {"name": "b"}]}]}
    assert names(jobs, query) == set()
    assert jobs.find_one(query) is None


def test_count_documents(jobs: Collection) -> None:
    assert jobs.count_documents({}) == 5
    assert jobs.count_documents({"scopeId": "s1"}) == 3
    assert jobs.count_documents({"status.state": {"$in": ["Running", "Failed"]}}) == 3
    assert jobs.count_documents({"createdAt": {"$gte": at(2)}, "enabled": True}) == 2
    assert jobs.count_documents({"name": "zzz"}) == 0


def test_match_then_group_counts_per_field_value(mongo_db: Database) -> None:
    """`count_by`: pending launches per pool, one aggregate round trip."""
    requests = mongo_db["requests"]
    requests.insert_many([
        {"state": "Pending", "kind": "launch", "targetWorker": "", "pool": pool}
        for pool in ("default", "heavy", "default", "gpu")
    ] + [{"state": "Taken", "kind": "launch", "targetWorker": "", "pool": "heavy"},
         {"state": "Pending", "kind": "stop", "targetWorker": "w", "pool": ""}])
    pipeline = [{"$match": {"state": "Pending", "kind": "launch", "targetWorker": ""}},
                {"$group": {"_id": "$pool", "n": {"$sum": 1}}}]
    counts = {group["_id"]: group["n"] for group in requests.aggregate(pipeline)}
    assert counts == {"default": 2, "heavy": 1, "gpu": 1}


def test_match_on_a_dotted_in_then_group_counts_empty_strings_too(mongo_db: Database) -> None:
    """`count_by` as the operator's census runs it: executing records per worker id (the empty
    string is a value of its own), then those of some workers per pool."""
    records = mongo_db["processes"]
    records.insert_many([
        {"status": {"state": state}, "workerId": worker, "pool": pool}
        for state, worker, pool in [("Running", "w1", "default"), ("Stopping", "w1", "default"),
                                    ("Running", "w2", "gpu"), ("StopRequested", "", "default"),
                                    ("Scheduled", "", "gpu"), ("Done", "", "gpu")]])
    executing = {"$in": ["Running", "StopRequested", "Stopping"]}

    def count_by(match: Doc, field: str) -> dict[Any, int]:
        pipeline = [{"$match": match}, {"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]
        return {group["_id"]: group["n"] for group in records.aggregate(pipeline)}

    assert count_by({"status.state": executing}, "workerId") == {"w1": 2, "w2": 1, "": 1}
    assert count_by({"workerId": {"$in": ["w2", "w9"]}, "status.state": executing}, "pool") == {"gpu": 1}


def test_sort_on_one_and_several_fields_with_limit(jobs: Collection) -> None:
    def order(sort: list[tuple[str, int]], limit: int = 0, query: Doc | None = None) -> list[str]:
        return [d["name"] for d in jobs.find(query or {}, sort=sort, limit=limit)]

    assert order([("createdAt", ASCENDING)]) == ["a", "b", "c", "d", "e"]
    assert order([("createdAt", DESCENDING)], limit=2) == ["e", "d"]
    assert order([("score", ASCENDING)]) == ["c", "a", "e", "b", "d"]
    assert order([("name", DESCENDING)], limit=1) == ["e"]
    assert order([("priority", DESCENDING), ("createdAt", ASCENDING)]) == ["b", "d", "c", "a", "e"]
    assert order([("priority", DESCENDING), ("createdAt", DESCENDING)]) == ["d", "b", "c", "a", "e"]
    assert order([("scopeId", ASCENDING), ("priority", ASCENDING)], limit=4) == ["e", "a", "b", "c"]
    assert order([("createdAt", ASCENDING)], limit=2, query={"enabled": True}) == ["a", "c"]
    first = jobs.find_one({"scopeId": "s1"}, sort=[("priority", DESCENDING)])
    assert first is not None and first["name"] == "b"


def test_sort_on_a_dotted_field(jobs: Collection) -> None:
    ordered = [d["name"] for d in jobs.find({}, sort=[("status.attempt", DESCENDING)], limit=3)]
    assert ordered[:2] == ["e", "c"]
    assert ordered[2] in {"b", "d"}


def test_projection_with_inclusion_lists(jobs: Collection) -> None:
    docs = list(jobs.find({"scopeId": "s2"}, ["name", "priority"], sort=[("name", ASCENDING)]))
    assert [set(d) for d in docs] == [{"_id", "name", "priority"}] * 2
    assert [(d["name"], d["priority"]) for d in docs] == [("c", 2), ("d", 3)]
    doc = jobs.find_one({"name": "b"}, {"name": 1, "workerId": 1})
    assert doc is not None and set(doc) == {"_id", "name", "workerId"}
    assert doc["workerId"] == "w1"
    doc = jobs.find_one({"name": "b"}, {"name": 1, "_id": 0})
    assert doc == {"name": "b"}


@deviates_on(nx='returns the flat key {"status.state": ...} instead of {"status": {"state": ...}}')
def test_projection_of_a_dotted_field(jobs: Collection) -> None:
    doc = jobs.find_one({"name": "d"}, ["name", "status.state"])
    assert doc is not None
    assert without_id(doc) == {"name": "d", "status": {"state": "Running"}}


def _launches_old_and_new(mongo_db: Database) -> Collection:
    coll = mongo_db["requests"]
    coll.insert_many([
        {"_id": "old", "state": "Pending", "kind": "launch", "targetWorker": ""},
        {"_id": "old-taken", "state": "Taken", "kind": "launch", "targetWorker": ""},
        {"_id": "null", "state": "Pending", "kind": "launch", "targetWorker": "", "pool": None},
        {"_id": "empty", "state": "Pending", "kind": "launch", "targetWorker": "", "pool": ""},
        {"_id": "new", "state": "Pending", "kind": "launch", "targetWorker": "", "pool": "heavy"},
        {"_id": "stop", "state": "Pending", "kind": "stop", "targetWorker": "w1", "pool": ""},
    ])
    return coll


def test_in_null_matches_a_missing_field_in_every_operation(mongo_db: Database) -> None:
    """The upgrade step (shards_store.upgrade): `{field: {"$in": [None, ""]}}` finds the
    documents an older release wrote without the field, or with the sentinel, beside the claim's
    equality fields, in find, count, update_one, update_many and find_one_and_update."""
    coll = _launches_old_and_new(mongo_db)
    legacy = {"state": "Pending", "kind": "launch", "targetWorker": "", "pool": {"$in": [None, ""]}}
    assert {doc["_id"] for doc in coll.find(legacy)} == {"old", "null", "empty"}
    assert coll.count_documents(legacy) == 3
    assert coll.update_one({"_id": "old", **legacy}, {"$set": {"pool": "default"}}).matched_count == 1
    assert coll.update_one({"_id": "old", **legacy}, {"$set": {"pool": "other"}}).matched_count == 0
    assert coll.update_one({"_id": "new", **legacy}, {"$set": {"pool": "other"}}).matched_count == 0
    taken = coll.find_one_and_update(legacy, {"$set": {"pool": "default"}}, sort=[("_id", ASCENDING)])
    assert taken is not None and taken["_id"] == "empty"
    assert coll.update_many(legacy, {"$set": {"pool": "default"}}).modified_count == 1  # "null"
    assert coll.update_many(legacy, {"$set": {"pool": "other"}}).modified_count == 0
    pools = {doc["_id"]: doc.get("pool") for doc in coll.find({})}
    assert pools == {"old": "default", "old-taken": None, "null": "default", "empty": "default",
                     "new": "heavy", "stop": ""}


@deviates_on(nx="count_documents with {field: None} counts only explicit nulls, not missing fields "
             "(find, update and find_one_and_update match both)")
def test_equality_to_null_matches_a_missing_field(mongo_db: Database) -> None:
    coll = _launches_old_and_new(mongo_db)
    legacy = {"state": "Pending", "kind": "launch", "targetWorker": "", "pool": None}
    assert {doc["_id"] for doc in coll.find(legacy)} == {"old", "null"}
    assert coll.count_documents(legacy) == 2


# ---------------------------------------------------------------- writes


def test_insert_and_delete(mongo_db: Database) -> None:
    coll = mongo_db["items"]
    result = coll.insert_one({"_id": "x1", "kind": "k"})
    assert result.inserted_id == "x1"
    generated = coll.insert_one({"kind": "k"}).inserted_id
    assert coll.find_one({"_id": generated}) == {"_id": generated, "kind": "k"}
    many = coll.insert_many([{"kind": "m", "n": i} for i in range(5)])
    assert len(many.inserted_ids) == 5
    assert coll.count_documents({}) == 7
    assert coll.delete_one({"kind": "m"}).deleted_count == 1
    assert coll.count_documents({"kind": "m"}) == 4
    assert coll.delete_one({"kind": "none"}).deleted_count == 0
    assert coll.delete_many({"kind": "m", "n": {"$gte": 3}}).deleted_count == 2
    assert coll.delete_many({"kind": {"$in": ["k", "m"]}}).deleted_count == 4
    assert coll.count_documents({}) == 0


def test_replace_one_with_upsert(mongo_db: Database) -> None:
    coll = mongo_db["items"]
    result = coll.replace_one({"_id": "k1"}, {"_id": "k1", "v": 1, "at": at(0)}, upsert=True)
    assert result.upserted_id == "k1"
    assert result.matched_count == 0
    assert coll.find_one({"_id": "k1"}) == {"_id": "k1", "v": 1, "at": at(0)}
    result = coll.replace_one({"_id": "k1"}, {"_id": "k1", "w": 2}, upsert=True)
    assert result.upserted_id is None
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert coll.find_one({"_id": "k1"}) == {"_id": "k1", "w": 2}
    result = coll.replace_one({"key": "a"}, {"key": "a", "v": 1}, upsert=True)
    assert result.upserted_id is not None
    result = coll.replace_one({"key": "a"}, {"key": "a", "v": 2}, upsert=True)
    assert (result.matched_count, result.upserted_id) == (1, None)
    assert without_id(coll.find_one({"key": "a"})) == {"key": "a", "v": 2}
    assert coll.count_documents({}) == 2


@deviates_on(
    nx="with {'_id': X} as filter and no _id in the replacement, the upsert inserts a new "
    "ObjectId instead of X (and a second call inserts again)"
)
def test_replace_one_upsert_takes_the_id_from_the_filter(mongo_db: Database) -> None:
    coll = mongo_db["items"]
    result = coll.replace_one({"_id": "k1"}, {"v": 1}, upsert=True)
    assert result.upserted_id == "k1"
    assert coll.find_one({"_id": "k1"}) == {"_id": "k1", "v": 1}
    result = coll.replace_one({"_id": "k1"}, {"w": 2}, upsert=True)
    assert (result.matched_count, result.upserted_id) == (1, None)
    assert coll.find_one({"_id": "k1"}) == {"_id": "k1", "w": 2}
    assert coll.count_documents({}) == 1


def test_update_set_on_dotted_paths(jobs: Collection) -> None:
    result = jobs.update_one(
        {"name": "a"}, {"$set": {"status.state": "Running", "progress.message": "half way"}}
    )
    assert (result.matched_count, result.modified_count) == (1, 1)
    doc = jobs.find_one({"name": "a"})
    assert doc is not None
    assert doc["status"] == {"state": "Running", "attempt": 0}
    assert doc["progress"] == {"message": "half way"}
    jobs.update_one({"name": "a"}, {"$set": {"progress.message": "done", "progress.pct": 100}})
    doc = jobs.find_one({"name": "a"})
    assert doc is not None and doc["progress"] == {"message": "done", "pct": 100}
    assert names(jobs, {"status.state": "Running"}) == {"a", "b", "d"}
    result = jobs.update_one({"name": "zzz"}, {"$set": {"status.state": "Done"}})
    assert (result.matched_count, result.modified_count) == (0, 0)


@deviates_on(
    nx="$set of a datetime on an existing document (update_one, update_many, "
    "find_one_and_update, and the insert of a find_one_and_update upsert) stores the string "
    "'2026-01-02 03:04:05.678000' instead of a date"
)
def test_update_set_datetimes(jobs: Collection) -> None:
    jobs.update_one({"name": "a"}, {"$set": {"heartbeatAt": at(60), "lease.until": at(61)}})
    doc = jobs.find_one({"name": "a"})
    assert doc is not None
    assert (doc["heartbeatAt"], doc["lease"]) == (at(60), {"until": at(61)})
    jobs.update_many({"scopeId": "s2"}, {"$set": {"heartbeatAt": at(62)}})
    after = jobs.find_one_and_update(
        {"name": "b"}, {"$set": {"heartbeatAt": at(63)}}, return_document=ReturnDocument.AFTER
    )
    assert after is not None and after["heartbeatAt"] == at(63)
    assert names(jobs, {"heartbeatAt": {"$gte": at(59)}}) == {"a", "b", "c", "d"}
    assert names(jobs, {"heartbeatAt": at(62)}) == {"c", "d"}
    assert names(jobs, {"lease.until": {"$gt": at(60)}}) == {"a"}
    upserted = jobs.find_one_and_update(
        {"name": "z"}, {"$set": {"heartbeatAt": at(64)}}, upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert upserted is not None and upserted["heartbeatAt"] == at(64)
    assert names(jobs, {"heartbeatAt": {"$gt": at(63.5)}}) == {"z"}


def test_update_many_with_set(jobs: Collection) -> None:
    result = jobs.update_many({"scopeId": "s1"}, {"$set": {"status.state": "Paused"}})
    assert (result.matched_count, result.modified_count) == (3, 3)
    assert names(jobs, {"status.state": "Paused"}) == {"a", "b", "e"}
    result = jobs.update_many(
        {"$and": [{"scopeId": "s2"}, {"$or": [{"name": "c"}, {"workerId": "w9"}]}]},
        {"$set": {"workerId": "w3"}},
    )
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert names(jobs, {"workerId": "w3"}) == {"c"}


def test_update_inc(jobs: Collection) -> None:
    jobs.update_one({"name": "a"}, {"$inc": {"priority": 2, "status.attempt": 1, "runs": 1}})
    doc = jobs.find_one({"name": "a"})
    assert doc is not None
    assert (doc["priority"], doc["status"]["attempt"], doc["runs"]) == (3, 1, 1)
    jobs.update_one({"name": "a"}, {"$inc": {"priority": -5, "runs": 1}})
    doc = jobs.find_one({"name": "a"})
    assert doc is not None and (doc["priority"], doc["runs"]) == (-2, 2)
    result = jobs.update_many({"enabled": True}, {"$inc": {"status.attempt": 10}})
    assert result.modified_count == 3
    assert names(jobs, {"status.attempt": {"$gte": 10}}) == {"a", "c", "d"}


def test_upsert_with_set_on_insert(mongo_db: Database) -> None:
    coll = mongo_db["leases"]
    result = coll.update_one(
        {"key": "a", "scopeId": "s1"},
        {"$set": {"seen": 1}, "$setOnInsert": {"createdAt": at(0), "state": "New"}},
        upsert=True,
    )
    assert result.upserted_id is not None
    assert result.matched_count == 0
    doc = coll.find_one({"key": "a"})
    assert without_id(doc) == {
        "key": "a", "scopeId": "s1", "seen": 1, "createdAt": at(0), "state": "New"
    }
    result = coll.update_one(
        {"key": "a", "scopeId": "s1"},
        {"$set": {"seen": 2}, "$setOnInsert": {"createdAt": at(9), "state": "Other"}},
        upsert=True,
    )
    assert result.upserted_id is None
    assert (result.matched_count, result.modified_count) == (1, 1)
    doc = coll.find_one({"key": "a"})
    assert without_id(doc) == {
        "key": "a", "scopeId": "s1", "seen": 2, "createdAt": at(0), "state": "New"
    }
    assert coll.count_documents({}) == 1


def test_bulk_write_of_unordered_inserts_and_upserts(mongo_db: Database) -> None:
    """A define writes its records in unordered bulk writes: inserts of the missing, upserts of
    the changed ($setOnInsert only on insert); an insert that meets a unique key is reported
    by its index (code 11000) while the others are written, and is then written as an upsert."""
    coll = mongo_db["records"]
    coll.create_index([("scopeId", ASCENDING), ("processId", ASCENDING)], unique=True)
    coll.insert_one({"scopeId": "s1", "processId": "p0", "name": "old", "state": "Done"})

    def upsert(i: int, name: str) -> UpdateOne:
        return UpdateOne({"scopeId": "s1", "processId": f"p{i}"},
                         {"$set": {"name": name}, "$setOnInsert": {"state": "Idle"}}, upsert=True)

    result = coll.bulk_write([InsertOne({"scopeId": "s1", "processId": "p1", "name": "new", "state": "Idle"}),
                              upsert(0, "new"), upsert(2, "new")], ordered=False)
    assert (result.inserted_count, result.matched_count, result.upserted_count) == (1, 1, 1)
    with pytest.raises(BulkWriteError) as raised:
        coll.bulk_write([InsertOne({"scopeId": "s1", "processId": "p3", "name": "new", "state": "Idle"}),
                         InsertOne({"scopeId": "s1", "processId": "p1", "name": "dup", "state": "Idle"}),
                         upsert(0, "newer")], ordered=False)
    assert [(e["index"], e["code"]) for e in raised.value.details["writeErrors"]] == [(1, 11000)]
    docs = {doc["processId"]: without_id(doc) for doc in coll.find({"scopeId": "s1"})}
    assert docs == {
        "p0": {"scopeId": "s1", "processId": "p0", "name": "newer", "state": "Done"},
        "p1": {"scopeId": "s1", "processId": "p1", "name": "new", "state": "Idle"},
        "p2": {"scopeId": "s1", "processId": "p2", "name": "new", "state": "Idle"},
        "p3": {"scopeId": "s1", "processId": "p3", "name": "new", "state": "Idle"},
    }
    again = coll.bulk_write([upsert(i, "new") for i in range(4)], ordered=False)
    assert (again.matched_count, again.upserted_count) == (4, 0)
    assert coll.count_documents({}) == 4


def test_upsert_by_id_takes_the_id_from_the_filter(mongo_db: Database) -> None:
    """The run history is keyed by the run id: every write is an upsert by `_id`."""
    coll = mongo_db["history"]
    result = coll.update_one(
        {"_id": "run-1"}, {"$set": {"state": "Running"}, "$setOnInsert": {"args": {}}}, upsert=True
    )
    assert result.upserted_id == "run-1"
    coll.update_one({"_id": "run-1"}, {"$set": {"state": "Done"}, "$setOnInsert": {"args": {"x": 1}}},
                    upsert=True)
    assert coll.find_one({"_id": "run-1"}) == {"_id": "run-1", "state": "Done", "args": {}}
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "run-1"})
    assert coll.count_documents({}) == 1


def test_push_each_with_slice(mongo_db: Database) -> None:
    coll = mongo_db["logs"]
    coll.insert_one({"_id": "j"})
    coll.update_one({"_id": "j"}, {"$push": {"events": {"$each": ["e1", "e2"], "$slice": -3}}})
    assert coll.find_one({"_id": "j"}) == {"_id": "j", "events": ["e1", "e2"]}
    coll.update_one({"_id": "j"}, {"$push": {"events": {"$each": ["e3", "e4"], "$slice": -3}}})
    assert coll.find_one({"_id": "j"}) == {"_id": "j", "events": ["e2", "e3", "e4"]}
    coll.update_one({"_id": "j"}, {"$push": {"events": {"$each": ["e5"], "$slice": -3}}})
    coll.update_one({"_id": "j"}, {"$push": {"counts": {"$each": [1, 2, 3], "$slice": -2}}})
    assert coll.find_one({"_id": "j"}) == {"_id": "j", "events": ["e3", "e4", "e5"], "counts": [2, 3]}


def test_push_each_with_slice_in_an_upsert_beside_set_and_set_on_insert(mongo_db: Database) -> None:
    """A run's log (shards_store.runlogs): the first batch creates the document, later ones
    append to its array and keep only its last lines; an empty $each with $slice only trims."""
    coll = mongo_db["runlogs"]

    def append(lines: list[str], keep: int, dropped: int) -> None:
        coll.update_one({"_id": "run-1"}, {
            "$push": {"lines": {"$each": lines, "$slice": -keep}},
            "$set": {"dropped": dropped, "updatedAt": 1},
            "$setOnInsert": {"scopeId": "s", "processId": "p"},
        }, upsert=True)

    append(["l1", "l2", "l3"], keep=3, dropped=0)
    assert coll.find_one({"_id": "run-1"}) == {"_id": "run-1", "lines": ["l1", "l2", "l3"], "dropped": 0,
                                               "updatedAt": 1, "scopeId": "s", "processId": "p"}
    long = "l5 \u00e9 \u2026\nwith a second line"
    append(["l4", long], keep=4, dropped=1)
    doc = coll.find_one({"_id": "run-1"})
    assert doc is not None
    assert (doc["lines"], doc["dropped"], doc["scopeId"]) == (
        ["l2", "l3", "l4", long], 1, "s")
    append([], keep=2, dropped=3)
    doc = coll.find_one({"_id": "run-1"})
    assert doc is not None and (doc["lines"], doc["dropped"]) == (["l4", long], 3)
    assert coll.count_documents({}) == 1


@deviates_on(
    nx="$push stores embedded documents and datetimes as JSON strings, e.g. "
    "'{\"at\":{\"$date\":\"2026-01-02T03:07:05.678000\"},\"msg\":\"m3\"}'"
)
def test_push_each_with_slice_of_documents(mongo_db: Database) -> None:
    coll = mongo_db["logs"]
    coll.insert_one({"_id": "j"})
    entries = [{"at": at(i), "msg": f"m{i}"} for i in range(5)]
    coll.update_one({"_id": "j"}, {"$push": {"history": {"$each": entries[:3], "$slice": -2}}})
    doc = coll.find_one({"_id": "j"})
    assert doc is not None and doc["history"] == entries[1:3]
    coll.update_one({"_id": "j"}, {"$push": {"history": {"$each": entries[3:], "$slice": -2}}})
    doc = coll.find_one({"_id": "j"})
    assert doc is not None and doc["history"] == entries[3:]
    assert coll.count_documents({"history.msg": "m4"}) == 1


@deviates_on(nx="$max never replaces an existing datetime (nModified 0, value unchanged)")
def test_max_on_datetimes(mongo_db: Database) -> None:
    coll = mongo_db["beats"]
    coll.insert_one({"_id": "w", "lastSeen": at(5)})
    result = coll.update_one({"_id": "w"}, {"$max": {"lastSeen": at(3)}})
    assert result.matched_count == 1 and result.modified_count == 0
    assert coll.find_one({"_id": "w"}) == {"_id": "w", "lastSeen": at(5)}
    result = coll.update_one({"_id": "w"}, {"$max": {"lastSeen": at(7)}})
    assert result.modified_count == 1
    assert coll.find_one({"_id": "w"}) == {"_id": "w", "lastSeen": at(7)}
    coll.update_one({"_id": "w"}, {"$max": {"firstSeen": at(1)}})
    assert coll.find_one({"_id": "w"}) == {"_id": "w", "lastSeen": at(7), "firstSeen": at(1)}


# ---------------------------------------------------------------- find_one_and_*


@pytest.fixture
def pending(mongo_db: Database) -> Collection:
    coll = mongo_db["queue"]
    coll.insert_many(
        [
            {"name": f"p{i}", "scopeId": "s1" if i % 2 else "s2", "state": "Pending",
             "takenBy": "", "createdAt": at(10 - i)}
            for i in range(6)
        ]
    )
    return coll


def test_find_one_and_update_sort_and_return_document(pending: Collection) -> None:
    after = pending.find_one_and_update(
        {"state": "Pending"},
        {"$set": {"state": "Taken", "takenBy": "me"}},
        sort=[("createdAt", ASCENDING)],
        return_document=ReturnDocument.AFTER,
    )
    assert after is not None
    assert (after["name"], after["state"], after["takenBy"]) == ("p5", "Taken", "me")
    before = pending.find_one_and_update(
        {"state": "Pending", "scopeId": "s2"},
        {"$set": {"state": "Taken", "takenBy": "you"}},
        sort=[("createdAt", DESCENDING)],
        return_document=ReturnDocument.BEFORE,
    )
    assert before is not None
    assert (before["name"], before["state"], before["takenBy"]) == ("p0", "Pending", "")
    assert pending.find_one({"name": "p0"}, ["state", "takenBy"]) == {
        "_id": before["_id"], "state": "Taken", "takenBy": "you"
    }
    assert pending.count_documents({"state": "Pending"}) == 4


def test_find_one_and_update_takes_the_oldest_due_by_an_integer_range(mongo_db: Database) -> None:
    """The claim of a launch: the oldest pending one whose time (epoch ms) has come; a retry
    queued for later is skipped until then."""
    coll = mongo_db["due"]
    coll.insert_many([{"name": name, "state": "Pending", "createdAt": ms}
                      for name, ms in (("later", 5_000), ("soon", 2_000), ("now", 1_000), ("old", 500))])
    coll.update_one({"name": "old"}, {"$set": {"state": "Taken"}})
    claim = {"$set": {"state": "Taken"}}
    taken = coll.find_one_and_update({"state": "Pending", "createdAt": {"$lte": 2_500}}, claim,
                                     sort=[("createdAt", ASCENDING)], return_document=ReturnDocument.AFTER)
    assert taken is not None and (taken["name"], taken["state"]) == ("now", "Taken")
    taken = coll.find_one_and_update({"state": "Pending", "createdAt": {"$lte": 2_500}}, claim,
                                     sort=[("createdAt", ASCENDING)])
    assert taken is not None and taken["name"] == "soon"
    assert coll.find_one_and_update({"state": "Pending", "createdAt": {"$lte": 2_500}}, claim) is None
    by_id = coll.find_one({"name": "later"})
    assert by_id is not None
    assert coll.find_one_and_update({"_id": by_id["_id"], "state": "Pending", "createdAt": {"$lte": 4_999}},
                                    claim) is None
    assert coll.find_one_and_update({"_id": by_id["_id"], "state": "Pending", "createdAt": {"$lte": 5_000}},
                                    claim) is not None


def test_find_one_and_update_with_no_match_returns_none_and_modifies_nothing(
    pending: Collection,
) -> None:
    before = snapshot(pending)
    update = {"$set": {"state": "Taken", "takenBy": "me"}}
    assert pending.find_one_and_update({"state": "Gone"}, update) is None
    assert pending.find_one_and_update(
        {"$and": [{"scopeId": "s1"}, {"$or": [{"name": "p0"}, {"name": "p2"}]}]},
        update,
        sort=[("createdAt", ASCENDING)],
        return_document=ReturnDocument.AFTER,
    ) is None
    assert pending.find_one_and_update(
        {"$and": [{"state": "Pending"}, {"$or": [{"takenBy": "x"}, {"scopeId": "s9"}]}]},
        update,
        return_document=ReturnDocument.BEFORE,
    ) is None
    assert pending.update_one(
        {"$and": [{"scopeId": "s2"}, {"$or": [{"name": "p1"}, {"name": "p3"}]}]}, update
    ).modified_count == 0
    assert snapshot(pending) == before


def test_find_one_and_update_with_and_or_modifies_only_the_match(pending: Collection) -> None:
    before = snapshot(pending)
    doc = pending.find_one_and_update(
        {"$and": [{"scopeId": "s1"}, {"$or": [{"name": "p2"}, {"name": "p3"}]}]},
        {"$set": {"state": "Taken"}},
        return_document=ReturnDocument.AFTER,
    )
    assert doc is not None and (doc["name"], doc["state"]) == ("p3", "Taken")
    after = snapshot(pending)
    changed = {after[k]["name"] for k in after if after[k] != before[k]}
    assert changed == {"p3"}


def test_find_one_and_update_upsert(mongo_db: Database) -> None:
    coll = mongo_db["singletons"]
    doc = coll.find_one_and_update(
        {"key": "leader", "scopeId": "s1"},
        {"$set": {"holder": "me", "term": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert without_id(doc) == {"key": "leader", "scopeId": "s1", "holder": "me", "term": 1}
    doc = coll.find_one_and_update(
        {"key": "leader", "scopeId": "s1"},
        {"$set": {"holder": "you"}},
        upsert=True,
        return_document=ReturnDocument.BEFORE,
    )
    assert without_id(doc) == {"key": "leader", "scopeId": "s1", "holder": "me", "term": 1}
    assert coll.find_one_and_update(
        {"key": "other"}, {"$set": {"holder": "x"}}, upsert=True,
        return_document=ReturnDocument.BEFORE,
    ) is None
    assert without_id(coll.find_one({"key": "other"})) == {"key": "other", "holder": "x"}
    assert coll.count_documents({}) == 2


@deviates_on(nx="an upsert by find_one_and_update ignores $setOnInsert (the field is missing)")
def test_find_one_and_update_upsert_with_set_on_insert(mongo_db: Database) -> None:
    coll = mongo_db["singletons"]
    doc = coll.find_one_and_update(
        {"key": "leader"},
        {"$set": {"holder": "me"}, "$setOnInsert": {"since": at(0)}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert without_id(doc) == {"key": "leader", "holder": "me", "since": at(0)}
    doc = coll.find_one_and_update(
        {"key": "leader"},
        {"$set": {"holder": "you"}, "$setOnInsert": {"since": at(5)}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert without_id(doc) == {"key": "leader", "holder": "you", "since": at(0)}


def test_find_one_and_delete(pending: Collection) -> None:
    doc = pending.find_one_and_delete({"name": "p2"})
    assert doc is not None and doc["name"] == "p2" and doc["state"] == "Pending"
    assert pending.find_one({"name": "p2"}) is None
    assert pending.find_one_and_delete({"name": "p2"}) is None
    assert pending.find_one_and_delete(
        {"$and": [{"scopeId": "s1"}, {"$or": [{"name": "p0"}, {"name": "p4"}]}]}
    ) is None
    assert pending.count_documents({}) == 5


CLAIM_DOCS = 200
CLAIMERS = 4

CLAIMER_SCRIPT = """
import json, sys
from pymongo import MongoClient, ReturnDocument
uri, coll_name, me = sys.argv[1:4]
client = MongoClient(uri, tz_aware=True)
coll = client.get_default_database()[coll_name]
client.admin.command("ping")
print("ready", flush=True)
sys.stdin.readline()
claimed = []
while True:
    doc = coll.find_one_and_update(
        {"state": "Pending"},
        {"$set": {"state": "Taken", "takenBy": me}},
        sort=[("seq", 1)],
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        break
    claimed.append([doc["seq"], doc["state"], doc["takenBy"]])
print(json.dumps(claimed), flush=True)
"""


def assert_claimed_exactly_once(coll: Collection, claims: dict[str, list[list[Any]]]) -> None:
    seqs = Counter(seq for claimed in claims.values() for seq, _, _ in claimed)
    duplicates = {seq: n for seq, n in seqs.items() if n > 1}
    assert not duplicates, f"claimed more than once: {duplicates}"
    assert set(seqs) == set(range(CLAIM_DOCS))
    for me, claimed in claims.items():
        assert all(state == "Taken" and by == me for _, state, by in claimed)
    stored = {doc["seq"]: doc["takenBy"] for doc in coll.find({}, ["seq", "takenBy"])}
    expected = {seq: me for me, claimed in claims.items() for seq, _, _ in claimed}
    assert stored == expected
    assert coll.count_documents({"state": "Pending"}) == 0


def fill_claim_queue(coll: Collection) -> None:
    coll.insert_many([{"seq": i, "state": "Pending", "takenBy": ""} for i in range(CLAIM_DOCS)])


def test_claims_are_exactly_once_across_processes(mongo_db: Database, mongo_db_uri: str) -> None:
    coll = mongo_db["claims"]
    fill_claim_queue(coll)
    procs = {
        f"proc{i}": subprocess.Popen(
            [sys.executable, "-c", CLAIMER_SCRIPT, mongo_db_uri, coll.name, f"proc{i}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for i in range(CLAIMERS)
    }
    try:
        for proc in procs.values():
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs.values():  # start them together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        claims = {}
        for me, proc in procs.items():
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"{me} exited with {proc.returncode}"
            claims[me] = json.loads(out)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert_claimed_exactly_once(coll, claims)


def run_in_threads(uri: str, work: Callable[[Collection, str], list[Any]]) -> dict[str, Any]:
    """Run `work(collection, name)` in CLAIMERS threads, each with its own client."""
    start = threading.Barrier(CLAIMERS)
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def body(me: str) -> None:
        client: MongoClient[Doc]
        try:
            with MongoClient(uri, tz_aware=True) as client:
                client.admin.command("ping")
                coll: Collection[Doc] = client.get_default_database()["claims"]
                start.wait(timeout=30)
                results[me] = work(coll, me)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(f"thread{i}",)) for i in range(CLAIMERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker thread did not finish in 120s"
    assert not errors, errors
    return results


def test_claims_are_exactly_once_across_threads(mongo_db: Database, mongo_db_uri: str) -> None:
    coll = mongo_db["claims"]
    fill_claim_queue(coll)

    def claim_all(c: Collection, me: str) -> list[Any]:
        claimed = []
        while (doc := c.find_one_and_update(
            {"state": "Pending"},
            {"$set": {"state": "Taken", "takenBy": me}},
            sort=[("seq", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )) is not None:
            claimed.append([doc["seq"], doc["state"], doc["takenBy"]])
        return claimed

    assert_claimed_exactly_once(coll, run_in_threads(mongo_db_uri, claim_all))


def test_find_one_and_delete_is_exactly_once_across_threads(
    mongo_db: Database, mongo_db_uri: str
) -> None:
    coll = mongo_db["claims"]
    fill_claim_queue(coll)

    def delete_all(c: Collection, me: str) -> list[Any]:
        deleted = []
        while (doc := c.find_one_and_delete({"state": "Pending"})) is not None:
            deleted.append(doc["seq"])
        return deleted

    results = run_in_threads(mongo_db_uri, delete_all)
    seqs = Counter(seq for deleted in results.values() for seq in deleted)
    assert not {seq: n for seq, n in seqs.items() if n > 1}
    assert set(seqs) == set(range(CLAIM_DOCS))
    assert coll.count_documents({}) == 0


# ---------------------------------------------------------------- unique indexes


def unique_index_keys(coll: Collection) -> list[list[tuple[str, int]]]:
    """The keys of the collection's unique indexes (other than _id), whatever their names."""
    return [
        [(field, int(order)) for field, order in spec["key"]]
        for spec in coll.index_information().values()
        if spec.get("unique") and spec["key"] != [("_id", 1)]
    ]


def test_unique_index_single_field(mongo_db: Database) -> None:
    coll = mongo_db["named"]
    assert coll.create_index([("name", ASCENDING)], unique=True, name="name_unique") \
        == "name_unique"
    assert coll.create_index([("name", ASCENDING)], unique=True, name="name_unique") \
        == "name_unique"
    coll.insert_one({"name": "a"})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"name": "a"})
    coll.insert_one({"name": "b"})
    with pytest.raises(DuplicateKeyError):
        coll.update_one({"name": "b"}, {"$set": {"name": "a"}})
    assert coll.count_documents({}) == 2
    assert unique_index_keys(coll) == [[("name", ASCENDING)]]


def test_unique_index_compound(mongo_db: Database) -> None:
    coll = mongo_db["scoped"]
    keys = [("scopeId", ASCENDING), ("name", ASCENDING)]
    assert coll.create_index(keys, unique=True, name="scope_name") == "scope_name"
    assert coll.create_index(keys, unique=True, name="scope_name") == "scope_name"
    coll.insert_one({"scopeId": "s1", "name": "a"})
    coll.insert_one({"scopeId": "s2", "name": "a"})
    coll.insert_one({"scopeId": "s1", "name": "b"})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"scopeId": "s1", "name": "a"})
    with pytest.raises(DuplicateKeyError):
        coll.replace_one({"scopeId": "s2", "name": "a"}, {"scopeId": "s1", "name": "b"})
    assert coll.count_documents({}) == 3
    assert unique_index_keys(coll) == [keys]


@deviates_on(nx="index_information() lists the index under a generated name, e.g. 'idx_idx_name'")
def test_index_information_lists_indexes_by_their_names(mongo_db: Database) -> None:
    coll = mongo_db["named"]
    coll.create_index([("name", ASCENDING)], unique=True, name="name_unique")
    coll.create_index([("scopeId", ASCENDING), ("name", ASCENDING)], unique=True, name="scope_name")
    info = coll.index_information()
    assert set(info) == {"_id_", "name_unique", "scope_name"}
    assert info["name_unique"]["key"] == [("name", ASCENDING)]
    assert info["name_unique"].get("unique") is True
    assert info["scope_name"]["key"] == [("scopeId", ASCENDING), ("name", ASCENDING)]
    assert info["scope_name"].get("unique") is True


# ---------------------------------------------------------------- change streams


def test_watch_delivers_inserts_and_updates_with_full_document(mongo_db: Database) -> None:
    coll = mongo_db["watched"]
    with watch(coll) as stream:
        coll.insert_one({"_id": "j1", "state": "Pending", "n": 0})
        event = next_event(stream)
        assert event["operationType"] == "insert"
        assert event["fullDocument"] == {"_id": "j1", "state": "Pending", "n": 0}
        coll.update_one({"_id": "j1"}, {"$set": {"state": "Running"}, "$inc": {"n": 1}})
        event = next_event(stream)
        assert event["operationType"] == "update"
        assert event["fullDocument"] == {"_id": "j1", "state": "Running", "n": 1}
        coll.update_one({"_id": "j1"}, {"$set": {"progress.message": "half"}})
        event = next_event(stream)
        assert event["operationType"] == "update"
        assert event["fullDocument"] == {
            "_id": "j1", "state": "Running", "n": 1, "progress": {"message": "half"}
        }
        assert_no_more_events(stream)


def test_watch_filters_out_deletes(mongo_db: Database) -> None:
    coll = mongo_db["watched"]
    coll.insert_one({"_id": "old"})
    with watch(coll) as stream:
        coll.delete_one({"_id": "old"})
        coll.insert_one({"_id": "new"})
        event = next_event(stream)
        assert (event["operationType"], event["fullDocument"]["_id"]) == ("insert", "new")
        assert_no_more_events(stream)


@deviates_on(
    nx="a replace event has operationType 'update'",
    java="a replace event has operationType 'update'",
)
def test_watch_delivers_replace_with_full_document(mongo_db: Database) -> None:
    coll = mongo_db["watched"]
    coll.insert_one({"_id": "r", "v": 1})
    with watch(coll) as stream:
        coll.replace_one({"_id": "r"}, {"v": 2, "w": "x"})
        event = next_event(stream)
        assert event["operationType"] == "replace"
        assert event["fullDocument"] == {"_id": "r", "v": 2, "w": "x"}


def test_watch_match_on_full_document_field(mongo_db: Database) -> None:
    coll = mongo_db["watched"]
    pipeline = [{"$match": {
        "operationType": {"$in": ["insert", "update", "replace"]},
        "fullDocument.scopeId": "mine",
    }}]
    with watch(coll, pipeline) as stream:
        coll.insert_one({"_id": 1, "scopeId": "other"})
        coll.insert_one({"_id": 2, "scopeId": "mine"})
        event = next_event(stream)
        assert event["fullDocument"] == {"_id": 2, "scopeId": "mine"}
        coll.update_one({"_id": 1}, {"$set": {"n": 1}})
        coll.update_one({"_id": 2}, {"$set": {"n": 2}})
        event = next_event(stream)
        assert event["operationType"] == "update"
        assert event["fullDocument"] == {"_id": 2, "scopeId": "mine", "n": 2}
        coll.update_one({"_id": 1}, {"$set": {"scopeId": "mine"}})
        event = next_event(stream)
        assert event["fullDocument"] == {"_id": 1, "scopeId": "mine", "n": 1}
        assert_no_more_events(stream)


@deviates_on(java="an update event's documentKey is the update itself, without the _id")
def test_watch_match_for_a_target_without_looking_documents_up(mongo_db: Database) -> None:
    """A worker's stream: inserts for any worker or for it, and updates; no document is looked
    up (an update event carries none on MongoDB, where null matches it; the embedded server
    sends its post-image)."""
    coll = mongo_db["watched"]
    pipeline = [{"$match": {
        "operationType": {"$in": ["insert", "update"]},
        "fullDocument.targetWorker": {"$in": ["", "w1", None]},
    }}]
    with coll.watch(pipeline, max_await_time_ms=100) as stream:
        coll.insert_one({"_id": "r1", "targetWorker": "w2"})
        coll.insert_one({"_id": "r2", "targetWorker": "w1"})
        coll.insert_one({"_id": "r3", "targetWorker": ""})
        coll.update_one({"_id": "r3"}, {"$set": {"state": "Taken"}})
        coll.delete_one({"_id": "r2"})
        events = [next_event(stream) for _ in range(3)]
        assert [(e["operationType"], e["documentKey"].get("_id")) for e in events] == [
            ("insert", "r2"), ("insert", "r3"), ("update", "r3")
        ]
        assert events[0]["fullDocument"] == {"_id": "r2", "targetWorker": "w1"}
        assert_no_more_events(stream)


def test_watch_match_on_a_looked_up_field_of_upserts_and_updates(mongo_db: Database) -> None:
    """`shards logs -f` follows one run's log: the events of one document, matched on a field of
    its looked-up post-image (documentKey is a known quirk), whether an upsert inserted it or an
    update_one with $push changed it."""
    coll = mongo_db["watched"]
    pipeline = [{"$match": {"operationType": {"$in": ["insert", "update", "replace"]},
                            "fullDocument.runId": "r2"}}]
    with watch(coll, pipeline) as stream:
        for key in ("r1", "r2", "r1", "r2"):
            coll.update_one({"_id": key}, {"$push": {"lines": {"$each": ["x"], "$slice": -5}},
                                           "$setOnInsert": {"runId": key}}, upsert=True)
        events = [next_event(stream) for _ in range(2)]
        assert [(e["operationType"], e["fullDocument"]["lines"]) for e in events] == [
            ("insert", ["x"]), ("update", ["x", "x"])]
        assert_no_more_events(stream)


@deviates_on(nx="matches nothing")
def test_watch_match_with_or(mongo_db: Database) -> None:
    """Outside the vocabulary: `$or` in a change stream's $match (the embedded server matches
    nothing with it)."""
    coll = mongo_db["watched"]
    pipeline = [{"$match": {"$or": [{"operationType": "insert"}, {"operationType": "update"}]}}]
    with coll.watch(pipeline, max_await_time_ms=100) as stream:
        coll.insert_one({"_id": "r1"})
        assert next_event(stream, timeout=2)["documentKey"]["_id"] == "r1"


@deviates_on(java="find_one_and_update writes no oplog entry, so a change stream never sees it")
def test_watch_delivers_find_one_and_update(mongo_db: Database) -> None:
    """The store moves records between states with find_one_and_update; followers of the
    records (workers, the operator) must see those changes."""
    coll = mongo_db["watched"]
    coll.insert_one({"_id": "f", "state": "Running"})
    with watch(coll) as stream:
        coll.find_one_and_update({"_id": "f", "state": "Running"}, {"$set": {"state": "Stopping"}})
        event = next_event(stream)
        assert event["operationType"] == "update"
        assert event["fullDocument"] == {"_id": "f", "state": "Stopping"}


@deviates_on(
    nx="getMore returns at once: maxAwaitTimeMS is not honoured",
    java="getMore returns at once: maxAwaitTimeMS is not honoured",
)
def test_try_next_waits_up_to_max_await_time(mongo_db: Database) -> None:
    """An idle stream waits server-side (no busy polling), but never beyond max_await_time_ms."""
    coll = mongo_db["watched"]
    coll.insert_one({"_id": "before"})
    with watch(coll) as stream:
        stream.try_next()  # the first batch may come back at once
        started = time.monotonic()
        for _ in range(3):
            assert stream.try_next() is None
        elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 10.0, f"three idle polls took {elapsed:.3f}s"


def test_try_next_returns_none_when_idle(mongo_db: Database) -> None:
    coll = mongo_db["watched"]
    coll.insert_one({"_id": "before"})
    with watch(coll) as stream:
        started = time.monotonic()
        assert stream.try_next() is None
        assert stream.try_next() is None
        assert time.monotonic() - started < 5.0
        assert stream.alive


def test_resume_after_the_token_of_an_event(mongo_db: Database) -> None:
    coll = mongo_db["watched"]
    with watch(coll) as stream:
        coll.insert_one({"_id": "a"})
        assert next_event(stream)["fullDocument"]["_id"] == "a"
        token = stream.resume_token
    assert token is not None
    coll.insert_one({"_id": "b"})
    coll.update_one({"_id": "a"}, {"$set": {"v": 1}})
    coll.insert_one({"_id": "c"})
    with watch(coll, resume_after=token) as resumed:
        seen = [(e["operationType"], e["fullDocument"]["_id"]) for e in
                (next_event(resumed) for _ in range(3))]
        assert seen == [("insert", "b"), ("update", "a"), ("insert", "c")]
        assert_no_more_events(resumed)


@deviates_on(nx="answers ok with an empty, ended cursor (id 0), so pymongo ends a change stream "
                 "without an error; after a restart it also gives forgotten ids to new cursors, so a "
                 "getMore may read another client's stream (ChangeFeed opens streams again)")
def test_a_getmore_on_a_cursor_the_server_does_not_know_fails(mongo_db: Database) -> None:
    """What a stream meets after a restart of its server: MongoDB says CursorNotFound (43), and
    pymongo resumes the stream."""
    with pytest.raises(OperationFailure) as caught:
        mongo_db.command("getMore", 987_654_321, collection="watched")
    assert caught.value.code == 43


@deviates_on(
    java="no postBatchResumeToken: resume_token stays None until the first event is returned"
)
def test_resume_after_the_token_of_an_idle_stream(mongo_db: Database) -> None:
    coll = mongo_db["watched"]
    coll.insert_one({"_id": "earlier"})
    with watch(coll) as stream:
        assert stream.try_next() is None
        token = stream.resume_token
    assert token is not None, "an idle stream has no resume token (no postBatchResumeToken)"
    coll.insert_one({"_id": "x"})
    coll.insert_one({"_id": "y"})
    with watch(coll, resume_after=token) as resumed:
        seen = [next_event(resumed)["fullDocument"]["_id"] for _ in range(2)]
        assert seen == ["x", "y"]
        assert_no_more_events(resumed)


def test_closing_a_stream_is_clean(mongo_db: Database) -> None:
    coll = mongo_db["watched"]
    stream = watch(coll)
    coll.insert_one({"_id": 1})
    assert next_event(stream)["fullDocument"] == {"_id": 1}
    stream.close()
    assert not stream.alive
    stream.close()  # idempotent
    coll.insert_one({"_id": 2})
    assert coll.count_documents({}) == 2
    with watch(coll) as again:
        coll.insert_one({"_id": 3})
        assert next_event(again)["fullDocument"] == {"_id": 3}


# ---------------------------------------------------------------- outside the vocabulary


def _quirk_exists(coll: Collection) -> None:
    assert names(coll, {"extra": {"$exists": True}}) == {"b", "c"}
    assert names(coll, {"extra": {"$exists": False}}) == {"a"}


def _quirk_ne_null(coll: Collection) -> None:
    assert names(coll, {"extra": {"$ne": None}}) == {"b"}


def _quirk_top_level_or_beside_fields(coll: Collection) -> None:
    query = {"$or": [{"name": "a"}, {"name": "b"}], "scopeId": "s1"}
    assert names(coll, query) == {"a"}
    before = snapshot(coll)
    no_match = {"scopeId": "s1", "$or": [{"status.state": "Done"}, {"rank": 2}]}
    assert coll.update_one(no_match, {"$set": {"x": 1}}).matched_count == 0
    assert coll.find_one_and_update(no_match, {"$set": {"x": 2}}) is None
    assert snapshot(coll) == before


def _quirk_id_as_secondary_sort(coll: Collection) -> None:
    docs = list(coll.find({}, sort=[("rank", ASCENDING), ("_id", DESCENDING)]))
    assert [d["name"] for d in docs] == ["c", "b", "a"]


def _quirk_update_event_document_key(coll: Collection) -> None:
    with watch(coll) as stream:
        coll.update_one({"name": "a"}, {"$set": {"y": 1}})
        event = next_event(stream)
    assert event["documentKey"] == {"_id": 1}


QUIRKS: dict[str, Callable[[Collection], None]] = {
    "exists": _quirk_exists,
    "ne_null": _quirk_ne_null,
    "top_level_or_beside_fields": _quirk_top_level_or_beside_fields,
    "id_as_secondary_sort": _quirk_id_as_secondary_sort,
    "update_event_document_key": _quirk_update_event_document_key,
}


@pytest.mark.xfail(strict=False, reason="outside the vocabulary: wrong on NX and/or java")
@pytest.mark.parametrize("quirk", sorted(QUIRKS))
def test_known_quirks(mongo_db: Database, quirk: str) -> None:
    """Documents what the store must NOT use; passes on real MongoDB."""
    coll = mongo_db["quirks"]
    coll.insert_many([
        {"_id": 1, "name": "a", "scopeId": "s1", "rank": 1},
        {"_id": 2, "name": "b", "scopeId": "s2", "rank": 1, "extra": "here"},
        {"_id": 3, "name": "c", "scopeId": "s2", "rank": 1, "extra": None},
    ])
    QUIRKS[quirk](coll)

