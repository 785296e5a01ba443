"""The process host, the worker's side of process isolation: each top-level run in an OS
process of its own (its other side is shards_worker.run_process).

The worker's Ledger still holds every run, and its heartbeat writes progress and ends; a
Supervisor (on the run's thread) starts the run's OS process, relays what crosses the pipe to
the run's buffers and the Reporter it was handed, and turns a process that dies without an end
into a Failed run ("exited with code 1", "killed by signal 11 (SIGSEGV)"). Killing is policing's
business (shards_worker.policing): a kill ends the process, and the Supervisor sees the pipe close.

Runs start from a fork server (shards_worker.fork_server): a single-threaded process that
imported the app once, so a run's process is a fork of it, never of the threaded worker (unsafe
with pymongo's threads and locks). The process is forked ahead of demand
(shards_worker.standbys): a run's start hands its job to a waiting process, and its end does not
wait for that process's exit. One run per process: each starts from the fork server's fresh
state, nothing one run leaves behind reaches the next.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from shards.errors import ShardsError
from shards.records import ProcessRecord, Progress, server_offset
from shards.retries import Cause
from shards.runlog import entry
from shards.states import State

from shards_worker import logs, run_process
from shards_worker.failures import error_line
from shards_worker.fork_server import EXIT_STATUS_LOST, ForkedProcess, ForkServer
from shards_worker.hosting import Host, Outcome, Reporter, ThreadHost
from shards_worker.lease import Lease
from shards_worker.runs import Run
from shards_worker.settings import WorkerSettings
from shards_worker.standbys import Standby, Standbys

log = logging.getLogger("shards.worker")

POLL = 0.05  # seconds between looks at stops to forward while the run's process is quiet
JOIN = 5.0  # seconds a run's process gets to exit after its end (then it is killed)
BOOKKEEPING_WAIT = 30.0  # seconds the end waits for the start's history writes (each is bounded by the store)


def exit_reason(code: int | None) -> str:
    """Why a run's process ended without telling its end, in words."""
    if code is None:
        return "its process did not exit"
    if code < 0:
        try:
            return f"killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"killed by signal {-code}"
    if code == EXIT_STATUS_LOST:
        return "it exited after its fork server was gone (how is not known)"
    if code == run_process.EXIT_ORPHANED:
        return "its process lost the worker"
    if code == run_process.EXIT_LEASE_EXPIRED:
        return "its process ended itself: its worker's lease ran out"
    return f"exited with code {code}"


def host_for(settings: WorkerSettings, app_spec: str, mongo_uri: str, lease: Lease | None = None,
             free_slots: Callable[[], int] = lambda: 1) -> Host:
    """Where this worker's top-level runs execute: --isolation process (the default) or thread."""
    if settings.isolation == "thread":
        return ThreadHost()
    if not app_spec or not mongo_uri:
        raise ShardsError("process isolation needs the APP spec and the MongoDB URI (each run's OS "
                          "process loads the app and connects); or use --isolation thread")
    return ProcessHost(app_spec, mongo_uri, lease=lease, free_slots=free_slots)


class ProcessHost:
    """How this worker starts runs' OS processes."""

    killable = True

    def __init__(self, app_spec: str, mongo_uri: str, *, pump_interval: float = 0.05,
                 lease: Lease | None = None, free_slots: Callable[[], int] = lambda: 1) -> None:
        self.app_spec = app_spec
        self.mongo_uri = mongo_uri
        self.lease = lease  # its deadlines go to every run's process, which holds itself to them
        self.fork_server = ForkServer(app_spec, pump_interval)
        self.standbys = Standbys(self.fork, free_slots)

    def warm(self) -> None:
        """Start the fork server now (it imports the app once), not on the first run, and the
        standbys the first runs take."""
        self.fork_server.start()
        self.standbys.start()

    def slot_freed(self) -> None:
        self.standbys.slot_freed()

    def close(self) -> None:
        """The worker stops: its standbys exit, then the fork server (bounded)."""
        self.standbys.close()
        self.fork_server.close()

    def fork(self) -> Standby:
        """A new OS process waiting for a run (run_process.standby)."""
        process, conn = self.fork_server.fork()
        return Standby(process, conn)

    def execute(self, run: Run, args: dict[str, Any], *, body: Callable[[], Outcome],
                bookkeeping: Callable[[], None], reporter: Reporter) -> Outcome:
        """The body executes in the run's OS process (its own lifecycle calls it there)."""
        return Supervisor(self, reporter, run).run(args, bookkeeping)


class Supervisor:
    """One isolated run: its OS process, the pipe, and the inline children it reports."""

    def __init__(self, host: ProcessHost, reporter: Reporter, run: Run) -> None:
        self.host = host
        self.reporter = reporter
        self.top = run
        self.runs: dict[str, Run] = {run.run_id: run}  # this run and its children
        self.forwarded: set[str] = set()  # runs whose stop has been sent
        self.lease_sent = self._lease()  # the lease's deadlines the run's process knows

    def run(self, args: dict[str, Any], bookkeeping: Callable[[], None]) -> Outcome:
        top, record = self.top, self.top.record
        job = run_process.Job(self.host.app_spec, self.host.mongo_uri, record.worker_id, record, dict(args),
                              dict(top.scope_data), self.lease_sent, server_offset())
        # The history's writes go beside the run, not before following it: in an outage they wait
        # for the server (seconds), and stops (a lease's end among them) must reach the run meanwhile.
        # They start first: they take longer than a short run, and its end waits for them.
        keeper = threading.Thread(target=bookkeeping, name=f"shards-history-{record.run_id[:8]}", daemon=True)
        keeper.start()
        standbys = self.host.standbys
        standby = _hand_over(standbys, standbys.take(), job)
        if standby is None:  # none ready (or it died just now): fork one for this run
            try:
                standby = _hand_over(standbys, self.host.fork(), job)
            except Exception as error:
                keeper.join(BOOKKEEPING_WAIT)
                return State.FAILED, f"could not start the run's OS process: {error_line(error)}"
        if standby is None:
            keeper.join(BOOKKEEPING_WAIT)
            return State.FAILED, "could not start the run's OS process: it exited before its run"
        here, process = standby.conn, standby.process
        top.kill = standby.kill
        result: Outcome | None = None
        try:
            result = self._follow(here, process)
        finally:
            here.close()
            if result is None:  # gone without its end: how it exited is the reason
                _reap(process)
            top.body_over = True  # nothing of it runs any more, whatever the store does
            if result is not None:
                # It exits on its own (os._exit right after its result): the end is not held
                # up by that exit, the standbys lay the process to rest.
                standbys.lay_to_rest(process)
            keeper.join(BOOKKEEPING_WAIT)  # the start's entry before the end's
        reason = "its OS process ended with its run" if result is not None else exit_reason(process.exitcode)
        lease_ended = result is None and process.exitcode == run_process.EXIT_LEASE_EXPIRED
        self._end_children(reason, lease_ended=lease_ended)
        if result is not None:  # it ended on its own, before a kill could matter
            top.killed = False
            return result
        if lease_ended:
            # Not the run failing: its worker lost the lease (frozen, or cut off from MongoDB) and
            # the run's process kept the promise for it, as the fence's kill would have. A hand-off
            # like the fence's, unless a stop was already under way (that one stands).
            if not top.stop_requested():
                top.ended_by = Cause.WORKER_LOST
            log.warning("its OS process ended the run: %s", reason, extra=logs.about(record))
            return State.STOPPED, f"stopped: {reason}"
        log.warning("its OS process exited before the run ended: %s", reason, extra=logs.about(record))
        top.logs.append(entry(logging.ERROR, f"its OS process exited before the run ended: {reason}"))
        return State.FAILED, reason

    def _follow(self, conn: Connection, process: ForkedProcess) -> Outcome | None:
        """Relay messages until the run's end arrives (returned) or its process is gone (None)."""
        while True:
            self._forward_stops(conn)
            self._forward_lease(conn)
            try:
                if not conn.poll(POLL):
                    if not process.is_alive() and not conn.poll(0):
                        return None
                    continue
                kind, *rest = conn.recv()
            except (EOFError, OSError):
                return None
            if kind == "result":
                state, error, progress, self.top.permanent = rest
                _report(self.top, progress)
                return state, error
            self._relay(kind, rest)

    def _relay(self, kind: str, rest: list[Any]) -> None:
        if kind == "logs":
            run_id, lines, skipped = rest
            if (run := self.runs.get(run_id)) is not None:
                run.logs.extend(lines, skipped)
        elif kind == "progress":
            run_id, progress = rest
            if (run := self.runs.get(run_id)) is not None:
                _report(run, progress)
        elif kind == "started":
            self._adopt_child(*rest)
        elif kind == "end":
            run_id, state, error, progress = rest
            if (run := self.runs.pop(run_id, None)) is not None:
                _report(run, progress)
                self.reporter.end(run, state, error)

    def _adopt_child(self, record: ProcessRecord, parent_run_id: str, started_at: datetime) -> None:
        """An inline child started in the run's process: the worker holds it and writes its
        progress and end, as for a child in a thread."""
        parent = self.runs.get(parent_run_id, self.top)
        run = Run(record=record, definition=self.top.definition, catalog={}, scope_data={},
                  started_at=started_at, parent=parent)
        self.runs[record.run_id] = run
        self.reporter.adopt(run)

    def _forward_stops(self, conn: Connection) -> None:
        for run_id, run in self.runs.items():
            if run.stop_flag.is_set() and run_id not in self.forwarded:
                self.forwarded.add(run_id)
                try:
                    conn.send(("stop", run_id, run.stop_reason))
                except OSError:  # the process is gone: _follow sees it
                    return

    def _lease(self) -> tuple[float, float] | None:
        return None if self.host.lease is None else self.host.lease.guard_deadlines()

    def _forward_lease(self, conn: Connection) -> None:
        """Each renewal moves the run's deadlines on (sent once per change, from the run's thread:
        a worker frozen as a whole sends nothing, and its run then ends itself in time)."""
        deadlines = self._lease()
        if deadlines is not None and deadlines != self.lease_sent:
            self.lease_sent = deadlines
            try:
                conn.send(("lease", *deadlines))
            except OSError:  # the process is gone: _follow sees it
                return

    def _end_children(self, reason: str, *, lease_ended: bool) -> None:
        """Inline children whose end never came went down with the run's process."""
        for run_id, run in list(self.runs.items()):
            if run_id == self.top.run_id:
                continue
            if self.top.killed:
                self.reporter.end(run, State.STOPPED, "killed with its parent run")
            elif lease_ended:
                self.reporter.end(run, State.STOPPED, f"stopped with its parent run: {reason}")
            else:
                self.reporter.end(run, State.FAILED, reason)


def _report(run: Run, progress: Progress) -> None:
    run.progress.report(progress.message, progress.rate)


def _hand_over(standbys: Standbys, standby: Standby | None, job: run_process.Job) -> Standby | None:
    """Send the job to a waiting process; None if there is none or it is gone."""
    if standby is None:
        return None
    try:
        standby.conn.send(job)
    except (OSError, ValueError):  # it died while waiting: the caller forks one
        standby.conn.close()
        standby.kill()
        standbys.lay_to_rest(standby.process)
        return None
    return standby


def _reap(process: ForkedProcess) -> None:
    """Bounded: the process exits on its own after its end; else it is killed."""
    process.join(JOIN)
    if process.exitcode is None:
        process.kill()
        process.join(JOIN)
