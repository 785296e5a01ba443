from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from shards.records import (
    DEFAULT_POOL,
    SCHEMA_FIELD,
    SCHEMA_VERSION,
    ProcessRecord,
    ProcessStatus,
    Progress,
    from_ms,
    to_ms,
)
from shards.requests import ANY_POOL, Request
from shards.states import State

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
text = st.text(max_size=40)


@given(moments)
def test_times_round_trip_through_epoch_milliseconds(moment: datetime) -> None:
    assert from_ms(to_ms(moment)) == moment
    assert to_ms(None) is None and from_ms(None) is None


@given(
    state=st.sampled_from(list(State)),
    error=text,
    since=st.none() | moments,
    duration=st.none() | st.floats(min_value=0, max_value=1e6),
    message=text,
    rate=st.floats(min_value=0, max_value=1),
    special=st.booleans(),
    level=st.integers(min_value=1, max_value=4),
)
def test_process_records_round_trip_through_documents(
    state: State, error: str, since: datetime | None, duration: float | None,
    message: str, rate: float, special: bool, level: int,
) -> None:
    record = ProcessRecord(
        scope_id="s", process_id="p", name="P", warning="w", detail_level=level, special=special,
        status=ProcessStatus(state=state, error=error, running_since=since, duration=duration,
                             done_at=since and since + timedelta(seconds=1)),
        progress=Progress(message, rate), run_id="r", worker_id="w1",
    )
    assert ProcessRecord.from_doc(record.to_doc()) == record


def test_json_form_has_what_scripts_read() -> None:
    record = ProcessRecord(scope_id="s", process_id="p", name="P")
    as_json = record.to_json()
    assert as_json["state"] == "Idle"
    assert as_json["progress"] == {"message": "", "rate": 0.0}
    assert as_json["error"] == ""


def test_a_stored_boolean_read_back_as_an_integer_is_still_a_boolean() -> None:
    doc = ProcessRecord(scope_id="s", process_id="p", name="P").to_doc() | {"special": 1}
    assert ProcessRecord.from_doc(doc).special is True


def test_requests_round_trip() -> None:
    request = Request(kind="launch", scope_id="s", process_id="p", run_id="r", args={"n": 1})
    back = Request.from_doc(request.to_doc())
    assert back.created_at == from_ms(to_ms(request.created_at))
    assert (back.kind, back.args, back.target_worker, back.state) == ("launch", {"n": 1}, "", "Pending")


@given(st.sampled_from([State.DONE, State.STOPPED, State.FAILED]), moments)
def test_an_ended_status_has_exactly_its_own_end_time(state: State, since: datetime) -> None:
    at = since + timedelta(seconds=90, milliseconds=250)
    status = ProcessStatus.ended(state, running_since=since, at=at)
    ends = {State.DONE: status.done_at, State.STOPPED: status.stopped_at, State.FAILED: status.failed_at}
    assert ends.pop(state) == at == status.ended_at
    assert set(ends.values()) == {None}
    assert status.duration == 90.25


def test_a_run_that_never_started_has_no_duration() -> None:
    assert ProcessStatus.ended(State.STOPPED).duration is None


def test_documents_say_their_schema_version_and_old_ones_read_with_defaults() -> None:
    launch = Request(kind="launch", scope_id="s", process_id="p", run_id="r", pool="heavy")
    assert launch.to_doc()[SCHEMA_FIELD] == SCHEMA_VERSION
    assert ProcessRecord(scope_id="s", process_id="p", name="P").to_doc()[SCHEMA_FIELD] == SCHEMA_VERSION
    # As a release before pools and schema versions wrote them: a launch is the default pool's.
    old = {"kind": "launch", "scopeId": "s", "processId": "p", "runId": "r", "createdAt": 0}
    assert Request.from_doc(old).pool == DEFAULT_POOL
    assert Request.from_doc(old | {"kind": "stop", "targetWorker": "w"}).pool == ANY_POOL
    record = ProcessRecord.from_doc({"scopeId": "s", "processId": "p"})
    assert (record.pool, record.name, record.state) == (DEFAULT_POOL, "p", State.IDLE)
