"""The rules of schedules as plain functions: overlap decisions, catch-up after a gap (bounded),
run ids, spec checks and backfill ranges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shards.errors import InvalidDefinition
from shards.schedule_times import Timing
from shards.schedules import (
    MAX_BACKFILL,
    MAX_CATCHUP_FIRES,
    MISSED_COUNT_CAP,
    Outcome,
    Overlap,
    ScheduleRecord,
    ScheduleSpec,
    backfill_times,
    catch_up,
    decide_overlap,
    first_next,
    next_fire_after,
    run_id_for,
)

T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def spec(every: float = 60, **fields: object) -> ScheduleSpec:
    return ScheduleSpec(name="s", scope_id="sc", process_id="p", timing=Timing(every=every), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overlap", "active", "queued", "expected"),
    [
        (Overlap.SKIP, False, 0, Outcome.LAUNCHED),
        (Overlap.SKIP, True, 0, Outcome.SKIPPED),
        (Overlap.BUFFER_ONE, True, 0, Outcome.QUEUED),
        (Overlap.BUFFER_ONE, True, 1, Outcome.SKIPPED),
        (Overlap.BUFFER_ALL, True, 4, Outcome.QUEUED),
        (Overlap.BUFFER_ALL, True, 5, Outcome.SKIPPED),  # bufferLimit 5: full
        (Overlap.CANCEL_OTHER, True, 0, Outcome.QUEUED),
        (Overlap.TERMINATE_OTHER, True, 0, Outcome.QUEUED),
        (Overlap.BUFFER_ALL, False, 2, Outcome.QUEUED),  # ended, queue not yet drained: wait in line
    ],
)
def test_overlap_decisions(overlap: Overlap, active: bool, queued: int, expected: Outcome) -> None:
    decision = decide_overlap(overlap, active=active, queued=queued, buffer_limit=5)
    assert decision.outcome is expected
    assert decision.stop_active == (
        expected is Outcome.QUEUED and active and overlap in (Overlap.CANCEL_OTHER, Overlap.TERMINATE_OTHER)
    )
    assert decision.force == (decision.stop_active and overlap is Overlap.TERMINATE_OTHER)


def test_run_ids_are_derived_from_scope_schedule_and_time() -> None:
    assert run_id_for("a", "s", "20261205T1000") == run_id_for("a", "s", "20261205T1000")
    assert run_id_for("a", "s", "20261205T1000") != run_id_for("b", "s", "20261205T1000")
    assert run_id_for("a", "s", "20261205T1000").startswith("s:20261205T1000:")
    assert len(run_id_for("x" * 200, "y" * 190, "20261205T1000")) <= 200


def test_a_fire_on_time_acts_on_its_time_only() -> None:
    sp = spec().check()
    pending = first_next(sp, T0)
    assert pending is not None and pending.nominal == T0 + timedelta(minutes=1)
    plan = catch_up(sp, pending, pending.fire_at + timedelta(milliseconds=20), launched=0)
    assert [n.at for n in plan.due] == [pending.nominal]
    assert plan.missed == 0
    assert plan.following is not None and plan.following.nominal == T0 + timedelta(minutes=2)


def test_times_older_than_the_window_are_missed_and_the_rest_fire() -> None:
    sp = spec(catchup_window=150).check()
    pending = first_next(sp, T0)
    assert pending is not None
    now = T0 + timedelta(minutes=10, seconds=30)  # times 1..10 came; 9 and 10 are in the window
    plan = catch_up(sp, pending, now, launched=0)
    assert [n.at for n in plan.due] == [T0 + timedelta(minutes=9), T0 + timedelta(minutes=10)]
    assert plan.missed == 8  # minutes 1..8
    assert plan.following is not None and plan.following.nominal == T0 + timedelta(minutes=11)


def test_a_year_of_an_every_minute_schedule_is_caught_up_in_one_bounded_step() -> None:
    sp = spec(catchup_window=60).check()
    pending = first_next(sp, T0)
    assert pending is not None
    now = T0 + timedelta(days=365, seconds=30)
    plan = catch_up(sp, pending, now, launched=0)
    assert len(plan.due) <= 1
    assert plan.missed >= 10_000
    assert plan.following is not None and plan.following.nominal > now


def test_a_catch_up_in_the_window_is_bounded() -> None:
    sp = spec(every=1, catchup_window=3600).check()
    pending = first_next(sp, T0)
    assert pending is not None
    plan = catch_up(sp, pending, T0 + timedelta(seconds=1000), launched=0)
    assert len(plan.due) == MAX_CATCHUP_FIRES
    assert plan.following is not None  # the rest goes on at the next fire, at once
    assert plan.following.nominal == plan.due[-1].at + timedelta(seconds=1)


def test_max_runs_and_end_complete_the_schedule() -> None:
    sp = spec(max_runs=3).check()
    pending = first_next(sp, T0)
    assert pending is not None
    plan = catch_up(sp, pending, pending.fire_at, launched=2)
    assert len(plan.due) == 1 and plan.following is None
    ended = spec(end_at=T0 + timedelta(minutes=1, seconds=30)).check()
    first = first_next(ended, T0)
    assert first is not None
    assert catch_up(ended, first, first.fire_at, launched=0).following is None


def test_start_at_delays_the_first_time() -> None:
    sp = spec(start_at=T0 + timedelta(hours=1)).check()
    first = first_next(sp, T0)
    assert first is not None and first.nominal == T0 + timedelta(hours=1)


def test_preview_steps_through_fires() -> None:
    sp = spec().check()
    fire = first_next(sp, T0)
    times = []
    while fire is not None and len(times) < 3:
        times.append(fire.nominal)
        fire = next_fire_after(sp, fire)
    assert times == [T0 + timedelta(minutes=n) for n in (1, 2, 3)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"buffer_limit": 0}, "bufferLimit"),
        ({"buffer_limit": 101}, "bufferLimit"),
        ({"catchup_window": -1}, "catchupWindow"),
        ({"jitter": -1}, "jitter"),
        ({"max_runs": 0}, "maxRuns"),
        ({"overlap": "Sometimes"}, "overlap must be one of"),
        ({"start_at": T0, "end_at": T0}, "endAt"),
        ({"start_at": datetime(2026, 1, 1)}, "time zone"),
    ],
)
def test_bad_specs_get_one_line(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidDefinition, match=message) as error:
        spec(**fields).check()
    assert "\n" not in str(error.value)


def test_bad_names_and_backfills_get_one_line() -> None:
    with pytest.raises(InvalidDefinition, match="schedule name"):
        ScheduleSpec(name="a:b", scope_id="s", process_id="p", timing=Timing(every=60)).check()
    sp = spec().check()
    with pytest.raises(InvalidDefinition, match=f"more than {MAX_BACKFILL}"):
        backfill_times(sp, T0 - timedelta(days=3650), T0)
    with pytest.raises(InvalidDefinition, match="must come after"):
        backfill_times(sp, T0, T0 - timedelta(hours=1))
    assert len(backfill_times(sp, T0 - timedelta(hours=1), T0)) == 60


def test_a_record_round_trips_through_its_document() -> None:
    sp = spec(overlap=Overlap.BUFFER_ALL, jitter=5, args={"a": 1}, options={"retries": 2}).check()
    record = ScheduleRecord(spec=sp, next=first_next(sp, T0), created_at=T0)
    again = ScheduleRecord.from_doc(record.to_doc())
    assert again.spec == sp and again.next == record.next and again.phase.value == "Active"
    assert record.to_json()["overlap"] == "BufferAll"


@settings(max_examples=60, deadline=None)
@given(every=st.integers(1, 7200), gap=st.integers(0, 10**6), window=st.integers(0, 3600))
def test_catch_up_never_fires_a_time_twice_nor_loses_one(every: int, gap: int, window: int) -> None:
    """Whatever the gap, the times acted on and the times missed are the times that came, each
    once, and the next time is after them."""
    sp = spec(every=every, catchup_window=window).check()
    pending = first_next(sp, T0)
    assert pending is not None
    now = pending.nominal + timedelta(seconds=gap)
    plan = catch_up(sp, pending, now, launched=0)
    came = (now - pending.nominal).total_seconds() // every + 1  # times from pending to now
    assert len(plan.due) + plan.missed >= min(came, MAX_CATCHUP_FIRES)
    assert [n.at for n in plan.due] == sorted({n.at for n in plan.due})
    assert plan.following is not None and all(plan.following.nominal > n.at for n in plan.due)
    if len(plan.due) < MAX_CATCHUP_FIRES and plan.missed <= MISSED_COUNT_CAP:  # (counted, not capped)
        assert len(plan.due) + plan.missed == came
        assert plan.following.nominal > now


def test_every_time_of_a_daylight_saving_gap_fires_once_in_order() -> None:
    """New York, 2026-03-08: 02:00-02:59 does not exist. Each quarter in the gap fires once, at
    03:00 EDT (07:00Z), as does 03:00 itself; then 03:15."""
    sp = ScheduleSpec(name="q", scope_id="sc", process_id="p",
                      timing=Timing(cron="*/15 * * * *", timezone="America/New_York")).check()
    pending = first_next(sp, datetime(2026, 3, 8, 6, 50, tzinfo=UTC))  # 01:50 EST
    assert pending is not None and pending.label == "20260308T0200"
    plan = catch_up(sp, pending, datetime(2026, 3, 8, 7, 0, 1, tzinfo=UTC), launched=0)
    assert [n.label for n in plan.due] == ["20260308T0200", "20260308T0215", "20260308T0230",
                                           "20260308T0245", "20260308T0300"]
    assert {n.at for n in plan.due} == {datetime(2026, 3, 8, 7, 0, tzinfo=UTC)}
    assert plan.following is not None and plan.following.label == "20260308T0315"
    fire = first_next(sp, datetime(2026, 3, 8, 6, 50, tzinfo=UTC))
    labels = []
    while fire is not None and len(labels) < 6:  # a preview steps through them the same way
        labels.append(fire.label)
        fire = next_fire_after(sp, fire)
    assert labels == ["20260308T0200", "20260308T0215", "20260308T0230", "20260308T0245",
                      "20260308T0300", "20260308T0315"]
