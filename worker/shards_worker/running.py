"""What one run on this worker is: its record, stop flag, progress and log buffers, and clock;
and the runtime its context calls into."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shards.app import ProcessDefinition
from shards.records import ProcessRecord, ProcessStatus, Progress
from shards.retries import Cause, RetryPlan
from shards.states import State

from shards_worker.policy import RunClock
from shards_worker.progress import ProgressBuffer
from shards_worker.runlogs import LogBuffer

if TYPE_CHECKING:
    from shards_worker.execution import Executor


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
    stop_reason: str = ""  # recorded as the error of a run stopped by the worker itself
    progress: ProgressBuffer = field(default_factory=ProgressBuffer)
    logs: LogBuffer = field(default_factory=LogBuffer)  # ctx.log's lines, until a flush writes them
    clock: RunClock = field(default_factory=RunClock)  # deadline, stop and grace (top-level runs)
    kill: Callable[[], None] | None = None  # set while the run executes in an OS process of its own
    killed: bool = False
    body_over: bool = False  # the process function has returned (or its OS process is gone)
    permanent: bool = False  # it raised shards.Permanent: not retried
    ended_by: Cause | None = None  # the worker ended it (shutting down, or losing its lease)

    @property
    def run_id(self) -> str:
        return self.record.run_id

    def stop_requested(self) -> bool:
        """A stop of this run or of any ancestor stops it (the seed's shouldContinue)."""
        return self.stop_flag.is_set() or (self.parent is not None and self.parent.stop_requested())

    def cause(self, state: State) -> Cause:
        """Why this run ended, as retries see it (see shards.retries)."""
        if state is State.DONE:
            return Cause.DONE
        if self.permanent:
            return Cause.PERMANENT
        if self.ended_by is not None:
            return self.ended_by
        return Cause.FAILED if state is State.FAILED else Cause.STOPPED

    def ask_stop(self, reason: str = "", *, force: bool = False) -> bool:
        """Flip the stop flag (the first reason given stays); returns whether it was new."""
        self.clock.forced = self.clock.forced or force
        if self.stop_flag.is_set():
            return False
        self.stop_reason = reason
        self.clock.stop_asked = time.monotonic()
        self.stop_flag.set()
        return True


class Runtime:
    """The ProcessRuntime a context calls into."""

    def __init__(self, executor: Executor, execution: Execution) -> None:
        self._executor = executor
        self._execution = execution
        self.log_line = execution.logs.append  # ctx.log's sink: no call of ours in between

    def should_continue(self) -> bool:
        return not self._execution.stop_requested()

    def report_progress(self, message: str, rate: float) -> None:
        self._execution.progress.report(message, rate)

    def run_child(self, process_id: str, args: dict[str, Any]) -> tuple[State, str]:
        return self._executor.run_child(self._execution, process_id, args)


@dataclass
class Ending:
    """How a run ended, kept until the store has recorded it."""

    record: ProcessRecord
    status: ProcessStatus
    progress: Progress
    retry: RetryPlan | None = None  # the launch's next attempt, queued with this end
    logs: LogBuffer | None = None  # the run's last lines: written before its end


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:500] if text else type(error).__name__


def describe_failure(failure: BaseException) -> str:
    """Why a process body ended with an exception, in one line a person understands."""
    if isinstance(failure, SystemExit):
        return f"the process called sys.exit({failure.code!r})" if failure.code is not None else \
            "the process called sys.exit()"
    if isinstance(failure, KeyboardInterrupt):
        return "the process raised KeyboardInterrupt"
    return one_line(failure)
