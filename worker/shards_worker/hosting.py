"""Where a run's body executes, and the narrow interface its host reports through.

A run's lifecycle (shards_worker.lifecycle) starts a run, records its progress, logs and end,
and does not know where the body executes. A Host does: it is handed the run, the body to call
if it executes it in this process, the history's bookkeeping (writes the run does not wait for)
and a Reporter, through which the runs it executes become known (adopt) and end (end). The
worker's Reporter is its Ledger; in a run's own OS process it is a pipe to the worker
(shards_worker.run_process). Progress and log lines go into the run's own buffers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from shards.states import State

from shards_worker.runs import Run

Outcome = tuple[State, str]  # how a body ended, and why if it failed


class Reporter(Protocol):
    def hold(self, run_id: str) -> None:
        """A run is about to start here: it is this worker's from now on, whatever happens."""

    def let_go(self, run_id: str) -> None:
        """A held run will not execute here (not started, or its start unconfirmed)."""

    def adopt(self, run: Run) -> None:
        """A run executes from now on: its progress and logs are written, its stops delivered."""

    def end(self, run: Run, state: State, error: str) -> None:
        """A run has ended: record it (once; kept until the store has it)."""


class Host(Protocol):
    killable: bool  # can end a run that does not stop (its OS process is killed)

    def warm(self) -> None:
        """Prepare what the first run would otherwise wait for."""

    def slot_freed(self) -> None:
        """A run's slot is free again (its end is recorded, or it never started)."""

    def close(self) -> None:
        """The worker stops (its runs have ended): release what warm and the runs left."""

    def execute(self, run: Run, args: dict[str, Any], *, body: Callable[[], Outcome],
                bookkeeping: Callable[[], None], reporter: Reporter) -> Outcome:
        """Execute a started top-level run until it ends; how it ended."""


class ThreadHost:
    """The body executes in the calling thread (--isolation thread, and every inline child)."""

    killable = False  # a thread cannot be killed: a run that never stops outlives its grace

    def warm(self) -> None:
        pass

    def slot_freed(self) -> None:
        pass

    def close(self) -> None:
        pass

    def execute(self, run: Run, args: dict[str, Any], *, body: Callable[[], Outcome],
                bookkeeping: Callable[[], None], reporter: Reporter) -> Outcome:
        bookkeeping()
        return body()
