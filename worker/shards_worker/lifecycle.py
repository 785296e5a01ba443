"""A run's lifecycle, written once: start a launch (or an inline child), execute it on a host,
record its end. It does not know where the body executes: the host does (shards_worker.hosting).
The worker and a run's own OS process (shards_worker.run_process) both use it, each with its
own Reporter."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from shards.app import App, ProcessDefinition, check_timeout
from shards.context import ProcessContext, ProcessStopped
from shards.errors import InvalidDefinition, Permanent, ProcessActive, StoreUnavailable, UnknownProcess
from shards.records import ProcessRecord, ProcessStatus, utcnow
from shards.requests import Request
from shards.retries import attempt_run_id
from shards.runlog import entry
from shards.states import State
from shards_store import Store

from shards_worker import metrics
from shards_worker.failures import describe_failure, error_line
from shards_worker.hosting import Host, Outcome, Reporter, ThreadHost
from shards_worker.logs import about, run_context
from shards_worker.policy import RunClock, outcome
from shards_worker.runs import Run

log = logging.getLogger("shards.worker")

INLINE = ThreadHost()  # inline children execute in their parent's thread, wherever that runs


class Lifecycle:
    def __init__(
        self, store: Store, app: App, reporter: Reporter, host: Host = INLINE, *,
        on_outage: Callable[[StoreUnavailable], None] = lambda error: None, stop_grace: float = 10.0,
    ) -> None:
        self.store = store
        self.app = app
        self.reporter = reporter
        self.host = host  # where top-level runs execute
        self.worker_id = ""  # set once the worker has registered
        self._on_outage = on_outage
        self.stop_grace = stop_grace  # seconds after a stop before an isolated run is killed

    # -- launches ---------------------------------------------------------------------------
    def run_launch(self, request: Request, seen: float | None = None,
                   on_start_written: Callable[[], None] = lambda: None) -> None:
        """Start the run a launch request asks for, execute it, and record how it ended.
        The caller lets go of the run afterwards, whatever happened.
        seen: when its change event reached this worker (monotonic), for the pickup metric.
        on_start_written: told once the start's write has returned (Running, or not started)."""
        try:
            started = self._start_launch(request)
        finally:
            on_start_written()
        if started is None:
            return
        if seen is not None:
            metrics.PICKUP.observe(time.monotonic() - seen)
        record, definition, catalog, scope_data = started
        running_since = record.status.running_since or utcnow()
        metrics.LAUNCH_TO_RUNNING.observe(max(0.0, (running_since - request.created_at).total_seconds()))
        if isinstance(fire_at := request.options.get("fireAt"), int):  # a schedule's run
            metrics.SCHEDULE_LAG.observe(max(0.0, running_since.timestamp() - fire_at / 1000))

        def bookkeeping() -> None:
            self._bookkeep(lambda: self.store.runs.started(
                record.run_id, record.scope_id, record.process_id, self.worker_id,
                record.status.running_since or utcnow(), args=request.args,
                requested_at=request.created_at, launch_id=record.launch_id, attempt=record.attempt))
            self._bookkeep(lambda: self.store.requests.complete(request))  # the history has it now

        self.execute(record, definition, catalog, scope_data, request.args, parent=None,
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
                                f"{request.scope_id!r}: {error_line(error)}")
            return None
        definition = catalog.get(request.process_id)
        if definition is None:
            self._end_unstarted(request, f"process {request.process_id!r} is not in this worker's catalog")
            return None
        started = self.store.processes.start(
            request.scope_id, request.process_id, request.run_id, worker_id=self.worker_id
        )
        if started is None:  # stopped before it started, or superseded
            self._end_unstarted(request, "")
            return None
        return started, definition, catalog, scope_data

    def _end_unstarted(self, request: Request, error: str) -> None:
        """End a launch that never started here: failed (error), stopped (a stop arrived
        first), or superseded (its record has moved on: nothing to end). Read only now."""
        record = self.store.processes.get(request.scope_id, request.process_id)
        if record is not None and _next_attempt_not_moved_yet(record, request):
            # Queued a moment before its record moves to it (shards_store.Store.retry_run,
            # schedule_queued): any worker may start it once it has; a writer that died in between
            # leaves the record to a reconciler, which queues this same request.
            self.store.requests.release(request)
            return
        unstarted = (record is not None and record.run_id == request.run_id and not record.worker_id
                     and record.state in (State.SCHEDULED, State.STOP_REQUESTED))
        if record is not None and unstarted and (error or record.state is State.STOP_REQUESTED):
            self.store.end_unstarted(record, error, only_from_seen_state=True, request=request)
            if error:
                log.warning("launch failed: %s", error, extra=about(request))
        elif not error:
            log.info("launch was superseded", extra=about(request))
        self.store.requests.complete(request)

    # -- inline children --------------------------------------------------------------------
    def run_child(self, parent: Run, process_id: str, args: dict[str, Any]) -> tuple[State, str]:
        """Run a child process of the parent's scope inline, with a record of its own."""
        scope_id = parent.record.scope_id
        definition = parent.catalog.get(process_id)
        record = self.store.processes.get(scope_id, process_id)
        if definition is None or record is None:
            raise UnknownProcess(f"unknown child process {process_id!r} in scope {scope_id!r}")
        record.run_id = uuid.uuid4().hex
        self.reporter.hold(record.run_id)
        started = None
        try:
            started = self.store.processes.start(
                scope_id, process_id, record.run_id, worker_id=self.worker_id, parent_run_id=parent.run_id,
            )
        finally:
            if started is None:
                self.reporter.let_go(record.run_id)
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
        state = self.execute(started, definition, parent.catalog, parent.scope_data, args, parent)
        return state, definition.name

    def _bookkeep(self, write: Callable[[], None]) -> None:
        """A write after the start that the run does not depend on: an outage must not keep
        a started run from executing (the history is completed when the run ends)."""
        try:
            write()
        except StoreUnavailable as error:
            self._on_outage(error)

    # -- one run, wherever it executes ------------------------------------------------------
    def execute(
        self,
        record: ProcessRecord,
        definition: ProcessDefinition,
        catalog: dict[str, ProcessDefinition],
        scope_data: dict[str, Any],
        args: dict[str, Any],
        parent: Run | None,
        timeout: float | None = None,
        bookkeeping: Callable[[], None] = lambda: None,
        *,
        announce: bool = True,
    ) -> State:
        """Execute a started run on its host (top-level runs on this lifecycle's, children inline)
        and report its end. announce=False: the run's start was announced where it was claimed."""
        run = Run(
            record=record,
            definition=definition,
            catalog=catalog,
            scope_data=scope_data,
            started_at=record.status.running_since or utcnow(),
            parent=parent,
            clock=RunClock(timeout=timeout, started=time.monotonic()),
        )
        run.progress.report("Starting...", 0.0)
        host = self.host if parent is None else INLINE
        with run_context(record):  # what is logged (and printed) meanwhile is about this run
            self.reporter.adopt(run)
            if announce:
                _announce(run)
            state, error = host.execute(run, args, body=lambda: self._call_body(run, args),
                                        bookkeeping=bookkeeping, reporter=self.reporter)
            if parent is None:
                state, error = outcome(run.clock, state, error, killed=run.killed, grace=self.stop_grace)
            if state is State.STOPPED and not error:
                error = run.stop_reason
            self.reporter.end(run, state, error)  # counted there, in the worker (not a run's OS process)
        return state

    def _call_body(self, run: Run, args: dict[str, Any]) -> Outcome:
        """Call the process function in this thread; how it ended, and why if it failed."""
        record = run.record
        context = ProcessContext(
            scope_id=record.scope_id,
            process_id=record.process_id,
            run_id=record.run_id,
            runtime=WorkerRuntime(self, run),
            args=dict(args),
            scope_data=dict(run.scope_data),
            attempt=max(1, record.attempt),
        )
        error = ""
        try:
            run.definition(context)
            # Stopped only if it saw the stop: a body that ran to its end while a stop was on its
            # way (a hand-off at shutdown, say) did its work, and must not run again.
            state = State.STOPPED if run.stop_observed else State.DONE
        except ProcessStopped:
            state = State.STOPPED
        except BaseException as failure:
            state, error = State.FAILED, describe_failure(failure)
            run.permanent = isinstance(failure, Permanent)
            log.warning("failed: %s", error, extra=about(record),
                        exc_info=not isinstance(failure, SystemExit | KeyboardInterrupt))
            run.logs.append(entry(logging.ERROR, f"the run failed: {error}", failure, skip=1))
        return state, error


class WorkerRuntime:
    """The ProcessRuntime (shards.context) a run's context calls into."""

    def __init__(self, lifecycle: Lifecycle, run: Run) -> None:
        self._lifecycle = lifecycle
        self._run = run
        self.log_line = run.logs.append  # ctx.log's sink: no call of ours in between

    def should_continue(self) -> bool:
        if not self._run.stop_requested():
            return True
        run: Run | None = self._run  # a stop seen by an inline child is seen by the runs it came from
        while run is not None and run.stop_requested():
            run.stop_observed = True
            run = run.parent
        return False

    def report_progress(self, message: str, rate: float) -> None:
        self._run.progress.report(message, rate)

    def run_child(self, process_id: str, args: dict[str, Any]) -> tuple[State, str]:
        return self._lifecycle.run_child(self._run, process_id, args)


def _announce(run: Run) -> None:
    """The run's start line."""
    record = run.record
    if run.parent is None:
        label = record.attempt_label()
        log.info("started%s", f" ({label})" if label else "", extra=about(record))
    else:
        log.info("started (inline child of run %s)", run.parent.run_id, extra=about(record))


def _next_attempt_not_moved_yet(record: ProcessRecord, request: Request) -> bool:
    """The request is the next attempt of the launch whose attempt the record still runs, or
    the first launch queued behind its run (shards_store.launches.schedule_queued)."""
    if record.queue and record.queue[0].run_id == request.run_id:
        return True
    return (record.state in (State.RUNNING, State.STOPPING) and bool(record.launch_id)
            and request.run_id == attempt_run_id(record.launch_id, max(1, record.attempt) + 1))


def launch_timeout(request: Request, definition: ProcessDefinition) -> float | None:
    """The launch's own time limit wins over the process's default; a bad one is ignored."""
    try:
        return check_timeout(request.options.get("timeout")) or definition.timeout
    except InvalidDefinition as error:
        log.warning("launch: %s; using the process's default", error, extra=about(request))
        return definition.timeout

