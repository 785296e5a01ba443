"""Who owns an active record, how an ownerless one ends, and how silence is measured."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from shards.ownership import NEVER_QUEUED, SilenceWatch, is_owned, orphan_verdict
from shards.records import ProcessRecord, ProcessStatus
from shards.states import State


def record(state: State, worker_id: str = "", run_id: str = "r1") -> ProcessRecord:
    return ProcessRecord(scope_id="s", process_id="p", name="P", status=ProcessStatus(state=state),
                         run_id=run_id, worker_id=worker_id)


def test_a_run_is_owned_by_its_live_worker_and_a_launch_by_its_request() -> None:
    running = record(State.RUNNING, worker_id="w1")
    assert is_owned(running, live_workers={"w1"}, queued_runs=set())
    assert not is_owned(running, live_workers={"w2"}, queued_runs={"r1"})  # a request is not enough
    scheduled = record(State.SCHEDULED)
    assert is_owned(scheduled, live_workers={"w1"}, queued_runs={"r1"})
    assert not is_owned(scheduled, live_workers={"w1"}, queued_runs={"r2"})


def test_ownerless_records_end_as_people_expect() -> None:
    never_queued = orphan_verdict(record(State.SCHEDULED))
    assert (never_queued.state, never_queued.error) == (State.FAILED, NEVER_QUEUED)
    stopped = orphan_verdict(record(State.STOP_REQUESTED))
    assert (stopped.state, stopped.error) == (State.STOPPED, "")
    lost = orphan_verdict(record(State.STOPPING, worker_id="w1"), "worker w1 was lost")
    assert (lost.state, lost.error) == (State.FAILED, "worker w1 was lost")
    assert orphan_verdict(record(State.RUNNING, worker_id="w9")).error == "worker w9 is gone"


def test_silence_counts_from_the_first_sight_of_a_value() -> None:
    watch = SilenceWatch()
    assert watch.unchanged_for("w1", 5, now=100.0) == 0.0
    assert watch.unchanged_for("w1", 5, now=103.5) == 3.5
    assert watch.unchanged_for("w1", 6, now=104.0) == 0.0  # it beat: counting starts again
    assert watch.unchanged_for("w1", 6, now=110.0) == 6.0
    watch.forget()  # this observer was cut off: what it saw proves nothing
    assert watch.unchanged_for("w1", 6, now=111.0) == 0.0
    watch.keep_only([])
    assert watch.unchanged_for("w1", 6, now=120.0) == 0.0


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 10)), max_size=30))
def test_silence_is_the_time_since_the_counter_last_moved(looks: list[tuple[bool, float]]) -> None:
    """Whatever the pattern of looks, the silence reported is exactly the time since the look
    that first saw the current counter value: beats between looks are never missed."""
    watch = SilenceWatch()
    now, beat, moved_at = 0.0, 0, 0.0
    watch.unchanged_for("w", beat, now)
    for moved, gap in looks:
        now += gap
        if moved:
            beat, moved_at = beat + 1, now
        assert watch.unchanged_for("w", beat, now) == now - moved_at
