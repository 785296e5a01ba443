"""A define in batches: where it resumes, and how it ends when the worker stops or loses it."""

from __future__ import annotations

from typing import Any

import shards
from shards.requests import Request, RequestKind
from shards_worker import defines
from shards_worker.defines import Outcome, catalog_mark, define_scope, resume_point


def work(ctx: shards.ProcessContext) -> None:
    pass


def app_of(size: int) -> shards.App:
    return shards.App(get_process_list=lambda data: [
        shards.ProcessDefinition(f"p{i:04d}", f"P {i}", work) for i in range(size)])


class FakeStore:
    """Records what a define writes; `hold_after` batches, progress notes start failing."""

    def __init__(self, hold_after: int | None = None) -> None:
        self.batches: list[list[str]] = []
        self.notes: list[dict[str, Any]] = []
        self.hold_after = hold_after
        self.defined: list[str] | None = None
        self.completed = False
        self.scopes, self.processes, self.requests = self, self, self

    # scopes
    def get(self, scope_id: str) -> None:
        return None


    # processes
    def define_many(self, scope_id: str, definitions: list[tuple[str, dict[str, Any]]]) -> int:
        self.batches.append([pid for pid, _ in definitions])
        return len(definitions)

    def remove_idle(self, scope_id: str, keep: list[str] | None = None) -> int:
        return 0

    # requests
    def note_progress(self, request: Request, worker_id: str, progress: dict[str, Any]) -> bool:
        if self.hold_after is not None and len(self.notes) >= self.hold_after:
            return False
        self.notes.append(progress)
        return True

    def complete(self, request: Request) -> None:
        self.completed = True


def scope_defined(store: FakeStore) -> None:
    def defined(scope_id: str, *, process_ids: list[str], **_: Any) -> None:
        store.defined = process_ids
    store.scopes.defined = defined  # type: ignore[method-assign]


def request(progress: dict[str, Any] | None = None) -> Request:
    return Request(kind=RequestKind.DEFINE, scope_id="big", progress=progress or {}, id="r1")


def test_a_define_is_written_in_batches_with_its_progress(monkeypatch: Any) -> None:
    monkeypatch.setattr(defines, "BATCH", 4)
    store = FakeStore()
    scope_defined(store)
    assert define_scope(store, app_of(10), request(), "w1") is Outcome.DONE  # type: ignore[arg-type]
    assert [len(b) for b in store.batches] == [4, 4, 2]
    assert [n["done"] for n in store.notes] == [4, 8, 10] and store.notes[-1]["total"] == 10
    assert store.defined is not None and len(store.defined) == 10 and store.completed


def test_a_define_resumes_where_it_was_over_the_same_catalog_only(monkeypatch: Any) -> None:
    monkeypatch.setattr(defines, "BATCH", 4)
    ids = [f"p{i:04d}" for i in range(10)]
    mark = catalog_mark(ids)
    assert resume_point({"done": 8, "total": 10, "catalog": mark}, mark, 10) == 8
    assert resume_point({"done": 8, "catalog": "another"}, mark, 10) == 0
    assert resume_point({"done": 11, "catalog": mark}, mark, 10) == 0
    assert resume_point({"done": "8", "catalog": mark}, mark, 10) == 0
    store = FakeStore()
    scope_defined(store)
    define_scope(store, app_of(10), request({"done": 4, "total": 10, "catalog": mark}), "w1")  # type: ignore[arg-type]
    assert store.batches == [ids[4:8], ids[8:]]


def test_a_stopping_worker_stops_between_batches_and_a_lost_define_stops_at_once(monkeypatch: Any) -> None:
    monkeypatch.setattr(defines, "BATCH", 4)
    store = FakeStore()
    turns = iter([True, True, False])
    assert define_scope(store, app_of(10), request(), "w1", lambda: next(turns)) is Outcome.STOPPED  # type: ignore[arg-type]
    assert len(store.batches) == 2 and not store.completed
    lost = FakeStore(hold_after=1)
    assert define_scope(lost, app_of(10), request(), "w1") is Outcome.LOST  # type: ignore[arg-type]
    assert len(lost.batches) == 2 and not lost.completed
