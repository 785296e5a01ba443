"""What the CLI reads from a person (times, durations, a schedule's timing flags) and how it shows
delayed, queued and scheduled launches: plain functions, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from rich.console import Console
from shards.errors import InvalidArgs
from shards.records import ProcessRecord, ProcessStatus, QueuedLaunch, utcnow
from shards.schedule_times import Timing
from shards.schedules import Action, NextFire, Outcome, ScheduleRecord, ScheduleSpec
from shards.states import State
from shards_cli.output import fires_lines, schedule_details, schedules_table, timing_text, when
from shards_cli.times import launch_start, parse_time, stamp, timing

NOW = datetime(2026, 12, 5, 9, 50, tzinfo=UTC)


def test_a_time_needs_its_zone_and_is_read_in_utc() -> None:
    assert parse_time("2026-12-05T10:00:00Z", "--at") == datetime(2026, 12, 5, 10, tzinfo=UTC)
    assert parse_time("2026-12-05T11:00+01:00", "--at") == datetime(2026, 12, 5, 10, tzinfo=UTC)
    with pytest.raises(InvalidArgs, match=r"^--at '2026-12-05T10:00:00' has no time zone: add Z"):
        parse_time("2026-12-05T10:00:00", "--at")
    with pytest.raises(InvalidArgs, match=r"^--from 'noon' is not an ISO 8601 time"):
        parse_time("noon", "--from")


def test_a_launch_starts_at_a_time_after_a_delay_or_now() -> None:
    assert launch_start("2026-12-05T10:00:00Z", None, False, NOW) == datetime(2026, 12, 5, 10, tzinfo=UTC)
    assert launch_start(None, "10m", False, NOW) == NOW + timedelta(minutes=10)
    assert launch_start(None, None, True, NOW) is None
    with pytest.raises(InvalidArgs, match=r"^--in: invalid duration '10 parsecs'"):
        launch_start(None, "10 parsecs", False, NOW)


@pytest.mark.parametrize(("at", "delay", "queue", "says"), [
    ("2026-12-05T10:00:00Z", "1m", False, "--at and --in exclude each other"),
    ("2026-12-05T10:00:00Z", None, True, "--at and --queue exclude each other"),
    (None, "1m", True, "--in and --queue exclude each other"),
])
def test_a_launch_waits_for_one_thing(at: str | None, delay: str | None, queue: bool, says: str) -> None:
    with pytest.raises(InvalidArgs, match=says):
        launch_start(at, delay, queue, NOW)


def test_timing_flags_make_one_checked_timing() -> None:
    assert timing(None, None, "15m", "5m") == Timing(every=900, offset=300)
    weekdays = Timing(cron="0 9 * * 1-5", timezone="Europe/Paris")
    assert timing("0 9 * * 1-5", "Europe/Paris", None, None) == weekdays
    assert timing("@daily", None, None, None).timezone == "UTC"


@pytest.mark.parametrize(("cron", "tz", "every", "offset", "says"), [
    (None, None, None, None, "either --cron EXPR or --every DURATION"),
    ("@daily", None, "1h", None, "either --cron EXPR or --every DURATION"),
    ("@daily", None, None, "5m", "--offset goes with --every"),
    (None, "Europe/Paris", "1h", None, "--tz goes with --cron"),
    (None, None, "0", None, "interval must be at least 1s"),
    (None, None, "soon", None, "--every: invalid duration 'soon'"),
    ("0 99 * * *", None, None, None, "invalid cron expression '0 99 \\* \\* \\*'"),
    ("@daily", "Mars/Base", None, None, "unknown time zone 'Mars/Base'"),
])
def test_bad_timing_flags_are_one_line(cron: str | None, tz: str | None, every: str | None,
                                       offset: str | None, says: str) -> None:
    with pytest.raises(InvalidArgs, match=says) as raised:
        timing(cron, tz, every, offset)
    assert "\n" not in str(raised.value)


def test_stamps_are_utc_to_the_second() -> None:
    paris_winter = timezone(timedelta(hours=1))
    assert stamp(datetime(2026, 12, 5, 11, 0, 0, 123, tzinfo=paris_winter)) == "2026-12-05T10:00:00Z"
    assert stamp(None) == "-"


def test_the_time_column_says_when_a_delayed_launch_starts_and_how_many_wait() -> None:
    now = utcnow()
    delayed = ProcessRecord("farm", "p", "P", status=ProcessStatus(state=State.SCHEDULED,
                                                                   start_at=now + timedelta(minutes=9)))
    assert when(delayed, now) == "starts in 9m"
    queue = [QueuedLaunch(f"r{i}", {}, {}, now) for i in range(2)]
    since = now - timedelta(seconds=75)
    running = ProcessRecord("farm", "p", "P", queue=queue,
                            status=ProcessStatus(state=State.RUNNING, running_since=since))
    assert when(running, now) == "01:15 +2 queued"
    assert when(ProcessRecord("farm", "p", "P", queue=queue), now) == "+2 queued"


def _schedule(**fields: object) -> ScheduleRecord:
    spec = ScheduleSpec("nightly", "farm", "reindex", Timing(every=900, offset=300))
    return ScheduleRecord(spec, **fields)  # type: ignore[arg-type]


def test_timings_read_as_their_flags() -> None:
    assert timing_text(Timing(every=900, offset=300)) == "every 15m +5m"
    assert timing_text(Timing(every=3600)) == "every 1h"
    assert timing_text(Timing(cron="*/5 * * * *", timezone="Europe/Paris")) == "*/5 * * * *"


def test_the_schedules_table_has_a_row_per_schedule() -> None:
    now = utcnow()
    fire = NextFire("x", now + timedelta(minutes=9), now + timedelta(minutes=9))
    record = _schedule(next=fire, fired=7, skipped=2, missed=1,
                       actions=[Action("x", now, now - timedelta(seconds=30), "r", Outcome.LAUNCHED)])
    console = Console(width=200, record=True)
    console.print(schedules_table([record], {("farm", "reindex"): State.RUNNING}, now))
    header, row = console.export_text().splitlines()
    assert header.split() == ["SCOPE", "NAME", "PROCESS", "SCHEDULE", "TIMEZONE", "PAUSED", "LAST", "NEXT",
                              "ACTIVE", "FIRED", "SKIPPED", "MISSED"]
    assert row.split() == ["farm", "nightly", "reindex", "every", "15m", "+5m", "-", "no", "30s", "ago",
                           "in", "9m", "Running", "7", "2", "1"]


def test_a_schedules_details_show_its_state_and_last_actions() -> None:
    now = utcnow()
    record = _schedule(paused=True, note="maintenance [eu]",
                       actions=[Action("x", now, now, "nightly:x", Outcome.SKIPPED, "still running")])
    console = Console(width=200, record=True)
    console.print(schedule_details(record, None, now))
    shown = console.export_text()
    assert "Paused: maintenance [eu]" in shown and "reindex (not defined)" in shown
    assert "Skipped" in shown and "still running" in shown and "nightly:x" in shown


def test_a_preview_shows_wall_clock_times_and_jitter() -> None:
    nominal = datetime(2026, 12, 7, 8, tzinfo=UTC)
    fires = [NextFire("a", nominal, nominal + timedelta(seconds=90))]
    [line] = fires_lines(fires, "Europe/Paris", nominal - timedelta(hours=1))
    assert line == ("2026-12-07T08:01:30Z  in 61m (Mon 2026-12-07 09:00 Europe/Paris) "
                    "(nominal 2026-12-07T08:00:00Z)")
    assert fires_lines(fires[:0]) == []
