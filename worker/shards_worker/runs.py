"""What one run on this worker is: its record, stop flag, progress and log buffers, and clock;
and, once it has ended, the end the store must record."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shards.app import ProcessDefinition
from shards.records import ProcessRecord, ProcessStatus, Progress
from shards.retries import Cause, RetryPlan
from shards.states import State

from shards_worker.policy import RunClock
from shards_worker.progress import ProgressBuffer
from shards_worker.runlogs import LogBuffer


@dataclass
class Run:
    """One run of one process on this worker; an inline child run points at its parent."""

    record: ProcessRecord
    definition: ProcessDefinition
    catalog: dict[str, ProcessDefinition]
    scope_data: dict[str, Any]
    started_at: datetime
    parent: Run | None = None
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
    stop_recorded: bool = False  # a stop of it was recorded as Stopping (see Policing.stop_run)
    stop_observed: bool = False  # its body was told to stop (should_continue() said no)

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

    def final_progress(self, state: State) -> Progress:
        return Progress("All done", 1.0) if state is State.DONE else self.progress.latest()


@dataclass
class Ending:
    """How a run ended, kept until the store has recorded it."""

    record: ProcessRecord
    status: ProcessStatus
    progress: Progress
    retry: RetryPlan | None = None  # the launch's next attempt, queued with this end
    logs: LogBuffer | None = None  # the run's last lines: written before its end
