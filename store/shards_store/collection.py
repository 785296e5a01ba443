"""A thin wrapper over one pymongo collection that records the shape of every query it runs."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from pymongo import InsertOne, ReturnDocument, UpdateOne
from pymongo.collection import Collection as MongoCollection
from pymongo.errors import BulkWriteError, ConnectionFailure
from shards.errors import StoreUnavailable

from shards_store.indexes import QueryShape

Doc = dict[str, Any]
Sort = list[tuple[str, int]]
P = ParamSpec("P")
R = TypeVar("R")


def describe_outage(error: BaseException) -> str:
    """One readable line for a lost connection: pymongo's message ends in a topology dump."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    first = re.split(r",? (?:Timeout: |\(configured timeouts)", first)[0]
    return f"MongoDB unreachable: {first[:160]}"


def translated(method: Callable[P, R]) -> Callable[P, R]:
    """Connection failures become StoreUnavailable, which callers outside the store can catch."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except ConnectionFailure as error:
            raise StoreUnavailable(describe_outage(error)) from error

    return call


class QueryLog:
    """Collects query shapes when enabled (tests), so each can be checked against the indexes,
    and every round trip in order (collection, operation, filtered fields), so tests can count
    what a path costs."""

    def __init__(self) -> None:
        self.enabled = False
        self.shapes: set[QueryShape] = set()
        self.round_trips: list[tuple[str, str, frozenset[str]]] = []

    def note(self, collection: str, query: Doc, sort: Sort | None = None, *, operation: str = "") -> None:
        if self.enabled:
            self.shapes.add(QueryShape.of(collection, query, sort))
            self.round_trips.append((collection, operation, frozenset(query)))


class Collection:
    def __init__(self, mongo: MongoCollection[Doc], log: QueryLog) -> None:
        self.mongo = mongo
        self.name = mongo.name
        self._log = log

    @translated
    def find(
        self,
        query: Doc,
        *,
        sort: Sort | None = None,
        limit: int = 0,
    ) -> Iterator[Doc]:
        """Read whole: a connection lost halfway raises here, not in the caller's loop."""
        self._log.note(self.name, query, sort, operation="find")
        cursor = self.mongo.find(query, limit=limit)
        if sort:
            cursor = cursor.sort(sort)
        return iter(list(cursor))

    @translated
    def find_one(self, query: Doc) -> Doc | None:
        self._log.note(self.name, query, operation="find_one")
        return self.mongo.find_one(query)

    @translated
    def count(self, query: Doc) -> int:
        self._log.note(self.name, query, operation="count")
        return self.mongo.count_documents(query)

    @translated
    def count_by(self, query: Doc, field: str) -> dict[Any, int]:
        """How many documents match, per value of one field: one $match + $group round trip."""
        self._log.note(self.name, query, operation="count_by")
        pipeline = [{"$match": query}, {"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]
        return {group["_id"]: int(group["n"]) for group in self.mongo.aggregate(pipeline)}

    @translated
    def find_one_and_update(
        self, query: Doc, update: Doc, *, sort: Sort | None = None, upsert: bool = False,
        before: bool = False,
    ) -> Doc | None:
        """The document after the update (or before it, with before=True); None if none matched."""
        self._log.note(self.name, query, sort, operation="find_one_and_update")
        returned = ReturnDocument.BEFORE if before else ReturnDocument.AFTER
        return self.mongo.find_one_and_update(
            query, update, sort=sort, upsert=upsert, return_document=returned
        )

    @translated
    def find_one_and_delete(self, query: Doc) -> Doc | None:
        self._log.note(self.name, query, operation="find_one_and_delete")
        return self.mongo.find_one_and_delete(query)

    @translated
    def update_one(self, query: Doc, update: Doc, *, upsert: bool = False) -> int:
        self._log.note(self.name, query, operation="update_one")
        return self.mongo.update_one(query, update, upsert=upsert).matched_count

    @translated
    def write_many(self, inserts: list[tuple[Doc, Doc, Doc]], upserts: list[tuple[Doc, Doc]]) -> int:
        """One unordered bulk write: an insert of each document believed missing, given with
        its upsert as (document, query, update), and the (query, update) upserts. An insert that
        meets a document written meanwhile (a duplicate key) is written again as its upsert.
        Returns how many documents were inserted. (Inserts, not upserts, for new documents: an
        upsert that inserts costs NX-27017 a scan of the collection.)"""
        operations: list[InsertOne[Doc] | UpdateOne] = [InsertOne(doc) for doc, _, _ in inserts]
        operations += [UpdateOne(query, update, upsert=True) for query, update in upserts]
        if not operations:
            return 0
        for query, _ in upserts:
            self._log.note(self.name, query, operation="write_many")
        try:
            self.mongo.bulk_write(operations, ordered=False)
            return len(inserts)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            raced = [e["index"] for e in errors if e.get("code") == 11000 and e["index"] < len(inserts)]
            if len(raced) != len(errors) or error.details.get("writeConcernErrors"):
                raise
        again = [UpdateOne(inserts[i][1], inserts[i][2], upsert=True) for i in raced]
        self.mongo.bulk_write(again, ordered=False)
        return len(inserts) - len(raced)

    @translated
    def delete_one(self, query: Doc) -> int:
        self._log.note(self.name, query, operation="delete_one")
        return self.mongo.delete_one(query).deleted_count

    @translated
    def delete_many(self, query: Doc) -> int:
        self._log.note(self.name, query, operation="delete_many")
        return self.mongo.delete_many(query).deleted_count

    @translated
    def insert_one(self, doc: Doc) -> Any:
        if self._log.enabled:
            self._log.round_trips.append((self.name, "insert_one", frozenset()))
        return self.mongo.insert_one(doc).inserted_id
