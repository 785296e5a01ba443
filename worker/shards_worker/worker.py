"""The worker: start, sweep, wait for a change or a timeout, claim, execute, heartbeat, stop."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from shards.app import App
from shards.records import Request, RequestKind
from shards.states import State
from shards_store import ChangeFeed, ChangeFeedError, Store

from shards_worker import metrics
from shards_worker.definition import define_scope
from shards_worker.execution import Executor
from shards_worker.reaper import reap_lost_workers, settle_lost_worker

log = logging.getLogger("shards.worker")


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = 1
    heartbeat_interval: float = 2.0  # seconds between lease renewals
    lease: float = 15.0  # a worker silent this long is declared lost
    progress_interval: float = 0.5  # at most one progress write per run per interval
    poll_interval: float = 1.0  # longest wait without a change event before sweeping again
    shutdown_grace: float = 20.0  # how long running processes get to stop cooperatively


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(self, store: Store, app: App, settings: WorkerSettings | None = None,
                 worker_id: str | None = None) -> None:
        self.store = store
        self.app = app
        self.settings = settings or WorkerSettings()
        self.id = worker_id or new_worker_id()
        self.executor = Executor(store, app, self.id)
        self._shutdown = threading.Event()
        self._wake = threading.Event()  # set when a slot frees, so the loop claims again
        self._slots = threading.Semaphore(self.settings.concurrency)
        self._threads: list[threading.Thread] = []
        self._feed: ChangeFeed | None = None

    # -- the story --------------------------------------------------------------------------
    def run(self) -> None:
        self.start()
        try:
            while not self._shutdown.is_set():
                try:
                    self.sweep()
                except Exception:  # the store failed: keep the worker, retry after a pause
                    pause = self.settings.poll_interval
                    log.exception("shards.worker: sweep failed; retrying in %.1fs", pause)
                    self._shutdown.wait(pause)
                    continue
                self.wait_for_change()
        finally:
            self.stop()

    def start(self) -> None:
        self.store.ensure_indexes()
        self.store.workers.register(
            self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            catalog=self.app.process_ids,
            concurrency=self.settings.concurrency,
        )
        self._feed = self.store.request_feed()
        try:
            self._feed.open()
        except ChangeFeedError as error:
            log.warning("shards.worker: %s; polling every %.1fs instead", error, self.settings.poll_interval)
            self._feed = None
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="shards-heartbeat", daemon=True)
        heartbeat.start()
        log.info("shards.worker: %s started (concurrency %d, processes %s)", self.id,
                 self.settings.concurrency, ", ".join(self.app.process_ids) or "per scope")

    def sweep(self) -> None:
        """Claim everything this worker can take now; nothing waits on a missed event."""
        self._wake.clear()  # a slot freed from here on wakes the next wait
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        while (stop := self.store.requests.claim(RequestKind.STOP, self.id, addressed=True)):
            metrics.CLAIMS.labels("stop").inc()
            self.executor.stop_run(stop.run_id)
            self.store.requests.complete(stop)
        while (define := self.store.requests.claim(RequestKind.DEFINE, self.id)):
            metrics.CLAIMS.labels("define").inc()
            define_scope(self.store, self.app, define, self.id)
        while not self._shutdown.is_set() and self._slots.acquire(blocking=False):
            launch = self.store.requests.claim(RequestKind.LAUNCH, self.id)
            if launch is None:
                self._slots.release()
                break
            metrics.CLAIMS.labels("launch").inc()
            thread = threading.Thread(target=self._execute, args=(launch,), daemon=True,
                                      name=f"shards-run-{launch.run_id[:8]}")
            self._threads.append(thread)
            thread.start()

    def wait_for_change(self) -> None:
        """Bounded: returns on a new request, a freed slot, a shutdown, or the poll interval."""
        if self._feed is None:
            self._shutdown.wait(self.settings.poll_interval)
            return
        try:
            self._feed.next_change(
                self.settings.poll_interval,
                interrupted=lambda: self._shutdown.is_set() or self._wake.is_set(),
            )
        except ChangeFeedError as error:
            metrics.STREAM_ERRORS.inc()
            log.warning("shards.worker: %s; reopening after a sweep", error)

    def stop(self) -> None:
        """Stop running processes cooperatively, wait a bounded time, then leave the registry."""
        self._shutdown.set()
        self.executor.stop_all()
        deadline = time.monotonic() + self.settings.shutdown_grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._feed is not None:
            self._feed.close()
        try:
            if any(thread.is_alive() for thread in self._threads):
                reason = f"worker {self.id} shut down before the process stopped"
                settle_lost_worker(self.store, self.id, reason)
            self.store.workers.deregister(self.id)
        except Exception:  # the store is gone: the lease runs out and another worker settles
            log.exception("shards.worker: could not leave the registry")
        log.info("shards.worker: %s stopped", self.id)

    def request_shutdown(self) -> None:
        self._shutdown.set()

    # -- threads ----------------------------------------------------------------------------
    def _execute(self, launch: Request) -> None:
        try:
            self.executor.run_launch(launch)
        except Exception as error:  # a store failure must not kill the worker
            log.exception("shards.worker: launch of %s/%s could not be completed",
                          launch.scope_id, launch.process_id)
            self.executor.abandon(launch, error)
        finally:
            self._slots.release()
            self._wake.set()

    def _heartbeat_loop(self) -> None:
        settings = self.settings
        next_beat = 0.0
        while not self._shutdown.wait(settings.progress_interval):
            try:
                metrics.PROGRESS_WRITES.inc(self.executor.flush_progress())
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + settings.heartbeat_interval
                    self._beat()
            except Exception:  # keep beating through transient store errors
                log.exception("shards.worker: heartbeat failed")
        self.executor.flush_progress()

    def _beat(self) -> None:
        running = len(self.executor.executions())
        if not self.store.workers.heartbeat(self.id, running):
            log.error("shards.worker: %s was declared lost by another worker; shutting down", self.id)
            self._shutdown.set()
            return
        # Stops whose request this worker missed are still visible on the records it runs.
        for record in self.store.processes.executing_on(self.id, frozenset({State.STOP_REQUESTED})):
            self.executor.stop_run(record.run_id)
        metrics.WORKERS_REAPED.inc(len(reap_lost_workers(self.store, self.settings.lease)))
