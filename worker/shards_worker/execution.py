"""Executions: process runs on this worker, each with its own stop flag and progress buffer."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shards.app import App, ProcessDefinition, check_timeout
from shards.context import ProcessContext, ProcessStopped
from shards.errors import InvalidDefinition, Permanent, ProcessActive, StoreUnavailable, UnknownProcess
from shards.records import ProcessRecord, ProcessStatus, Progress, utcnow
from shards.requests import Request
from shards.retries import Cause, plan_retry
from shards.runlog import entry
from shards.states import State
from shards_store import Store

from shards_worker import metrics
from shards_worker.logs import about, run_context
from shards_worker.policy import RunClock, decide, outcome
from shards_worker.runlogs import write_log
from shards_worker.running import Ending, Execution, Runtime, describe_failure, one_line

if TYPE_CHECKING:
    from shards_worker.isolation import ProcessIsolation

__all__ = ["Ending", "Execution", "Executor", "describe_failure", "one_line"]

log = logging.getLogger("shards.worker")


class Executor:
    """Runs on this worker. A run is held from its claim until the store has recorded its end,
    so the worker always knows which active records are its own."""

    def __init__(
        self, store: Store, app: App, worker_id: str,
        on_outage: Callable[[StoreUnavailable], None] = lambda error: None,
        isolation: ProcessIsolation | None = None, stop_grace: float = 10.0,
    ) -> None:
        self.store = store
        self.app = app
        self.worker_id = worker_id
        self._on_outage = on_outage
        self.isolation = isolation  # None: runs execute in threads of this process
        self.stop_grace = stop_grace  # seconds after a stop before an isolated run is killed
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one writer of the queued ends at a time
        self._running: dict[str, Execution] = {}
        self._held: set[str] = set()
        self._endings: list[Ending] = []  # ends the store has not recorded yet, oldest first

    # -- what the worker loop and the heartbeat see -------------------------------------
    def executions(self) -> list[Execution]:
        with self._lock:
            return list(self._running.values())

    def hold(self, run_id: str) -> None:
        with self._lock:
            self._held.add(run_id)

    def holds(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._held

    def let_go(self, run_id: str) -> None:
        """Forget a run that will not execute here (not started, or its start not confirmed):
        the heartbeat's check of this worker's own records settles whatever is left of it."""
        with self._lock:
            if run_id not in self._running and all(e.record.run_id != run_id for e in self._endings):
                self._held.discard(run_id)

    def stop_run(self, run_id: str, *, force: bool = False) -> bool:
        """Flip the stop flag of a run on this worker and record Stopping. A forced stop kills
        an isolated run at once (see police)."""
        with self._lock:
            execution = self._running.get(run_id)
        if execution is None:
            return False
        execution.ask_stop(force=force)
        record = execution.record
        self.store.processes.move(record.scope_id, record.process_id, State.STOPPING, run_id=run_id)
        log.info("stopping%s", " (forced: killed at once)" if force else "", extra=about(record))
        return True

    def stop_all(self, reason: str = "", ended_by: Cause | None = None) -> None:
        """Ask every run to stop; `reason` becomes the error of the runs that end Stopped.
        ended_by: the worker is losing its lease, so its launches may retry elsewhere."""
        for execution in self.executions():
            if execution.parent is None and ended_by is not None:
                execution.ended_by = ended_by
            execution.ask_stop(reason)

    def hand_off_all(self) -> None:
        """A shutdown: ask every run to stop; the launches of processes whose policy is
        on_shutdown="retry" run again elsewhere once they have ended here (a hand-off)."""
        for execution in self.executions():
            if execution.parent is None and execution.definition.on_shutdown == "retry":
                execution.ended_by = Cause.HANDOFF
                execution.ask_stop(f"handed off: worker {self.worker_id} shut down")
            else:
                execution.ask_stop()

    def police(self, now: float) -> None:
        """Deadlines and grace periods of the top-level runs (see shards_worker.policy): ask a
        run past its deadline to stop, kill an isolated run whose stop was forced or whose
        grace is over. Never touches the store."""
        for execution in self.executions():
            if execution.parent is not None or execution.killed:
                continue
            action = decide(execution.clock, now, grace=self.stop_grace, killable=execution.kill is not None)
            record = execution.record
            if action is not None and action.kind == "stop":
                execution.clock.deadline_hit = True
                execution.ask_stop(action.reason)
                log.info("%s; asking it to stop", action.reason, extra=about(record))
            elif action is not None and execution.kill is not None:
                log.warning("killing its process (%s)", "forced stop" if execution.clock.forced
                            else "grace is over", extra=about(record))
                execution.killed = True
                execution.kill()

    def kill_all(self) -> None:
        """Kill the isolated runs that still execute (a worker leaving after its grace)."""
        for execution in self.executions():
            if execution.parent is None and execution.kill is not None and not execution.killed:
                execution.killed = True
                execution.kill()

    def flush_progress(self) -> int:
        """Write each changed progress once; returns how many writes were made."""
        writes = 0
        for execution in self.executions():
            progress = execution.progress.take()
            if progress is not None:
                record = execution.record
                self.store.processes.write_progress(
                    record.scope_id, record.process_id, record.run_id, progress
                )
                writes += 1
        return writes

    def flush_logs(self) -> int:
        """Write each run's new log lines as one batch; returns how many writes were made."""
        return sum(write_log(self.store, e.record, e.logs) for e in self.executions())

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

    # -- runs -----------------------------------------------------------------------------
    def run_launch(self, request: Request, seen: float | None = None) -> None:
        """Start the run a launch request asks for, execute it, and record how it ended.
        The caller lets go of the run afterwards (Worker._execute), whatever happened.
        seen: when its change event reached this worker (monotonic), for the pickup metric."""
        started = self._start_launch(request)
        if started is None:
            return
        if seen is not None:
            metrics.PICKUP.observe(time.monotonic() - seen)
        record, definition, catalog, scope_data = started

        def bookkeeping() -> None:
            self._bookkeep(lambda: self.store.runs.started(
                record.run_id, record.scope_id, record.process_id, self.worker_id,
                record.status.running_since or utcnow(), args=request.args,
                requested_at=request.created_at, launch_id=record.launch_id, attempt=record.attempt))
            self._bookkeep(lambda: self.store.requests.complete(request))  # the history has it now

        self._execute(record, definition, catalog, scope_data, request.args, parent=None,
                      timeout=launch_timeout(request, definition), bookkeeping=bookkeeping)

    def _start_launch(
        self, request: Request
    ) -> tuple[ProcessRecord, ProcessDefinition, dict[str, ProcessDefinition], dict[str, Any]] | None:
        """Move the launch's record to Running on this worker in one guarded write (Scheduled,
        for this run); None when it does not start here (superseded, stopped first, or not in
        the catalog: then it is ended as such). Only those cases read the record."""
        try:
            scope_data = self.app.scope_data(request.scope_id)
            catalog = self.app.catalog(scope_data)
        except Exception as error:
            self._end_unstarted(request, f"cannot load the catalog of scope "
                                f"{request.scope_id!r}: {one_line(error)}")
            return None
        definition = catalog.get(request.process_id)
        if definition is None:
            self._end_unstarted(
                request, f"process {request.process_id!r} is not in this worker's catalog"
            )
            return None
        started = self.store.processes.start(
            request.scope_id, request.process_id, request.run_id, worker_id=self.worker_id
        )
        if started is None:  # stopped before it started, or superseded
            self._end_unstarted(request, "")
            return None
        return started, definition, catalog, scope_data

    def run_child(
        self, parent: Execution, process_id: str, args: dict[str, Any]
    ) -> tuple[State, str]:
        """Run a child process of the parent's scope inline, with a record of its own."""
        scope_id = parent.record.scope_id
        definition = parent.catalog.get(process_id)
        record = self.store.processes.get(scope_id, process_id)
        if definition is None or record is None:
            raise UnknownProcess(f"unknown child process {process_id!r} in scope {scope_id!r}")
        record.run_id = uuid.uuid4().hex
        self.hold(record.run_id)
        started = None
        try:
            started = self.store.processes.start(
                scope_id, process_id, record.run_id, worker_id=self.worker_id,
                parent_run_id=parent.run_id,
            )
        finally:
            if started is None:
                self.let_go(record.run_id)
        # The history entry follows the start: a run in the history always has a record that
        # names it, so whatever becomes of this worker, the entry gets its end.
        if started is None:
            current = self.store.processes.get(scope_id, process_id)
            state = current.state.value if current else "gone"
            self.store.runs.ended(record.run_id, scope_id, process_id,
                                  ProcessStatus.ended(State.FAILED, error="already active"),
                                  args=args, requested_at=utcnow(), parent_run_id=parent.run_id)
            raise ProcessActive(f"child process {process_id!r} is already active ({state})")
        self._bookkeep(lambda: self.store.runs.started(
            started.run_id, scope_id, process_id, self.worker_id,
            started.status.running_since or utcnow(), args=args, parent_run_id=parent.run_id))
        state = self._execute(started, definition, parent.catalog, parent.scope_data, args, parent)
        return state, definition.name

    def _bookkeep(self, write: Callable[[], None]) -> None:
        """A write after the start that the run does not depend on: an outage must not keep
        a started run from executing (the history is completed when the run ends)."""
        try:
            write()
        except StoreUnavailable as error:
            self._on_outage(error)

    def _execute(
        self,
        record: ProcessRecord,
        definition: ProcessDefinition,
        catalog: dict[str, ProcessDefinition],
        scope_data: dict[str, Any],
        args: dict[str, Any],
        parent: Execution | None,
        timeout: float | None = None,
        bookkeeping: Callable[[], None] = lambda: None,
    ) -> State:
        """Run the body here, or in an OS process of its own (then the history's bookkeeping
        follows the process's start, so a slow store does not hold the run back)."""
        execution = Execution(
            record=record,
            definition=definition,
            catalog=catalog,
            scope_data=scope_data,
            started_at=record.status.running_since or utcnow(),
            parent=parent,
            clock=RunClock(timeout=timeout, started=time.monotonic()),
        )
        execution.progress.report("Starting...", 0.0)
        with run_context(record):  # what is logged (and printed) meanwhile is about this run
            self.adopt(execution)
            self.announce(execution)
            if parent is None and self.isolation is not None:
                state, error = self.isolation.run(self, execution, args, bookkeeping)
            else:
                bookkeeping()
                state, error = self._run_body(execution, args)
            if parent is None:
                state, error = outcome(execution.clock, state, error, killed=execution.killed,
                                       grace=self.stop_grace)
            if state is State.STOPPED and not error:
                error = execution.stop_reason
            self.record_end(execution, state, error)
        metrics.RUNS_ENDED.labels(state.value).inc()
        return state

    def announce(self, execution: Execution) -> None:
        """The run's start line."""
        record = execution.record
        if execution.parent is None:
            label = record.attempt_label()
            log.info("started%s", f" ({label})" if label else "", extra=about(record))
        else:
            log.info("started (inline child of run %s)", execution.parent.run_id, extra=about(record))

    def adopt(self, execution: Execution) -> None:
        """A run executes here from now on: it is held, its progress written, its stops delivered."""
        with self._lock:
            self._running[execution.run_id] = execution
            self._held.add(execution.run_id)
        metrics.RUNS_ACTIVE.inc()

    def _run_body(self, execution: Execution, args: dict[str, Any]) -> tuple[State, str]:
        """Call the process function in this thread; how it ended, and why if it failed."""
        record = execution.record
        context = ProcessContext(
            scope_id=record.scope_id,
            process_id=record.process_id,
            run_id=record.run_id,
            runtime=Runtime(self, execution),
            args=dict(args),
            scope_data=dict(execution.scope_data),
            attempt=max(1, record.attempt),
        )
        error = ""
        try:
            execution.definition(context)
            state = State.STOPPED if execution.stop_requested() else State.DONE
        except ProcessStopped:
            state = State.STOPPED
        except BaseException as failure:
            state, error = State.FAILED, describe_failure(failure)
            execution.permanent = isinstance(failure, Permanent)
            log.warning("failed: %s", error, extra=about(record),
                        exc_info=not isinstance(failure, SystemExit | KeyboardInterrupt))
            execution.logs.append(entry(logging.ERROR, f"the run failed: {error}", failure, skip=1))
        return state, error

    def record_end(self, execution: Execution, state: State, error: str) -> None:
        record = execution.record
        status = ProcessStatus.ended(state, error=error, running_since=execution.started_at)
        progress = Progress("All done", 1.0) if state is State.DONE else execution.progress.latest()
        retry = None if execution.parent else plan_retry(record.launch_state(), execution.cause(state), error)
        ending = Ending(record, status, progress, retry, execution.logs)
        with self._lock:
            self._running.pop(record.run_id, None)
            self._endings.append(ending)
        metrics.RUNS_ACTIVE.dec()
        try:
            self.flush_endings()
        except StoreUnavailable as outage:  # kept: the heartbeat records it once MongoDB is back
            self._on_outage(outage)
        log.info("ended %s in %.3fs%s%s", state.value, status.duration or 0.0, f": {error}" if error else "",
                 f"; {retry.message}" if retry else "", extra=about(record))

    def _write_end(self, ending: Ending) -> None:
        record = ending.record
        if ending.logs is not None:  # the last lines land before the end: a follower then has them all
            write_log(self.store, record, ending.logs)
        if ending.retry is not None and self.store.retry_run(record, ending.status, ending.retry) is not None:
            return
        if self.store.end_run(record, ending.status, ending.progress) is None:
            log.warning("ended %s but its record had moved on", ending.status.state.value,
                        extra=about(record))

    def _end_unstarted(self, request: Request, error: str) -> None:
        """End a launch that never started here: failed (error), stopped (a stop arrived
        first), or superseded (its record has moved on: nothing to end). Read only now."""
        record = self.store.processes.get(request.scope_id, request.process_id)
        unstarted = (record is not None and record.run_id == request.run_id and not record.worker_id
                     and record.state in (State.SCHEDULED, State.STOP_REQUESTED))
        if record is not None and unstarted and (error or record.state is State.STOP_REQUESTED):
            self.store.end_unstarted(record, error, only_from_seen_state=True, request=request)
            if error:
                log.warning("launch failed: %s", error, extra=about(request))
        elif not error:
            log.info("launch was superseded", extra=about(request))
        self.store.requests.complete(request)


def launch_timeout(request: Request, definition: ProcessDefinition) -> float | None:
    """The launch's own time limit wins over the process's default; a bad one is ignored."""
    try:
        return check_timeout(request.options.get("timeout")) or definition.timeout
    except InvalidDefinition as error:
        log.warning("launch: %s; using the process's default", error, extra=about(request))
        return definition.timeout
