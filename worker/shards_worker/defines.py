"""Defining a scope: write the catalog the app gives for it into process records.

A define is written in batches (one unordered bulk upsert each, idempotent), on a thread of
its own (Definer) so the claim loop keeps claiming launches meanwhile. After each batch its
progress is recorded on the define request: a define stopped by a shutdown (between batches)
or cut by a kill is resumed there by the worker that takes the request next.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from shards.app import App, ProcessDefinition
from shards.errors import StoreUnavailable
from shards.requests import Request
from shards_store import Store

from shards_worker.failures import error_line
from shards_worker.state import WorkerState

log = logging.getLogger("shards.worker")

BATCH = 500  # records per bulk write: a shutdown waits for one batch at most


class Outcome(enum.Enum):
    DONE = "done"  # defined (or failed, reported on the scope): the request is complete
    STOPPED = "stopped"  # the worker is shutting down: the request goes back, with its progress
    LOST = "lost"  # the request is no longer this worker's: another continues it


def catalog_mark(process_ids: list[str]) -> str:
    """Names one catalog: a define resumes only over the catalog it started with."""
    return hashlib.blake2b("\n".join(process_ids).encode(), digest_size=8).hexdigest()


def resume_point(progress: dict[str, Any], mark: str, total: int) -> int:
    """How many processes an earlier attempt wrote (0: none, or another catalog)."""
    done = progress.get("done")
    if progress.get("catalog") != mark or not isinstance(done, int) or not 0 <= done <= total:
        return 0
    return done


def define_scope(store: Store, app: App, request: Request, worker_id: str,
                 keep_going: Callable[[], bool] = lambda: True) -> Outcome:
    """Handle a define request: only_if_missing skips a defined scope; clean drops idle records
    first; records of processes no longer in the catalog are removed unless active."""
    scope_id, request_id = request.scope_id, str(request.id)
    existing = store.scopes.get(scope_id)
    if request.options.get("onlyIfMissing") and existing is not None and existing.state == "Defined":
        store.scopes.acknowledge(scope_id, request_id)
        store.requests.complete(request)
        return Outcome.DONE
    try:
        catalog = app.catalog(app.scope_data(scope_id))
    except Exception as error:  # the app's catalog code failed: report it, keep serving
        message = error_line(error)
        log.warning("define of scope %s failed: %s", scope_id, message)
        store.scopes.defined(
            scope_id, process_ids=[], request_id=request_id, worker_id=worker_id, error=message
        )
        store.requests.complete(request)
        return Outcome.DONE
    outcome = _write(store, request, worker_id, catalog, keep_going)
    if outcome is not Outcome.DONE:
        return outcome
    removed = store.processes.remove_idle(scope_id, keep=list(catalog))
    store.scopes.defined(
        scope_id, process_ids=list(catalog), request_id=request_id, worker_id=worker_id
    )
    store.requests.complete(request)
    log.info("defined scope %s: %d processes, %d removed", scope_id, len(catalog), removed)
    return Outcome.DONE


def _write(store: Store, request: Request, worker_id: str, catalog: dict[str, ProcessDefinition],
           keep_going: Callable[[], bool]) -> Outcome:
    """Write the catalog in batches from where an earlier attempt got to, recording progress."""
    scope_id = request.scope_id
    ids = list(catalog)
    total, mark = len(ids), catalog_mark(ids)
    start = resume_point(request.progress, mark, total)
    if start:
        log.info("resuming the define of scope %s at %d/%d", scope_id, start, total)
    elif request.options.get("clean"):
        store.processes.remove_idle(scope_id)
    for first in range(start, total, BATCH):
        if not keep_going():
            log.info("define of scope %s interrupted at %d/%d by the shutdown; it resumes there",
                     scope_id, first, total)
            return Outcome.STOPPED
        batch = ids[first:first + BATCH]
        store.processes.define_many(scope_id, [(pid, catalog[pid].to_fields()) for pid in batch])
        progress = {"done": first + len(batch), "total": total, "catalog": mark}
        if not store.requests.note_progress(request, worker_id, progress):
            log.warning("define of scope %s was taken from this worker at %d/%d; another continues it",
                        scope_id, first + len(batch), total)
            return Outcome.LOST
        request.progress = progress
    return Outcome.DONE


class Definer:
    """Runs defines one at a time on a thread of its own: the claim loop claims a define only
    while this is idle, and goes on claiming launches and stops meanwhile."""

    def __init__(self, store: Store, app: App, state: WorkerState, *,
                 on_outage: Callable[[StoreUnavailable], None], on_idle: Callable[[], None],
                 retry_pause: float) -> None:
        self.store = store
        self.app = app
        self.state = state
        self._on_outage = on_outage
        self._on_idle = on_idle
        self._retry_pause = retry_pause
        self._thread: threading.Thread | None = None
        self._request: Request | None = None

    def idle(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def start(self, request: Request) -> None:
        """Define on the thread (the claim loop claimed it while idle)."""
        self._request = request
        self._thread = threading.Thread(target=self._run, args=(request,), daemon=True,
                                        name=f"shards-define-{request.scope_id[:16]}")
        self._thread.start()

    def finish(self, deadline: float) -> None:
        """At shutdown (stopping is set): wait until the define stops between batches, up to
        the deadline (monotonic); one still going then (the app's catalog code is slow) is put
        back for another worker, which resumes it: this one's next progress write fails."""
        if self._thread is None:
            return
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive() and self._request is not None:
            log.warning("define of scope %s still under way at the end of the shutdown grace; "
                        "handed to another worker", self._request.scope_id)
            self._hand_back(self._request)

    def _run(self, request: Request) -> None:
        try:
            outcome = self._define(request)
            if outcome is Outcome.STOPPED:
                self._hand_back(request)
        except BaseException:  # a bug must not kill the worker; the request stays taken until it leaves
            log.exception("the define of scope %s could not be completed", request.scope_id)
        finally:
            self._on_idle()

    def _define(self, request: Request) -> Outcome:
        """Define; while MongoDB is unreachable, try again (from the progress made) until the
        shutdown."""
        keep_going = lambda: not self.state.stopping.is_set()  # noqa: E731
        while True:
            try:
                return define_scope(self.store, self.app, request, self.state.id, keep_going)
            except StoreUnavailable as error:
                self._on_outage(error)
                if self.state.stopping.wait(self._retry_pause):
                    return Outcome.STOPPED

    def _hand_back(self, request: Request) -> None:
        try:
            self.store.requests.release(request)
        except StoreUnavailable as error:
            log.warning("could not hand the define of scope %s back: %s", request.scope_id, error)
