"""Run policies, decided from times alone: deadlines, grace after a stop, forced stops.

Plain logic on monotonic seconds (unit-tested): the worker asks a run to stop at its deadline,
and kills an isolated run once a forced stop arrives or the grace after a stop request is over.
"""

from __future__ import annotations

from dataclasses import dataclass

from shards.states import State


@dataclass
class RunClock:
    """What the policies need to know about one top-level run (monotonic seconds)."""

    timeout: float | None = None  # the run's time limit, if any
    started: float = 0.0
    stop_asked: float | None = None  # when a stop was first asked (by anyone)
    forced: bool = False  # a forced stop: kill at once
    deadline_hit: bool = False  # the stop was asked by the deadline
    kill_reason: str = ""  # why it was killed, when neither a forced stop nor the grace did it

    @property
    def deadline(self) -> float | None:
        return None if self.timeout is None else self.started + self.timeout


@dataclass(frozen=True)
class Action:
    """What to do now: ask the run to stop (with `reason` as its stop reason), or kill it."""

    kind: str  # "stop" or "kill"
    reason: str = ""


def deadline_reason(timeout: float) -> str:
    return f"deadline exceeded after {timeout:g} s"


def decide(clock: RunClock, now: float, *, grace: float, killable: bool) -> Action | None:
    """The next step for a run, if any: its deadline asks it to stop; a forced stop kills an
    isolated run at once, and any stop kills it once `grace` seconds have passed."""
    deadline = clock.deadline
    if clock.stop_asked is None:
        if deadline is not None and now >= deadline and clock.timeout is not None:
            return Action("stop", deadline_reason(clock.timeout))
        return None
    if killable and (clock.forced or now >= clock.stop_asked + grace):
        return Action("kill")
    return None


def outcome(clock: RunClock, state: State, error: str, *, killed: bool, grace: float) -> tuple[State, str]:
    """How a run that the policies touched ends. A run stopped by its deadline fails, saying so,
    whether it stopped in time or was killed; a killed run ends Stopped, saying why. A run that
    failed on its own keeps its error; one that finished before the stop took effect is Done."""
    if clock.deadline_hit and clock.timeout is not None and (killed or state is State.STOPPED):
        return State.FAILED, deadline_reason(clock.timeout)
    if killed:
        if clock.kill_reason:
            return State.STOPPED, clock.kill_reason
        return State.STOPPED, "killed by a forced stop" if clock.forced else f"killed after {grace:g} s grace"
    return state, error
