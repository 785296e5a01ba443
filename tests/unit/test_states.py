from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from shards.states import (
    ACTIVE,
    EXECUTING,
    FINAL,
    LAUNCHABLE,
    TRANSITIONS,
    State,
    can_transition,
    sources_of,
)


def test_states_are_spelled_as_everywhere_else() -> None:
    assert [s.value for s in State] == [
        "Idle", "Scheduled", "Running", "StopRequested", "Stopping", "Stopped", "Failed", "Done",
    ]


def test_active_and_launchable_partition_the_states() -> None:
    assert ACTIVE.isdisjoint(LAUNCHABLE)
    assert set(State) == ACTIVE | LAUNCHABLE
    assert EXECUTING <= ACTIVE


def test_every_state_is_reachable_from_idle() -> None:
    seen, frontier = {State.IDLE}, [State.IDLE]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(State)


def test_a_run_can_always_end() -> None:
    for state in ACTIVE:
        assert TRANSITIONS[state] & FINAL, f"{state} cannot reach an end state"


def test_stops_go_through_stop_requested_and_stopping() -> None:
    assert can_transition(State.RUNNING, State.STOP_REQUESTED)
    assert can_transition(State.STOP_REQUESTED, State.STOPPING)
    assert can_transition(State.STOPPING, State.STOPPED)
    assert not can_transition(State.STOPPING, State.RUNNING)
    assert not can_transition(State.RUNNING, State.SCHEDULED)  # no second launch while running


@given(st.lists(st.sampled_from(list(State)), max_size=30))
def test_any_sequence_of_guarded_writes_keeps_the_lifecycle_rules(targets: list[State]) -> None:
    """Whatever writes arrive, in whatever order, the guard (sources_of) keeps the rules the
    seed broke: no launch of an active process, and every active run can still end."""
    state = State.IDLE
    for target in targets:
        if state not in sources_of(target):
            continue
        if target is State.SCHEDULED:
            assert state in LAUNCHABLE, f"a second launch from {state}"
        if target in FINAL:
            assert state is not State.IDLE, "a run ended that never started"
        state = target
        if state in ACTIVE:
            assert TRANSITIONS[state] & FINAL
