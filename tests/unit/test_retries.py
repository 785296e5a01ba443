"""Which ended attempts retry, after how long, and what a launch keeps of its attempts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shards.errors import InvalidDefinition
from shards.records import LaunchSpec, ProcessRecord
from shards.retries import (
    KEPT_ATTEMPTS,
    MAX_BACKOFF,
    MAX_HANDOFFS,
    MIN_BACKOFF,
    Attempt,
    Cause,
    LaunchState,
    RunPolicy,
    attempt_run_id,
    backoff_delay,
    check_backoff,
    check_on_shutdown,
    check_retries,
    kept,
    plan_retry,
)
from shards.states import State


def launch(attempt: int = 1, retried: int = 0, retries: int = 3, backoff: float = 2.0) -> LaunchState:
    return LaunchState(launch_id="run1", attempt=attempt, retried=retried, retries=retries, backoff=backoff)


@given(st.integers(1, 60), st.floats(MIN_BACKOFF, MAX_BACKOFF), st.floats(0, 1))
def test_the_nth_retry_waits_between_half_and_all_of_its_exponential_step(
    retry: int, base: float, draw: float
) -> None:
    step = min(MAX_BACKOFF, base * 2 ** (retry - 1))
    delay = backoff_delay(retry, base, lambda: draw)
    assert step / 2 <= delay <= step + 1e-9


@pytest.mark.parametrize("backoff", [0, 0.0, 0.05, -1])
def test_a_backoff_under_the_minimum_is_refused(backoff: float) -> None:
    """A base of 0 never doubles: a launch that fails at once would retry in a hot loop."""
    with pytest.raises(InvalidDefinition, match=r"retry backoff must be 0\.1 to 300 seconds"):
        check_backoff(backoff)
    assert check_backoff(MIN_BACKOFF) == MIN_BACKOFF


def test_a_zero_backoff_stored_before_the_minimum_still_doubles_from_it() -> None:
    assert [backoff_delay(n, 0.0, lambda: 1.0) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.8]
    # A launch that fails at once, retried 100 times from the floor: at most 9 attempts in 16 s.
    elapsed, attempts = 0.0, 1
    for retry in range(1, 101):
        elapsed += backoff_delay(retry, MIN_BACKOFF, lambda: 0.0)
        attempts += elapsed <= 16
    assert attempts <= 9


def test_backoff_doubles_and_jitter_spreads_it() -> None:
    assert [backoff_delay(n, 1.0, lambda: 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert [backoff_delay(n, 1.0, lambda: 0.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff_delay(30, 1.0, lambda: 1.0) == MAX_BACKOFF


def test_a_failure_is_retried_while_retries_are_left() -> None:
    plan = plan_retry(launch(attempt=1), Cause.FAILED, "boom", draw=lambda: 1.0)
    assert plan is not None
    assert (plan.attempt, plan.run_id, plan.delay, plan.retried) == (2, "run1.2", 2.0, 1)
    assert plan.message == "retry 1 of 3 in 2.0 s (attempt 1 failed: boom)"
    assert plan_retry(launch(attempt=4, retried=3), Cause.FAILED, "boom") is None


@pytest.mark.parametrize("cause", [Cause.PERMANENT, Cause.STOPPED, Cause.DONE])
def test_permanent_errors_stops_and_successes_end_the_launch(cause: Cause) -> None:
    assert plan_retry(launch(), cause, "why") is None


def test_a_lost_worker_or_a_shutdown_hands_off_without_spending_a_retry() -> None:
    spent = launch(attempt=3, retried=3, retries=3)
    for cause in (Cause.WORKER_LOST, Cause.HANDOFF):
        handed = plan_retry(spent, cause, "worker w1 was lost")
        assert handed is not None
        assert (handed.attempt, handed.delay, handed.retried, handed.handoffs) == (4, 0.0, 3, 1)
        assert handed.message.startswith("handed off: attempt 3's worker")
    no_retries = plan_retry(launch(retries=0), Cause.WORKER_LOST)
    assert no_retries is not None and no_retries.retried == 0


def test_hand_offs_are_bounded_then_a_lost_worker_spends_a_retry() -> None:
    worn = LaunchState(launch_id="run1", attempt=30, retried=1, retries=3, backoff=2.0, handoffs=MAX_HANDOFFS)
    lost = plan_retry(worn, Cause.WORKER_LOST, "worker w1 was lost")
    assert lost is not None and (lost.retried, lost.handoffs) == (2, MAX_HANDOFFS)
    assert "its worker was lost" in lost.message
    assert plan_retry(worn, Cause.HANDOFF) is None
    spent = LaunchState(launch_id="run1", attempt=30, retried=3, retries=3, backoff=2.0,
                        handoffs=MAX_HANDOFFS)
    assert plan_retry(spent, Cause.WORKER_LOST) is None


def test_a_process_that_stops_at_shutdown_spends_a_retry_when_its_worker_is_lost() -> None:
    stops = LaunchState(launch_id="run1", attempt=1, retried=0, retries=1, backoff=2.0, on_shutdown="stop")
    lost = plan_retry(stops, Cause.WORKER_LOST)
    assert lost is not None and (lost.retried, lost.handoffs) == (1, 0)
    assert plan_retry(LaunchState(launch_id="r", attempt=1, retried=0, retries=0, backoff=1.0,
                                  on_shutdown="stop"), Cause.WORKER_LOST) is None


def test_a_child_run_is_never_retried_itself() -> None:
    nested = LaunchState(launch_id="c", attempt=1, retried=0, retries=5, backoff=1, nested=True)
    assert plan_retry(nested, Cause.FAILED, "boom") is None
    assert plan_retry(nested, Cause.HANDOFF) is None


def test_attempt_run_ids_derive_from_the_launch() -> None:
    assert [attempt_run_id("k8s-uid-1", n) for n in (1, 2, 3)] == ["k8s-uid-1", "k8s-uid-1.2", "k8s-uid-1.3"]


def test_a_record_keeps_only_the_latest_attempts() -> None:
    attempts = [Attempt(n, f"r.{n}", State.FAILED, "x") for n in range(1, KEPT_ATTEMPTS + 1)]
    last = Attempt(KEPT_ATTEMPTS + 1, "r.last", State.STOPPED, "handed off")
    assert kept(attempts, last) == [*attempts[1:], last]


@pytest.mark.parametrize(("check", "value"), [
    (check_retries, -1), (check_retries, 101), (check_retries, 1.5), (check_retries, True),
    (check_backoff, -0.1), (check_backoff, 301), (check_backoff, "1"), (check_on_shutdown, "kill"),
])
def test_bad_policies_are_refused_in_one_line(check: object, value: object) -> None:
    with pytest.raises(InvalidDefinition) as refused:
        check(value)  # type: ignore[operator]
    assert "\n" not in str(refused.value)


def test_a_launch_own_limits_win_over_the_process_defaults() -> None:
    record = ProcessRecord(scope_id="s", process_id="p", name="p", policy=RunPolicy(retries=2, backoff=5.0),
                           launch_id="run1", attempt=2, retried=1)
    assert (record.launch_state().retries, record.launch_state().backoff) == (2, 5.0)
    record.launch = LaunchSpec(options={"retries": 4, "retryBackoff": 0.5})
    assert (record.launch_state().retries, record.launch_state().backoff) == (4, 0.5)
    assert record.attempt_label() == "attempt 2 of 5"
    record.launch = LaunchSpec(options={"retries": "many"})  # stored by an older client: the defaults
    assert record.launch_state().retries == 2


def test_attempts_survive_the_document_round_trip() -> None:
    record = ProcessRecord(scope_id="s", process_id="p", name="p", launch_id="run1", attempt=2, retried=1,
                           attempts=[Attempt(1, "run1", State.FAILED, "boom", 1_700_000_000_000)],
                           launch=LaunchSpec(args={"n": 1}, options={"retries": 3}),
                           policy=RunPolicy(1, 0.5, "stop"))
    assert ProcessRecord.from_doc(record.to_doc()) == record
    assert ProcessRecord(scope_id="s", process_id="p", name="p").attempt_label() == ""
