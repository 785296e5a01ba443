"""The operator's plain ShardSchedule rules: resource -> ScheduleSpec, record -> status, the
Events a status move announces; and ShardProcess's delayed and queued launches. No cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from shards.errors import InvalidArgs
from shards.records import ProcessRecord, ProcessStatus, QueuedLaunch, utcnow
from shards.schedule_times import Timing
from shards.schedules import Action, NextFire, Outcome, Overlap, ScheduleRecord, ScheduleSpec
from shards.states import State
from shards_operator.resource import Resource, queue_place, start_time
from shards_operator.schedules import (
    action_status,
    changed,
    record_events,
    schedule_name,
    schedule_spec,
    schedule_status,
)
from shards_operator.status import RunView, run_status

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = datetime(2026, 1, 2, 3, 4, 9, tzinfo=UTC)


def shs(spec: dict[str, Any], *, namespace: str = "farm", name: str = "nightly",
        status: dict[str, Any] | None = None) -> Resource:
    return Resource(namespace=namespace, name=name, uid="u-1", generation=3,
                    spec={"process": "count-sheep", **spec}, status=status or {})


# -- resource -> ScheduleSpec -------------------------------------------------------------------


def test_an_interval_schedule_maps_field_by_field() -> None:
    spec = schedule_spec(shs({
        "every": "15m", "offset": "90s", "args": {"n": 3}, "timeoutSeconds": 60, "retries": 2,
        "retryBackoffSeconds": 0.5, "overlap": "BufferAll", "bufferLimit": 4, "catchupWindow": "5m",
        "jitter": "10s", "pauseOnFailure": True, "startAt": "2030-01-01T00:00:00Z",
        "endAt": "2030-02-01T00:00:00+01:00", "maxRuns": 7, "confirm": True,
    }))
    assert (spec.name, spec.scope_id, spec.process_id) == ("nightly", "farm", "count-sheep")
    assert spec.timing == Timing(every=900.0, offset=90.0)
    assert spec.args == {"n": 3}
    assert spec.options == {"timeout": 60.0, "retries": 2, "retryBackoff": 0.5}
    assert (spec.overlap, spec.buffer_limit) == (Overlap.BUFFER_ALL, 4)
    assert (spec.catchup_window, spec.jitter, spec.pause_on_failure) == (300.0, 10.0, True)
    assert spec.start_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert spec.end_at == datetime(2030, 1, 31, 23, tzinfo=UTC)
    assert (spec.max_runs, spec.confirm) == (7, True)


def test_left_out_fields_take_the_cores_defaults() -> None:
    spec = schedule_spec(shs({"every": "2s"}))
    assert spec == ScheduleSpec(name="nightly", scope_id="farm", process_id="count-sheep",
                                timing=Timing(every=2.0))
    # The same resource maps to the same spec: re-applying it changes nothing in the store.
    assert schedule_spec(shs({"every": "2s"})) == spec


def test_a_cron_schedule_keeps_its_time_zone() -> None:
    spec = schedule_spec(shs({"schedule": "30 2 * * *", "timeZone": "Europe/Amsterdam"}))
    assert spec.timing == Timing(cron="30 2 * * *", timezone="Europe/Amsterdam")
    assert schedule_spec(shs({"schedule": "@hourly"})).timing == Timing(cron="@hourly", timezone="UTC")


@pytest.mark.parametrize(("fields", "message"), [
    ({"schedule": "0 3 * * *", "timeZone": "Mars/Olympus_Mons"}, "time zone"),
    ({"schedule": "61 * * * *"}, "minute"),
    ({}, "exactly one of spec.schedule"),
    ({"every": "0s"}, "interval"),
    ({"every": "1m", "catchupWindow": "soon"}, "spec.catchupWindow"),
    ({"every": "1m", "startAt": "tomorrow"}, "spec.startAt must be an RFC 3339 time"),
    ({"every": "1m", "startAt": "2030-01-02T00:00:00Z", "endAt": "2030-01-01T00:00:00Z"}, "must come after"),
    ({"every": "1m", "args": {"$where": 1}}, "$"),
    ({"every": "1m", "retries": 1000}, "retries"),
])
def test_what_the_api_server_cannot_check_is_refused_in_one_line(fields: dict[str, Any],
                                                                 message: str) -> None:
    with pytest.raises(InvalidArgs) as raised:
        schedule_spec(shs(fields))
    text = str(raised.value)
    assert message in text and "\n" not in text


def test_a_granted_scope_gets_a_name_no_other_namespace_can_write() -> None:
    own = shs({"every": "1m"})
    assert (own.scope, schedule_name(own)) == ("farm", "nightly")
    shared = shs({"every": "1m", "scope": "barn"})
    assert (shared.scope, schedule_name(shared)) == ("barn", "farm_nightly")
    other = shs({"every": "1m", "scope": "barn"}, namespace="zoo")
    assert schedule_name(other) == "zoo_nightly"
    assert schedule_spec(shared).name == "farm_nightly"


# -- record -> status ---------------------------------------------------------------------------


def record(**fields: Any) -> ScheduleRecord:
    spec = ScheduleSpec(name="nightly", scope_id="farm", process_id="count-sheep", timing=Timing(every=60.0))
    return ScheduleRecord(spec=spec, **fields)


def test_a_records_status_reads_like_the_schedule_table() -> None:
    actions = [Action(f"L{n}", T0 + timedelta(minutes=n), T1 + timedelta(minutes=n), f"nightly:L{n}",
                      Outcome.LAUNCHED) for n in range(12)]
    actions.append(Action("", T0, T1 + timedelta(minutes=20), "", Outcome.MISSED, "3 nominal times missed"))
    status = schedule_status(record(next=NextFire("N", T1, T1 + timedelta(seconds=2)), fired=12, launched=12,
                                    missed=3, actions=actions), "Running")
    assert status["phase"] == "Active" and status["paused"] is False
    assert (status["timing"], status["timeZone"], status["active"]) == ("every 1m", "UTC", "Running")
    assert status["nextFireTime"] == "2026-01-02T03:04:11Z"
    assert status["lastFireTime"] == "2026-01-02T03:15:09Z"  # the last launch, not the missed times
    assert (status["fired"], status["launched"], status["skipped"], status["missed"]) == (12, 12, 0, 3)
    assert len(status["lastActions"]) == 10
    assert status["lastActions"][-1] == {"runId": "", "outcome": "Missed", "detail": "3 nominal times missed",
                                         "nominalTime": "2026-01-02T03:04:05Z",
                                         "actualTime": "2026-01-02T03:24:09Z"}


def test_a_paused_or_completed_schedule_shows_no_next_time() -> None:
    paused = schedule_status(record(paused=True, note="holiday", next=NextFire("N", T1, T1)))
    assert (paused["phase"], paused["note"], paused["nextFireTime"]) == ("Paused", "holiday", None)
    done = schedule_status(record())
    assert (done["phase"], done["nextFireTime"], done["lastFireTime"]) == ("Completed", None, None)


def test_a_trigger_has_no_nominal_time_and_no_null_in_the_list() -> None:
    shown = action_status(Action("trigger-x", None, T1, "nightly:trigger-x", Outcome.QUEUED, "behind run r"))
    assert shown == {"runId": "nightly:trigger-x", "outcome": "Queued", "detail": "behind run r",
                     "actualTime": "2026-01-02T03:04:09Z"}


def test_only_what_moved_is_patched() -> None:
    wanted = schedule_status(record(next=NextFire("N", T1, T1), fired=1, launched=1))
    assert changed(wanted, wanted) == {}
    current = {**wanted, "launched": 0, "lastFireTime": "2026-01-01T00:00:00Z"}
    assert changed(current, wanted) == {"launched": 1, "lastFireTime": None}  # null drops a field there
    assert "lastFireTime" not in changed({k: v for k, v in wanted.items() if k != "lastFireTime"}, wanted)


def test_events_announce_missed_times_refusals_and_a_pause_on_failure_once() -> None:
    missed = Action("", T0, T1, "", Outcome.MISSED, "5 nominal times were missed")
    refused = Action("L1", T0, T1, "nightly:L1", Outcome.FAILED, "process needs confirmation")
    launched = Action("L2", T1, T1, "nightly:L2", Outcome.LAUNCHED)
    spec = ScheduleSpec(name="nightly", scope_id="farm", process_id="count-sheep", timing=Timing(every=60.0),
                        pause_on_failure=True)
    paused = ScheduleRecord(spec=spec, generation=4, paused=True, note="paused: run r failed (boom)",
                            actions=[missed, refused, launched])
    events = record_events(shs({"every": "1m"}), paused)
    assert [(kind, reason) for kind, reason, _, _ in events] == [
        ("Warning", "Missed"), ("Warning", "LaunchFailed"), ("Warning", "PausedOnFailure")]
    assert events[2][2] == "paused: run r failed (boom)"
    assert len({key for *_, key in events}) == 3
    # Once the status shows them, nothing is announced again.
    shown = shs({"every": "1m"}, status=schedule_status(paused))
    assert record_events(shown, paused) == []
    # A pause the spec asked for is no failure.
    asked = record_events(shs({"every": "1m", "paused": True}), paused)
    assert [reason for _, reason, _, _ in asked] == ["Missed", "LaunchFailed"]


# -- ShardProcess: delayed and queued launches --------------------------------------------------


def test_start_at_is_a_checked_time_and_not_with_queue() -> None:
    later = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    assert start_time({"startAt": later.isoformat().replace("+00:00", "Z")}) == later
    assert start_time({}) is None
    with pytest.raises(InvalidArgs, match="RFC 3339"):
        start_time({"startAt": "at noon"})
    with pytest.raises(InvalidArgs, match="not both"):
        start_time({"startAt": later.isoformat(), "queue": True})
    with pytest.raises(InvalidArgs, match=r"spec\.startAt"):
        start_time({"startAt": (utcnow() + timedelta(days=400)).isoformat()})


def test_a_delayed_launch_and_the_queue_behind_a_run_show_in_status() -> None:
    waiting = ProcessRecord(scope_id="farm", process_id="count-sheep", name="Count sheep", run_id="k8s-u-1",
                            status=ProcessStatus(state=State.SCHEDULED, start_at=T1))
    status = run_status(RunView.of_record(waiting))
    assert (status["state"], status["startAt"], status["queued"]) == ("Scheduled", "2026-01-02T03:04:09Z", 0)
    running = ProcessRecord(scope_id="farm", process_id="count-sheep", name="Count sheep", run_id="r",
                            status=ProcessStatus(state=State.RUNNING, start_at=T1),
                            queue=[QueuedLaunch("k8s-a-1", {}, {}, T0), QueuedLaunch("k8s-b-1", {}, {}, T1)])
    status = run_status(RunView.of_record(running))
    assert (status["startAt"], status["queued"]) == (None, 2)  # started: the start time is dropped
    assert queue_place(running, "k8s-b-1") == 2
    assert queue_place(running, "k8s-c-1") is None
