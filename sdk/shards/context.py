"""The handle a running process gets: arguments, scope data, progress, stop checks, children."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from shards.errors import ChildProcessFailed
from shards.runlog import run_logger
from shards.states import State


class ProcessStopped(Exception):
    """Raised to end a run as Stopped (e.g. a child stopped and the parent did not survive it)."""


class ProcessRuntime(Protocol):
    """What the executing worker provides to a context."""

    def should_continue(self) -> bool: ...

    def report_progress(self, message: str, rate: float) -> None: ...

    def run_child(self, process_id: str, args: dict[str, Any]) -> tuple[State, str]:
        """Run a child process of the same scope inline; return its end state and name."""
        ...

    # A runtime may also have log_line(line: str) -> None: where ctx.log's entries go (a worker's
    # runtime buffers them for the run's log); without it ctx.log only reaches the logging tree.


def clamp_rate(rate: float) -> float:
    """Progress rates live in 0..1; a NaN or non-number is a programming error."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or math.isnan(rate):
        raise ValueError(f"progress rate must be a number in 0..1, got {rate!r}")
    return min(1.0, max(0.0, float(rate)))


@dataclass
class ProcessContext:
    scope_id: str
    process_id: str
    run_id: str
    runtime: ProcessRuntime
    args: dict[str, Any] = field(default_factory=dict)
    scope_data: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1  # which attempt of its launch this run is (2 and up: a retry or a hand-off)
    # The run's log (`shards logs`): a standard Logger, cheap to call often (lines are buffered
    # and written in batches; a run keeps its last 1,000 lines / 256 KiB).
    log: logging.Logger = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.log = run_logger(self.process_id, getattr(self.runtime, "log_line", None))

    def should_continue(self) -> bool:
        """False once a stop was requested: return soon, the run ends Stopped."""
        return self.runtime.should_continue()

    def report_progress(self, message: str, rate: float) -> None:
        """Cheap to call often: the worker coalesces writes, and the last value always lands."""
        self.runtime.report_progress(str(message), clamp_rate(rate))

    def run_process(
        self,
        process_id: str,
        *,
        args: dict[str, Any] | None = None,
        survive_failure: bool = False,
        survive_stopping: bool = False,
    ) -> str:
        """Run a child process of this scope on this worker; return "Done", "Failed" or "Stopped".

        A failed child fails this process unless survive_failure; a stopped child stops this
        process unless survive_stopping.
        """
        state, name = self.runtime.run_child(process_id, dict(args or {}))
        if state is State.FAILED and not survive_failure:
            raise ChildProcessFailed(f"Failed to {name}.")
        if state is State.STOPPED and not survive_stopping:
            raise ProcessStopped(f"child {process_id!r} was stopped")
        return state.value
