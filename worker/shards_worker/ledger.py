"""The worker's ledger of its runs: which it holds, which execute, and the ends the store has
not recorded yet. A run is held from its claim until the store has recorded its end, so the
worker always knows which active records are its own. The Reporter its hosts report through."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from shards.errors import StoreUnavailable
from shards.records import ProcessStatus
from shards.retries import plan_retry
from shards.states import State
from shards_store import Store

from shards_worker import metrics
from shards_worker.logs import about
from shards_worker.runlogs import write_log
from shards_worker.runs import Ending, Run

log = logging.getLogger("shards.worker")


class Ledger:
    def __init__(self, store: Store,
                 on_outage: Callable[[StoreUnavailable], None] = lambda error: None) -> None:
        self.store = store
        self._on_outage = on_outage
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one writer of the queued ends at a time
        self._running: dict[str, Run] = {}
        self._held: set[str] = set()
        self._endings: list[Ending] = []  # ends the store has not recorded yet, oldest first

    # -- what the worker's services see -----------------------------------------------------
    def executions(self) -> list[Run]:
        with self._lock:
            return list(self._running.values())

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            return self._running.get(run_id)

    def holds(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._held

    # -- the Reporter -----------------------------------------------------------------------
    def hold(self, run_id: str) -> None:
        with self._lock:
            self._held.add(run_id)

    def let_go(self, run_id: str) -> None:
        """Forget a run that will not execute here: the heartbeat's check of this worker's own
        records settles whatever is left of it."""
        with self._lock:
            if run_id not in self._running and all(e.record.run_id != run_id for e in self._endings):
                self._held.discard(run_id)

    def adopt(self, run: Run) -> None:
        with self._lock:
            self._running[run.run_id] = run
            self._held.add(run.run_id)
        metrics.RUNS_ACTIVE.inc()

    def end(self, run: Run, state: State, error: str) -> None:
        record = run.record
        status = ProcessStatus.ended(state, error=error, running_since=run.started_at)
        retry = None if run.parent else plan_retry(record.launch_state(), run.cause(state), error)
        ending = Ending(record, status, run.final_progress(state), retry, run.logs)
        with self._lock:
            self._running.pop(record.run_id, None)
            self._endings.append(ending)
        metrics.RUNS_ACTIVE.dec()
        _count_end(run, state)
        try:
            self.flush_endings()
        except StoreUnavailable as outage:  # kept: the heartbeat records it once MongoDB is back
            self._on_outage(outage)
        log.info("ended %s in %.3fs%s%s", state.value, status.duration or 0.0, f": {error}" if error else "",
                 f"; {retry.message}" if retry else "", extra=about(record))

    # -- writes -----------------------------------------------------------------------------
    def flush_progress(self) -> int:
        """Write each changed progress once; returns how many writes were made."""
        writes = 0
        for run in self.executions():
            progress = run.progress.take()
            if progress is not None:
                record = run.record
                self.store.processes.write_progress(record.scope_id, record.process_id, record.run_id,
                                                    progress)
                writes += 1
        return writes

    def flush_logs(self) -> int:
        """Write each run's new log lines as one batch; returns how many writes were made."""
        return sum(write_log(self.store, run.record, run.logs) for run in self.executions())

    def flush_endings(self) -> int:
        """Record the ends the store missed, oldest first; raises StoreUnavailable if it still
        cannot. Returns how many were recorded."""
        recorded = 0
        with self._flushing:
            while True:
                with self._lock:
                    if not self._endings:
                        return recorded
                    ending = self._endings[0]
                self._write_end(ending)  # raises while the store is away: the ending stays queued
                with self._lock:
                    self._endings.pop(0)
                    self._held.discard(ending.record.run_id)
                recorded += 1

    def _write_end(self, ending: Ending) -> None:
        record = ending.record
        if ending.logs is not None:  # the last lines land before the end: a follower then has them all
            write_log(self.store, record, ending.logs)
        if ending.retry is not None and self.store.retry_run(record, ending.status, ending.retry) is not None:
            return
        if self.store.end_run(record, ending.status, ending.progress) is None:
            log.warning("ended %s but its record had moved on", ending.status.state.value,
                        extra=about(record))


def _count_end(run: Run, state: State) -> None:
    """Every run's end, counted in the worker whichever process executed it; a top-level run's
    duration, and how long its stop took, if one was asked."""
    metrics.RUNS_ENDED.labels(state.value).inc()
    if run.parent is not None:
        return
    ended = time.monotonic()
    metrics.RUN_DURATION.labels(state.value, metrics.process_label(run.record.process_id)).observe(
        ended - run.clock.started)
    if run.clock.stop_asked is not None:
        metrics.STOP_LATENCY.labels("true" if run.clock.forced else "false").observe(
            ended - run.clock.stop_asked)
