"""A thin wrapper over one pymongo collection that records the shape of every query it runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pymongo import ReturnDocument
from pymongo.collection import Collection as MongoCollection

from shards_store.indexes import QueryShape

Doc = dict[str, Any]
Sort = list[tuple[str, int]]


class QueryLog:
    """Collects query shapes when enabled (tests), so each can be checked against the indexes."""

    def __init__(self) -> None:
        self.enabled = False
        self.shapes: set[QueryShape] = set()

    def note(self, collection: str, query: Doc, sort: Sort | None = None) -> None:
        if self.enabled:
            self.shapes.add(QueryShape.of(collection, query, sort))


class Collection:
    def __init__(self, mongo: MongoCollection[Doc], log: QueryLog) -> None:
        self.mongo = mongo
        self.name = mongo.name
        self._log = log

    def find(
        self,
        query: Doc,
        *,
        sort: Sort | None = None,
        limit: int = 0,
    ) -> Iterator[Doc]:
        self._log.note(self.name, query, sort)
        cursor = self.mongo.find(query, limit=limit)
        if sort:
            cursor = cursor.sort(sort)
        return iter(cursor)

    def find_one(self, query: Doc) -> Doc | None:
        self._log.note(self.name, query)
        return self.mongo.find_one(query)

    def count(self, query: Doc) -> int:
        self._log.note(self.name, query)
        return self.mongo.count_documents(query)

    def find_one_and_update(
        self, query: Doc, update: Doc, *, sort: Sort | None = None, upsert: bool = False
    ) -> Doc | None:
        self._log.note(self.name, query, sort)
        return self.mongo.find_one_and_update(
            query, update, sort=sort, upsert=upsert, return_document=ReturnDocument.AFTER
        )

    def find_one_and_delete(self, query: Doc) -> Doc | None:
        self._log.note(self.name, query)
        return self.mongo.find_one_and_delete(query)

    def update_one(self, query: Doc, update: Doc, *, upsert: bool = False) -> int:
        self._log.note(self.name, query)
        return self.mongo.update_one(query, update, upsert=upsert).matched_count

    def delete_one(self, query: Doc) -> int:
        self._log.note(self.name, query)
        return self.mongo.delete_one(query).deleted_count

    def delete_many(self, query: Doc) -> int:
        self._log.note(self.name, query)
        return self.mongo.delete_many(query).deleted_count

    def insert_one(self, doc: Doc) -> Any:
        return self.mongo.insert_one(doc).inserted_id
