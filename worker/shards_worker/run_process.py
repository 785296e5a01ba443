"""A run's OS process under process isolation: the small entry point on the far side of the
process host's pipe (its worker side is shards_worker.process_host). It is forked before its run is
claimed (a standby, shards_worker.standbys) and gets its run's Job over the pipe.

The run executes with the same lifecycle as in the worker (so the SDK is unchanged); its inline
children run here too, with their records written through this process's own store. What the
worker must know crosses the pipe, through a PipeReporter: progress and log lines (a batch per
pump), the start and end of each inline child (the worker records every end), and the run's own
end. Stops and the lease's deadlines come the other way. If the worker goes away (the pipe
closes), this process exits at once: a run never outlives its worker. If the worker stops renewing
its lease (cut off from MongoDB, or frozen as a whole), this process asks its runs to stop and then
exits at the deadlines the worker last sent, before another worker may relaunch the run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, NoReturn, cast

from shards.app import App
from shards.records import ProcessRecord, Progress, set_server_offset
from shards.states import State
from shards_store import Store, connect

from shards_worker import logs
from shards_worker.failures import error_line
from shards_worker.lifecycle import Lifecycle
from shards_worker.loader import load_app
from shards_worker.runs import Run

log = logging.getLogger("shards.worker")

EXIT_ORPHANED = 70  # the worker's end of the pipe closed: the worker is gone
EXIT_LEASE_EXPIRED = 71  # the worker's lease ran out: others may relaunch the run now
LEASE_CHECK = 0.05  # seconds between looks at the lease's deadlines
STANDBY_CHECK = 1.0  # seconds between a standby's looks for its job (the pipe's end also ends it)

_apps: dict[str, App] = {}  # loaded once per process (in the fork server, before any fork)


def app_for(spec: str) -> App:
    if spec not in _apps:
        _apps[spec] = load_app(spec)
    return _apps[spec]


@dataclass
class Job:
    """What a run's OS process gets when its run starts: how to load the app and reach MongoDB,
    and the started run (what does not depend on the run it got when it was forked)."""

    app_spec: str
    mongo_uri: str
    worker_id: str
    record: ProcessRecord
    args: dict[str, Any]
    scope_data: dict[str, Any]
    lease: tuple[float, float] | None = None  # (stop, exit) deadlines, monotonic; None: no lease
    clock_offset: float = 0.0  # the server's clock minus this machine's, as the worker measured it


class Link:
    """The pipe to the worker; sends come from the run's thread and the progress pump."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()
        self._closed = False

    def send(self, *message: Any) -> None:
        with self._lock:
            if not self._closed:
                self.conn.send(message)

    def last(self, *message: Any) -> None:
        """The final message: nothing is sent after it."""
        with self._lock:
            self._closed = True
            self.conn.send(message)

    @property
    def done(self) -> bool:
        """The final message is sent: the worker may close the pipe, this process is exiting."""
        return self._closed


class LazyStore:
    """Connects on first use: most runs start no child, and never need MongoDB here (a client
    costs threads, a connection and a handshake on the server, at every run)."""

    def __init__(self, uri: str) -> None:
        self._uri = uri
        self._store: Store | None = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            if self._store is None:
                self._store = connect(self._uri, check=False)
        return getattr(self._store, name)


class PipeReporter:
    """The Reporter of a run's OS process: the worker holds the run (its children with it) and
    records every end, so adopt and end go across the pipe; stops come back through it."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self._lock = threading.Lock()
        self._running: dict[str, Run] = {}
        # state, error, progress, and whether it raised shards.Permanent
        self.result: tuple[State, str, Progress, bool] = (
            State.FAILED, "the run did not end", Progress(), False)

    def hold(self, run_id: str) -> None:
        """Nothing to do: the worker holds the top-level run, and its children are covered by it."""

    def let_go(self, run_id: str) -> None:
        """Nothing to do (see hold)."""

    def adopt(self, run: Run) -> None:
        if run.parent is not None:  # announced first: the worker then takes its progress
            self.link.send("started", run.record, run.parent.run_id, run.started_at)
        with self._lock:
            self._running[run.run_id] = run

    def end(self, run: Run, state: State, error: str) -> None:
        """Sent after the run's last log lines (the traceback of a failure among them)."""
        self._send_logs(run)
        with self._lock:
            self._running.pop(run.run_id, None)
        if run.parent is None:
            self.result = (state, error, run.final_progress(state), run.permanent)
        else:
            self.link.send("end", run.run_id, state, error, run.final_progress(state))

    def deliver_stop(self, run_id: str, reason: str) -> None:
        with self._lock:
            run = self._running.get(run_id)
        if run is not None:
            run.ask_stop(reason)

    def executions(self) -> list[Run]:
        with self._lock:
            return list(self._running.values())

    def pump(self) -> None:
        for run in self.executions():
            progress = run.progress.take()
            if progress is not None:
                self.link.send("progress", run.run_id, progress)
            self._send_logs(run)

    def _send_logs(self, run: Run) -> None:
        """The lines logged since the last pump, as one message (bounded as the store bounds them)."""
        run_id = run.run_id
        run.logs.flush(lambda batch: self.link.send("logs", run_id, batch.lines, batch.skipped))


class LeaseGuard:
    """The worker's lease, held by the run's own process: at the first deadline its runs are asked
    to stop, at the second the process exits, whatever the worker is doing (just after the points
    at which the worker's own fence acts, see shards_worker.lease). Each renewal moves them on.
    It idles until armed with the deadlines its run's job brings (a standby has no run)."""

    def __init__(self, reporter: PipeReporter) -> None:
        self.reporter = reporter
        self.worker_id = ""
        self._lock = threading.Lock()
        self._armed = threading.Event()
        self._stop_at, self._exit_at = math.inf, math.inf
        self._asked = False

    def arm(self, worker_id: str, deadlines: tuple[float, float]) -> None:
        with self._lock:
            self.worker_id = worker_id
            self._stop_at, self._exit_at = deadlines
        self._armed.set()

    def renewed(self, stop_at: float, exit_at: float) -> None:
        with self._lock:
            self._stop_at, self._exit_at = max(self._stop_at, stop_at), max(self._exit_at, exit_at)
            self._asked = self._asked and time.monotonic() >= self._stop_at

    def hold(self) -> None:
        """The guard's thread: never touches the store or the pipe, so neither can delay it."""
        while not self._armed.wait(STANDBY_CHECK):
            pass  # a standby, or a run without a lease: the pipe's end is what ends this process
        while True:
            with self._lock:
                stop_at, exit_at, asked = self._stop_at, self._exit_at, self._asked
            now = time.monotonic()
            if now >= exit_at:
                log.critical("its worker %s has not renewed its lease: ending runs %s now, before another "
                             "worker may run them again", self.worker_id,
                             ", ".join(run.run_id for run in self.reporter.executions()))
                _exit(EXIT_LEASE_EXPIRED)
            if now >= stop_at and not asked:
                with self._lock:
                    self._asked = True
                for run in self.reporter.executions():
                    run.ask_stop(f"stopped: worker {self.worker_id} could not renew its lease")
            time.sleep(min(LEASE_CHECK, max(0.0, (stop_at if not asked else exit_at) - now)))


def standby(conn: Connection, pump_interval: float) -> NoReturn:
    """A run's OS process, forked ahead of demand (shards_worker.standbys) from the fork server,
    which logs as the worker does, captures prints and ignores SIGINT (the worker decides when
    its runs stop). What does not depend on the run is ready before its job arrives: the pipe's
    listener, the progress pump and the lease guard; then it executes its one run, and always ends
    with os._exit (no lingering threads). Its worker closing the pipe first (a stop, or its
    death) ends it."""
    link = Link(conn)
    reporter = PipeReporter(link)
    guard = LeaseGuard(reporter)
    jobs: queue.Queue[Job] = queue.Queue(maxsize=1)
    has_job = threading.Event()
    threading.Thread(target=guard.hold, daemon=True, name="shards-lease").start()
    threading.Thread(target=_listen, args=(conn, reporter, guard, jobs, has_job), daemon=True,
                     name="shards-link").start()
    threading.Thread(target=_pump, args=(reporter, has_job, pump_interval), daemon=True,
                     name="shards-pump").start()
    while True:
        try:
            job = jobs.get(timeout=STANDBY_CHECK)
            break
        except queue.Empty:
            continue  # waiting is all a standby does: its pipe's end exits it (_listen)
    _run(job, link, reporter, guard)


def _run(job: Job, link: Link, reporter: PipeReporter, guard: LeaseGuard) -> NoReturn:
    record = job.record
    set_server_offset(job.clock_offset)  # this process's records are timed as its worker's
    logs.set_process_run(record)
    try:
        app = app_for(job.app_spec)
        catalog = app.catalog(job.scope_data, check=False)
        definition = catalog[record.process_id]
    except BaseException as error:
        link.last("result", State.FAILED, f"the run's process could not start: {error_line(error)}",
                  Progress(), False)
        _exit(0)
    lifecycle = Lifecycle(cast(Store, LazyStore(job.mongo_uri)), app, reporter)
    lifecycle.worker_id = job.worker_id
    if job.lease is not None:
        guard.arm(job.worker_id, job.lease)
    # The worker started and announced the run; its end goes back in reporter.result.
    lifecycle.execute(record, definition, catalog, job.scope_data, job.args, parent=None, announce=False)
    link.last("result", *reporter.result)
    _exit(0)


def _exit(code: int) -> NoReturn:
    """Exit at once (threads the process left behind must not keep it), with its output written."""
    with contextlib.suppress(Exception):
        logs.drain_prints()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _listen(conn: Connection, reporter: PipeReporter, guard: LeaseGuard, jobs: queue.Queue[Job],
            has_job: threading.Event) -> None:
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            if reporter.link.done:  # the run's end went out: the main thread exits meanwhile
                return
            if not has_job.is_set():
                _exit(0)  # a standby its worker no longer needs (or a worker gone): nothing to end
            log.error("the worker is gone; ending runs %s with it",
                      ", ".join(run.run_id for run in reporter.executions()))
            _exit(EXIT_ORPHANED)
        if isinstance(message, Job):
            has_job.set()
            jobs.put_nowait(message)
            continue
        kind, *rest = message
        if kind == "stop":
            reporter.deliver_stop(*rest)
        elif kind == "lease":
            guard.renewed(*rest)


def _pump(reporter: PipeReporter, has_job: threading.Event, interval: float) -> None:
    while not has_job.wait(STANDBY_CHECK):
        pass  # a standby has nothing to send: it does not wake every interval
    stopped = threading.Event()
    while not stopped.wait(interval):
        try:
            reporter.pump()
        except (OSError, ValueError):  # the pipe is closing: the run is ending
            return
