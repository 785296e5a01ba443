"""The child side of process isolation: one top-level run in an OS process of its own.

The run executes as it would in a thread (the same Executor code, so the SDK is unchanged);
its inline children run here too, with their records written through this process's own
store. What the worker must know crosses the pipe: progress and log lines (a batch per pump),
the start and end of each inline child (the worker records every end), and the run's own end.
Stops come the other way. If the worker goes away (the pipe closes), this process exits at once:
a run never outlives its worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, cast

from shards.app import App, ProcessDefinition
from shards.records import ProcessRecord, Progress
from shards.states import State
from shards_store import Store, connect

from shards_worker import logs
from shards_worker.execution import Executor
from shards_worker.loader import load_app
from shards_worker.running import Execution, one_line

log = logging.getLogger("shards.worker")

EXIT_ORPHANED = 70  # the worker's end of the pipe closed: the worker is gone
APP_ENV = "SHARDS_ISOLATION_APP"  # the app the fork server imports before it forks (preload.py)
LOG_ENV = "SHARDS_ISOLATION_LOG"  # "level:format" of the worker's logs, for the fork server

_apps: dict[str, App] = {}  # loaded once per process (in the fork server, before any fork)


def app_for(spec: str) -> App:
    if spec not in _apps:
        _apps[spec] = load_app(spec)
    return _apps[spec]


@dataclass
class Job:
    """What a run's OS process gets: how to load the app and reach MongoDB, and the started run."""

    app_spec: str
    mongo_uri: str
    worker_id: str
    record: ProcessRecord
    args: dict[str, Any]
    scope_data: dict[str, Any]
    pump_interval: float = 0.05  # seconds between progress messages to the worker
    log: tuple[str, str] = ("info", "text")  # the worker's log level and format (logs.settings())


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


class ChildExecutor(Executor):
    """Runs the top-level run and its inline children here, and tells the worker about them."""

    def __init__(self, store: Store, app: App, worker_id: str, link: Link) -> None:
        super().__init__(store, app, worker_id)
        self.link = link
        # state, error, progress, and whether it raised shards.Permanent
        self.result: tuple[State, str, Progress, bool] = (
            State.FAILED, "the run did not end", Progress(), False)

    def adopt(self, execution: Execution) -> None:
        if execution.parent is not None:  # announced first: the worker then takes its progress
            self.link.send("started", execution.record, execution.parent.run_id, execution.started_at)
        super().adopt(execution)

    def record_end(self, execution: Execution, state: State, error: str) -> None:
        """The worker records every end (with its outage handling): send it there, after the
        run's last log lines (the traceback of a failure among them)."""
        self._send_logs(execution)
        with self._lock:
            self._running.pop(execution.run_id, None)
            self._held.discard(execution.run_id)
        progress = Progress("All done", 1.0) if state is State.DONE else execution.progress.latest()
        if execution.parent is None:
            self.result = (state, error, progress, execution.permanent)
        else:
            self.link.send("end", execution.run_id, state, error, progress)

    def announce(self, execution: Execution) -> None:
        if execution.parent is not None:  # the worker announced the run it started here
            super().announce(execution)

    def run_started(self, record: ProcessRecord, definition: ProcessDefinition,
                    catalog: dict[str, ProcessDefinition], scope_data: dict[str, Any],
                    args: dict[str, Any]) -> None:
        """Execute the run the worker started; its end is in self.result."""
        self._execute(record, definition, catalog, scope_data, args, parent=None)

    def deliver_stop(self, run_id: str, reason: str) -> None:
        with self._lock:
            execution = self._running.get(run_id)
        if execution is not None:
            execution.ask_stop(reason)

    def pump(self) -> None:
        for execution in self.executions():
            progress = execution.progress.take()
            if progress is not None:
                self.link.send("progress", execution.run_id, progress)
            self._send_logs(execution)

    def _send_logs(self, execution: Execution) -> None:
        """The lines logged since the last pump, as one message (bounded as the store bounds them)."""
        run_id = execution.run_id
        execution.logs.flush(lambda batch: self.link.send("logs", run_id, batch.lines, batch.skipped))


def main(conn: Connection, job: Job) -> None:
    """The entry point of a run's OS process; it always ends with os._exit (no lingering threads)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when its runs stop
    record = job.record
    logs.configure_logging(*job.log)  # as the worker logs; every line here is about this run,
    logs.set_process_run(record)  # from any thread, prints included
    logs.capture_prints()
    link = Link(conn)
    try:
        app = app_for(job.app_spec)
        catalog = app.catalog(job.scope_data)
        definition = catalog[record.process_id]
    except BaseException as error:
        link.last("result", State.FAILED, f"the run's process could not start: {one_line(error)}",
                  Progress(), False)
        _exit(0)
    executor = ChildExecutor(cast(Store, LazyStore(job.mongo_uri)), app, job.worker_id, link)
    threading.Thread(target=_listen, args=(conn, executor), daemon=True, name="shards-link").start()
    threading.Thread(target=_pump, args=(executor, job.pump_interval), daemon=True,
                     name="shards-pump").start()
    executor.run_started(record, definition, catalog, job.scope_data, job.args)
    link.last("result", *executor.result)
    _exit(0)


def _exit(code: int) -> None:
    """Exit at once (threads the process left behind must not keep it), with its output written."""
    with contextlib.suppress(Exception):
        logs.drain_prints()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _listen(conn: Connection, executor: ChildExecutor) -> None:
    while True:
        try:
            kind, *rest = conn.recv()
        except (EOFError, OSError):
            if executor.link.done:  # the run's end went out: the main thread exits meanwhile
                return
            log.error("the worker is gone; ending runs %s with it",
                      ", ".join(e.run_id for e in executor.executions()))
            _exit(EXIT_ORPHANED)
        if kind == "stop":
            executor.deliver_stop(*rest)


def _pump(executor: ChildExecutor, interval: float) -> None:
    stopped = threading.Event()
    while not stopped.wait(interval):
        try:
            executor.pump()
        except (OSError, ValueError):  # the pipe is closing: the run is ending
            return
