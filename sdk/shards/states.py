"""Process states and the transitions between them: the one source of truth for every layer."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """A process record's state, spelled the same in Mongo, the CLI and Kubernetes."""

    IDLE = "Idle"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    STOP_REQUESTED = "StopRequested"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    DONE = "Done"


# A run ends in one of these; a new run may start from them or from Idle.
FINAL: frozenset[State] = frozenset({State.STOPPED, State.FAILED, State.DONE})
ACTIVE: frozenset[State] = frozenset(
    {State.SCHEDULED, State.RUNNING, State.STOP_REQUESTED, State.STOPPING}
)
LAUNCHABLE: frozenset[State] = frozenset({State.IDLE}) | FINAL
# States in which the process body executes on a worker.
EXECUTING: frozenset[State] = frozenset({State.RUNNING, State.STOP_REQUESTED, State.STOPPING})

# The next attempt of the same launch (a retry, or a hand-off by a worker shutting down) is
# Scheduled from here, guarded on the attempt's run id: not a second launch, which TRANSITIONS
# never allows while a run is active. A run being stopped (StopRequested, Stopping) never retries.
RETRY_FROM: State = State.RUNNING

TRANSITIONS: dict[State, frozenset[State]] = {
    # Scheduled by a launch; Running directly when started as a child of a running parent.
    State.IDLE: frozenset({State.SCHEDULED, State.RUNNING}),
    # Stopped: cancelled before a worker took it. StopRequested: stopped while a worker is taking
    # it. Failed: unknown to the worker, or the worker was lost.
    State.SCHEDULED: frozenset({State.RUNNING, State.STOP_REQUESTED, State.STOPPED, State.FAILED}),
    # Stopped directly when a parent's stop or a worker shutdown ends the run.
    State.RUNNING: frozenset({State.STOP_REQUESTED, State.STOPPED, State.FAILED, State.DONE}),
    # A run may still finish on its own before the stop reaches it.
    State.STOP_REQUESTED: frozenset({State.STOPPING, State.STOPPED, State.FAILED, State.DONE}),
    State.STOPPING: frozenset({State.STOPPED, State.FAILED, State.DONE}),
    # Relaunch, start as a child, or dismiss back to Idle.
    State.STOPPED: frozenset({State.SCHEDULED, State.RUNNING, State.IDLE}),
    State.FAILED: frozenset({State.SCHEDULED, State.RUNNING, State.IDLE}),
    State.DONE: frozenset({State.SCHEDULED, State.RUNNING, State.IDLE}),
}


def can_transition(source: State, target: State) -> bool:
    return target in TRANSITIONS[source]


def sources_of(target: State) -> list[State]:
    """The states from which `target` may be entered, in declaration order (for guarded writes)."""
    return [state for state in State if target in TRANSITIONS[state]]
