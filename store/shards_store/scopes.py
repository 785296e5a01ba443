"""Scopes: what the last define of each scope produced."""

from __future__ import annotations

from shards.records import SCHEMA_FIELD, SCHEMA_VERSION, ScopeRecord, now_ms

from shards_store.collection import Collection


class ScopeCatalog:
    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    def get(self, scope_id: str) -> ScopeRecord | None:
        doc = self.collection.find_one({"_id": scope_id})
        return ScopeRecord.from_doc(doc) if doc else None

    def all(self) -> list[ScopeRecord]:
        """Every scope that was ever defined, by id (a few per tenant: a scan of the _id index)."""
        scopes = [ScopeRecord.from_doc(doc) for doc in self.collection.find({})]
        return sorted(scopes, key=lambda scope: scope.scope_id)

    def defined(
        self,
        scope_id: str,
        *,
        process_ids: list[str],
        request_id: str,
        worker_id: str,
        error: str = "",
    ) -> None:
        fields: dict[str, object] = {
            "state": "Failed" if error else "Defined",
            "error": error,
            "requestId": request_id,
            "definedBy": worker_id,
            "definedAt": now_ms(),
        }
        if not error:
            fields["processIds"] = process_ids
        update = {"$set": fields, "$setOnInsert": {SCHEMA_FIELD: SCHEMA_VERSION}}
        self.collection.update_one({"_id": scope_id}, update, upsert=True)

    def acknowledge(self, scope_id: str, request_id: str) -> None:
        """Mark a define request handled without changing the scope (only_if_missing)."""
        self.collection.update_one({"_id": scope_id}, {"$set": {"requestId": request_id}})
