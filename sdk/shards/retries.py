"""Retries: which ended attempts of a launch run again, after how long, and what a launch keeps
of its attempts. Plain logic (unit-tested); the worker and the reconciler act on its plans.

What retries (docs/design.md, "Retries"): a failure (the process raised, crashed or missed its
deadline) while retries are left. What is handed off (run again at once, spending no retry: the
run did not fail, its worker went away) when its process allows it (`on_shutdown="retry"`, the
default): a run its worker stopped at shutdown, a run its worker stopped because it lost MongoDB
for most of its lease, a run whose worker was lost or killed. Hand-offs are bounded by
MAX_HANDOFFS per launch, so no launch loops forever; past it (or with `on_shutdown="stop"`) a run
whose worker was lost spends a retry if it has one left. What never retries: `shards.Permanent`,
a stop by a user, a launch that could not start (unknown process).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shards.errors import InvalidDefinition
from shards.states import State

DEFAULT_BACKOFF = 1.0  # seconds: the first retry waits between half of this and all of it
# A base of 0 never doubles: a launch that fails at once would retry in a hot loop (51 attempts
# in 16 s were seen). Any positive base doubles per retry, so the rate decays whatever the
# floor; 0.1 s keeps the sub-second first retries apps define (and tests use) valid, and lets a
# launch that fails at once make about 9 attempts in its first 16 s, 13 in its first 7 minutes.
MIN_BACKOFF = 0.1
MAX_BACKOFF = 300.0  # no retry waits longer than this
MAX_RETRIES = 100
# Hand-offs of one launch (its workers shut down, lost MongoDB or were lost): a long run may see
# a rolling update a day and a few outages, but a launch whose every attempt takes its worker
# down (a crash of the machine, an OOM kill of the pod) must not loop forever.
MAX_HANDOFFS = 20
KEPT_ATTEMPTS = 20  # a record keeps the outcomes of this many earlier attempts (the history has all)
ON_SHUTDOWN = ("retry", "stop")


class Cause(StrEnum):
    """Why an attempt ended, as far as retrying goes."""

    FAILED = "failed"  # raised, crashed, missed its deadline
    PERMANENT = "permanent"  # raised shards.Permanent
    WORKER_LOST = "worker-lost"  # its worker lost MongoDB (and stopped it), or was lost or killed
    HANDOFF = "handoff"  # its worker shut down and the process's policy is "retry"
    STOPPED = "stopped"  # by a user (or a forced stop): the launch is over
    DONE = "done"


@dataclass(frozen=True)
class RunPolicy:
    """A process's defaults for its launches (`@app.process(retries=, retry_backoff=,
    on_shutdown=)`), stored on its record so that any worker or reconciler can apply them."""

    retries: int = 0
    backoff: float = DEFAULT_BACKOFF
    on_shutdown: str = "retry"

    def to_doc(self) -> dict[str, Any]:
        return {"retries": self.retries, "retryBackoff": self.backoff, "onShutdown": self.on_shutdown}

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> RunPolicy:
        doc = doc or {}
        return cls(retries=int(doc.get("retries", 0)),
                   backoff=float(doc.get("retryBackoff", DEFAULT_BACKOFF)),
                   on_shutdown=str(doc.get("onShutdown", "retry")))


@dataclass(frozen=True)
class Attempt:
    """How one earlier attempt of a launch ended."""

    attempt: int
    run_id: str
    state: State
    error: str = ""
    ended_at: int | None = None  # epoch ms

    def to_doc(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "runId": self.run_id, "state": self.state.value,
                "error": self.error, "endedAt": self.ended_at}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Attempt:
        return cls(attempt=int(doc.get("attempt", 0)), run_id=str(doc.get("runId", "")),
                   state=State(doc.get("state", State.FAILED)), error=str(doc.get("error") or ""),
                   ended_at=doc.get("endedAt"))


@dataclass(frozen=True)
class RetryPlan:
    """The next attempt: its number and run id, how long it waits, and why it runs."""

    attempt: int
    run_id: str
    delay: float
    retried: int  # failed attempts retried so far, this one included (hand-offs do not count)
    message: str  # what the record's progress says while it waits
    handoffs: int = 0  # hand-offs of the launch so far, this one included


def check_retries(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise InvalidDefinition(f"retries must be a whole number from 0 to {MAX_RETRIES}, got {value!r}")
    return value


def check_backoff(value: object) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not MIN_BACKOFF <= value <= MAX_BACKOFF):
        raise InvalidDefinition(
            f"retry backoff must be {MIN_BACKOFF:g} to {MAX_BACKOFF:g} seconds, got {value!r}")
    return float(value)


def check_on_shutdown(value: object) -> str:
    if value not in ON_SHUTDOWN:
        raise InvalidDefinition(f"on_shutdown must be one of {', '.join(ON_SHUTDOWN)}, got {value!r}")
    return str(value)


def backoff_delay(retry: int, base: float, draw: Callable[[], float] = random.random) -> float:
    """Exponential backoff with equal jitter: retry n waits between half of and all of
    base * 2**(n-1) (at most MAX_BACKOFF), so retries of many launches that failed together
    spread out, and none comes sooner than half its step. A base under MIN_BACKOFF (stored
    before the floor) counts as MIN_BACKOFF."""
    ceiling = min(MAX_BACKOFF, max(MIN_BACKOFF, base) * 2 ** max(0, retry - 1))
    return ceiling / 2 + draw() * ceiling / 2


def attempt_run_id(launch_id: str, attempt: int) -> str:
    """Attempt 1 runs under the launch's own run id; later ones under derived ids, so a write
    repeated after an outage names the same attempt."""
    return launch_id if attempt <= 1 else f"{launch_id}.{attempt}"


@dataclass(frozen=True)
class LaunchState:
    """What a retry decision needs to know of a launch (read from its process record)."""

    launch_id: str
    attempt: int
    retried: int
    retries: int  # allowed for this launch
    backoff: float
    nested: bool = False  # a child run: its parent is what retries
    handoffs: int = 0  # attempts handed off so far (see MAX_HANDOFFS)
    on_shutdown: str = "retry"  # the process's policy: "stop" is never run again after its worker


def plan_retry(launch: LaunchState, cause: Cause, error: str = "",
               draw: Callable[[], float] = random.random) -> RetryPlan | None:
    """The next attempt after one that ended for `cause`, or None when the launch is over."""
    if launch.nested or cause in (Cause.PERMANENT, Cause.STOPPED, Cause.DONE):
        return None
    next_attempt = launch.attempt + 1
    run_id = attempt_run_id(launch.launch_id, next_attempt)
    handed_off = cause is Cause.HANDOFF or (cause is Cause.WORKER_LOST and launch.on_shutdown == "retry")
    if handed_off and launch.handoffs < MAX_HANDOFFS:
        why = "shut down" if cause is Cause.HANDOFF else "was lost or lost MongoDB"
        return RetryPlan(next_attempt, run_id, 0.0, launch.retried,
                         f"handed off: attempt {launch.attempt}'s worker {why}", launch.handoffs + 1)
    if launch.retried >= launch.retries or cause is Cause.HANDOFF:
        return None
    retried = launch.retried + 1
    delay = backoff_delay(retried, launch.backoff, draw)
    what = "its worker was lost" if cause is Cause.WORKER_LOST else f"failed: {error}" if error else "failed"
    message = f"retry {retried} of {launch.retries} in {delay:.1f} s (attempt {launch.attempt} {what})"
    return RetryPlan(next_attempt, run_id, delay, retried, message, launch.handoffs)


def kept(attempts: list[Attempt], ended: Attempt) -> list[Attempt]:
    """The earlier attempts a record keeps once `ended` joins them."""
    return [*attempts, ended][-KEPT_ATTEMPTS:]

