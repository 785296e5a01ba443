"""Executions: process runs on this worker, each with its own stop flag and progress buffer."""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shards.app import App, ProcessDefinition
from shards.context import ProcessContext, ProcessStopped
from shards.errors import ProcessActive, UnknownProcess
from shards.records import ProcessRecord, ProcessStatus, Progress, Request, utcnow
from shards.states import ACTIVE, State
from shards_store import Store

from shards_worker import metrics
from shards_worker.progress import ProgressBuffer

log = logging.getLogger("shards.worker")


@dataclass
class Execution:
    """One run of one process on this worker; children point at their parent."""

    record: ProcessRecord
    definition: ProcessDefinition
    catalog: dict[str, ProcessDefinition]
    scope_data: dict[str, Any]
    started_at: datetime
    parent: Execution | None = None
    stop_flag: threading.Event = field(default_factory=threading.Event)
    progress: ProgressBuffer = field(default_factory=ProgressBuffer)

    @property
    def run_id(self) -> str:
        return self.record.run_id

    def stop_requested(self) -> bool:
        """A stop of this run or of any ancestor stops it (the seed's shouldContinue)."""
        return self.stop_flag.is_set() or (self.parent is not None and self.parent.stop_requested())


class _Runtime:
    """The ProcessRuntime a context calls into."""

    def __init__(self, executor: Executor, execution: Execution) -> None:
        self._executor = executor
        self._execution = execution

    def should_continue(self) -> bool:
        return not self._execution.stop_requested()

    def report_progress(self, message: str, rate: float) -> None:
        self._execution.progress.report(message, rate)

    def run_child(self, process_id: str, args: dict[str, Any]) -> tuple[State, str]:
        return self._executor.run_child(self._execution, process_id, args)


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:500] if text else type(error).__name__


class Executor:
    def __init__(self, store: Store, app: App, worker_id: str) -> None:
        self.store = store
        self.app = app
        self.worker_id = worker_id
        self._lock = threading.Lock()
        self._running: dict[str, Execution] = {}

    # -- what the worker loop and the heartbeat see -------------------------------------
    def executions(self) -> list[Execution]:
        with self._lock:
            return list(self._running.values())

    def stop_run(self, run_id: str) -> bool:
        """Flip the stop flag of a run on this worker and record Stopping."""
        with self._lock:
            execution = self._running.get(run_id)
        if execution is None:
            return False
        execution.stop_flag.set()
        record = execution.record
        self.store.processes.move(record.scope_id, record.process_id, State.STOPPING, run_id=run_id)
        log.info("shards.worker: stopping %s/%s run %s", record.scope_id, record.process_id, run_id)
        return True

    def stop_all(self) -> None:
        for execution in self.executions():
            execution.stop_flag.set()

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

    # -- runs -----------------------------------------------------------------------------
    def run_launch(self, request: Request) -> None:
        """Start the run a launch request asks for, execute it, and record how it ended."""
        scope_id, process_id = request.scope_id, request.process_id
        record = self.store.processes.get(scope_id, process_id)
        if record is None or record.run_id != request.run_id:
            log.info("shards.worker: launch %s/%s was superseded", scope_id, process_id)
            self.store.requests.complete(request)
            return
        try:
            scope_data = self.app.scope_data(scope_id)
            catalog = self.app.catalog(scope_data)
        except Exception as error:
            self._end_unstarted(record, request, f"cannot load the catalog of scope {scope_id!r}: "
                                f"{one_line(error)}")
            return
        definition = catalog.get(process_id)
        if definition is None:
            self._end_unstarted(
                record, request, f"process {process_id!r} is not in this worker's catalog"
            )
            return
        started = self.store.processes.start(record, worker_id=self.worker_id)
        if started is None:
            self._end_unstarted(record, request, "")
            return
        self.store.runs.started(started.run_id, self.worker_id, utcnow())
        self.store.requests.complete(request)  # from here on the run history has it
        self._execute(started, definition, catalog, scope_data, request.args, parent=None)

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
        self.store.runs.requested(record.run_id, scope_id, process_id, args, utcnow(), parent.run_id)
        started = self.store.processes.start(
            record, worker_id=self.worker_id, parent_run_id=parent.run_id
        )
        if started is None:
            current = self.store.processes.get(scope_id, process_id)
            state = current.state.value if current else "gone"
            self.store.runs.ended(record.run_id, ProcessStatus.ended(State.FAILED, error="already active"))
            raise ProcessActive(f"child process {process_id!r} is already active ({state})")
        self.store.runs.started(started.run_id, self.worker_id, utcnow())
        state = self._execute(started, definition, parent.catalog, parent.scope_data, args, parent)
        return state, definition.name

    def _execute(
        self,
        record: ProcessRecord,
        definition: ProcessDefinition,
        catalog: dict[str, ProcessDefinition],
        scope_data: dict[str, Any],
        args: dict[str, Any],
        parent: Execution | None,
    ) -> State:
        execution = Execution(
            record=record,
            definition=definition,
            catalog=catalog,
            scope_data=scope_data,
            started_at=record.status.running_since or utcnow(),
            parent=parent,
        )
        execution.progress.report("Starting...", 0.0)
        with self._lock:
            self._running[record.run_id] = execution
        metrics.RUNS_ACTIVE.inc()
        context = ProcessContext(
            scope_id=record.scope_id,
            process_id=record.process_id,
            run_id=record.run_id,
            runtime=_Runtime(self, execution),
            args=dict(args),
            scope_data=dict(scope_data),
        )
        log.info("shards.worker: running %s/%s run %s", record.scope_id, record.process_id, record.run_id)
        error = ""
        try:
            definition(context)
            state = State.STOPPED if execution.stop_requested() else State.DONE
        except ProcessStopped:
            state = State.STOPPED
        except Exception as failure:  # the process's own failure: record it, keep serving
            state, error = State.FAILED, one_line(failure)
            log.warning(
                "shards.worker: %s/%s failed: %s", record.scope_id, record.process_id, error,
                exc_info=True,
            )
        finally:
            with self._lock:
                self._running.pop(record.run_id, None)
            metrics.RUNS_ACTIVE.dec()
        self._record_end(execution, state, error)
        metrics.RUNS_ENDED.labels(state.value).inc()
        return state

    def _record_end(self, execution: Execution, state: State, error: str) -> None:
        record = execution.record
        status = ProcessStatus.ended(state, error=error, running_since=execution.started_at)
        progress = Progress("All done", 1.0) if state is State.DONE else execution.progress.latest()
        if self.store.end_run(record, status, progress) is None:
            log.warning(
                "shards.worker: %s/%s run %s ended %s but its record had moved on",
                record.scope_id, record.process_id, record.run_id, state.value,
            )
        log.info("shards.worker: %s/%s ended %s in %.3fs", record.scope_id, record.process_id,
                 state.value, status.duration or 0.0)

    def abandon(self, request: Request, error: Exception) -> None:
        """Best effort after an unexpected failure: fail the run so nothing stays active."""
        try:
            record = self.store.processes.get(request.scope_id, request.process_id)
            if record is not None and record.run_id == request.run_id and record.state in ACTIVE:
                status = ProcessStatus.ended(State.FAILED, error=f"worker error: {one_line(error)}",
                                             running_since=record.status.running_since)
                self.store.end_run(record, status)
            self.store.requests.complete(request)
        except Exception:  # the store is unreachable: the lease reaper settles it later
            log.exception("shards.worker: could not settle the launch of %s/%s",
                          request.scope_id, request.process_id)

    def _end_unstarted(self, record: ProcessRecord, request: Request, error: str) -> None:
        """End a launch that never started: failed (error) or stopped (stop arrived first)."""
        self.store.end_unstarted(record, error)
        self.store.requests.complete(request)
        if error:
            log.warning("shards.worker: launch of %s/%s failed: %s", record.scope_id,
                        record.process_id, error)
