"""The timing rules of schedules (shards.schedule_times): cron names and intervals, labels, one-line
errors, durations, jitter and previews. Daylight saving: test_schedule_dst.py."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from shards.errors import InvalidDefinition
from shards.schedule_times import (
    MAX_EVERY,
    MIN_EVERY,
    Nominal,
    Timing,
    count_between,
    format_duration,
    interval_offset,
    jitter_for,
    next_after,
    nominals_after,
    parse_duration,
    preview,
    room_after,
    times_between,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def pairs(nominals: list[Nominal]) -> list[tuple[str, str]]:
    return [(n.label, n.at.strftime("%Y-%m-%dT%H:%M:%S")) for n in nominals]


# -- cron names and expressions ------------------------------------------------------------------

@pytest.mark.parametrize(("cron", "after", "expected"), [
    ("@hourly", "2026-01-01T10:15", [("20260101T1100", "2026-01-01T11:00:00"),
                                     ("20260101T1200", "2026-01-01T12:00:00")]),
    ("@daily", "2026-01-01T10:15", [("20260102T0000", "2026-01-02T00:00:00"),
                                    ("20260103T0000", "2026-01-03T00:00:00")]),
    ("@midnight", "2026-01-01T00:00", [("20260102T0000", "2026-01-02T00:00:00"),
                                       ("20260103T0000", "2026-01-03T00:00:00")]),
    # 2026-01-01 is a Thursday: the next Sundays are the 4th and the 11th
    ("@weekly", "2026-01-01T10:15", [("20260104T0000", "2026-01-04T00:00:00"),
                                     ("20260111T0000", "2026-01-11T00:00:00")]),
    ("@monthly", "2026-01-31T23:59", [("20260201T0000", "2026-02-01T00:00:00"),
                                      ("20260301T0000", "2026-03-01T00:00:00")]),
    ("@yearly", "2026-01-01T00:00", [("20270101T0000", "2027-01-01T00:00:00"),
                                     ("20280101T0000", "2028-01-01T00:00:00")]),
    ("@annually", "2025-12-31T23:59:59", [("20260101T0000", "2026-01-01T00:00:00"),
                                          ("20270101T0000", "2027-01-01T00:00:00")]),
    ("@DAILY", "2026-01-01T10:15", [("20260102T0000", "2026-01-02T00:00:00"),
                                    ("20260103T0000", "2026-01-03T00:00:00")]),
    ("*/20 9-10 * * MON-FRI", "2026-01-02T10:30", [("20260102T1040", "2026-01-02T10:40:00"),
                                                   ("20260105T0900", "2026-01-05T09:00:00")]),
    ("0 0 29 2 *", "2026-01-01T00:00", [("20280229T0000", "2028-02-29T00:00:00"),
                                        ("20320229T0000", "2032-02-29T00:00:00")]),
])
def test_cron_names_and_expressions_in_utc(cron: str, after: str, expected: list[tuple[str, str]]) -> None:
    assert pairs(preview(Timing(cron=cron).check(), utc(after), 2)) == expected


def test_a_cron_time_is_a_wall_clock_time_of_its_zone_and_its_label_too() -> None:
    timing = Timing(cron="@daily", timezone="Europe/Berlin")  # UTC+1 in winter
    assert pairs(preview(timing, utc("2026-01-01T10:00"), 1)) == [("20260102T0000", "2026-01-01T23:00:00")]
    tokyo = Timing(cron="30 9 * * *", timezone="Asia/Tokyo")  # UTC+9: the label is a day ahead
    assert pairs(preview(tokyo, utc("2026-01-01T12:00"), 1)) == [("20260102T0930", "2026-01-02T00:30:00")]


def test_next_after_is_strictly_after() -> None:
    timing = Timing(cron="@hourly")
    assert next_after(timing, utc("2026-01-01T11:00")) == Nominal("20260101T1200", utc("2026-01-01T12:00"))
    assert next_after(timing, utc("2026-01-01T10:59:59.999999")) == Nominal("20260101T1100",
                                                                             utc("2026-01-01T11:00"))


def test_an_aware_time_in_any_zone_is_the_same_instant_and_results_are_utc() -> None:
    timing = Timing(cron="@hourly")
    berlin = datetime(2026, 1, 1, 11, 15, tzinfo=timezone(timedelta(hours=1)))
    nominal = next_after(timing, berlin)
    assert nominal == Nominal("20260101T1100", utc("2026-01-01T11:00")) and nominal.at.tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        next_after(timing, datetime(2026, 1, 1))


def test_a_cron_expression_that_matches_once_in_decades_still_ends() -> None:
    # Feb 29 that is a Monday (the day fields OR together, except when one is *): every Monday
    # in February and every Feb 29; and an impossible day is refused up front.
    timing = Timing(cron="0 0 29 2 1").check()
    labels = [n.label for n in preview(timing, utc("2027-01-01T00:00"), 2)]
    assert labels == ["20270201T0000", "20270208T0000"]
    with pytest.raises(InvalidDefinition, match="never occurs"):
        Timing(cron="0 0 30 2 *").check()


# -- intervals -----------------------------------------------------------------------------------

def test_interval_times_are_epoch_plus_offset_plus_multiples() -> None:
    every15 = Timing(every=900)
    assert pairs(preview(every15, utc("2026-03-08T10:07:30"), 2)) == [
        ("20260308T101500Z", "2026-03-08T10:15:00"), ("20260308T103000Z", "2026-03-08T10:30:00")]
    assert next_after(every15, utc("2026-03-08T10:15")).at == utc("2026-03-08T10:30")  # strictly after
    offset = Timing(every=900, offset=315)  # :05:15, :20:15, :35:15, :50:15
    assert pairs(preview(offset, utc("2026-03-08T10:07:30"), 2)) == [
        ("20260308T102015Z", "2026-03-08T10:20:15"), ("20260308T103515Z", "2026-03-08T10:35:15")]


def test_intervals_ignore_daylight_saving() -> None:
    # Across New York's spring-forward: still one hour apart in UTC, whatever the time zone says.
    hourly = Timing(every=3600, timezone="America/New_York")
    ats = [n.at for n in times_between(hourly, utc("2026-03-08T05:30"), utc("2026-03-08T09:30"), 10)]
    assert ats == [utc(f"2026-03-08T{h:02}:00") for h in (6, 7, 8, 9)]


def test_interval_offset_puts_a_time_at_the_anchor() -> None:
    anchor = utc("2026-03-08T10:07:30.25")
    timing = Timing(every=900, offset=interval_offset(900, anchor)).check()
    assert timing.offset == 450
    assert next_after(timing, anchor - timedelta(seconds=1)).at == utc("2026-03-08T10:07:30")


@settings(max_examples=60, deadline=None)
@given(every=st.integers(1, 400_000), offset_fraction=st.floats(0, 1, exclude_max=True),
       start=st.integers(0, 4_000_000_000), start_micros=st.integers(0, 999_999),
       length=st.integers(0, 3_000_000))
def test_interval_times_and_counts_match_plain_arithmetic(every: int, offset_fraction: float, start: int,
                                                          start_micros: int, length: int) -> None:
    offset = int(every * offset_fraction)
    timing = Timing(every=every, offset=offset).check()
    begin = datetime.fromtimestamp(start, UTC) + timedelta(microseconds=start_micros)
    end = begin + timedelta(seconds=length)
    expected = [k * every + offset for k in range(start // every - 1, (start + length) // every + 2)
                if begin < datetime.fromtimestamp(k * every + offset, UTC) <= end]
    found = times_between(timing, begin, end, 100)
    assert [n.at for n in found] == [datetime.fromtimestamp(s, UTC) for s in expected[:100]]
    assert [n.label for n in found] == [n.at.strftime("%Y%m%dT%H%M%SZ") for n in found]
    assert count_between(timing, begin, end, 10**9) == len(expected)
    assert count_between(timing, begin, end, 3) == min(3, len(expected))


def test_a_year_of_a_one_second_interval_counts_at_once() -> None:
    timing = Timing(every=1)
    assert count_between(timing, utc("2026-01-01T00:00"), utc("2027-01-01T00:00"), 10**9) == 365 * 86400
    assert count_between(timing, utc("2026-01-01T00:00"), utc("2027-01-01T00:00"), 500) == 500


# -- counting ------------------------------------------------------------------------------------

def test_a_year_of_every_minute_counts_to_the_cap() -> None:
    every_minute = Timing(cron="* * * * *", timezone="Europe/Berlin")
    assert count_between(every_minute, utc("2026-01-01T00:00"), utc("2027-01-01T00:00"), 10_000) == 10_000


@pytest.mark.parametrize("cron", ["*/15 * * * *", "30 2 * * *", "0 * * * *", "0 9 * * MON-FRI"])
@pytest.mark.parametrize("cap", [0, 1, 5, 96, 10_000])
def test_count_between_is_the_length_of_times_between_up_to_the_cap(cron: str, cap: int) -> None:
    timing = Timing(cron=cron, timezone="America/New_York")
    start, end = utc("2026-03-06T00:00"), utc("2026-03-10T00:00")  # around the spring-forward
    assert count_between(timing, start, end, cap) == min(cap, len(times_between(timing, start, end, 10**6)))


def test_empty_windows_and_limits() -> None:
    timing = Timing(cron="@hourly")
    start = utc("2026-01-01T10:00")
    assert times_between(timing, start, start, 10) == []
    assert times_between(timing, start, start - timedelta(hours=5), 10) == []
    assert times_between(timing, start, start + timedelta(hours=5), 0) == []
    first_two = times_between(timing, start, start + timedelta(hours=5), 2)
    assert [n.label[-4:] for n in first_two] == ["1100", "1200"]
    assert count_between(timing, start, start - timedelta(hours=5), 10) == 0
    assert preview(timing, start, 0) == []


# -- checking ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("timing", "message"), [
    (Timing(cron="61 * * * *"), "invalid cron expression '61 * * * *': minute 61 is out of range 0-59"),
    (Timing(cron="0 24 * * *"), "invalid cron expression '0 24 * * *': hour 24 is out of range 0-23"),
    (Timing(cron="0 0 0 * *"), "invalid cron expression '0 0 0 * *': day-of-month 0 is out of range 1-31"),
    (Timing(cron="0 0 * 13 *"), "invalid cron expression '0 0 * 13 *': month 13 is out of range 1-12"),
    (Timing(cron="0 0 * * 8"), "invalid cron expression '0 0 * * 8': day-of-week 8 is out of range 0-7"),
    (Timing(cron="*/0 * * * *"), "invalid cron expression '*/0 * * * *': bad minute field '*/0' "
                                 "(allowed: 0-59"),
    (Timing(cron="0 0 * * FUNDAY"), "invalid cron expression '0 0 * * FUNDAY': bad day-of-week field "
                                    "'FUNDAY' (allowed: 0-7 or SUN-SAT"),
    (Timing(cron="0 0 31 2 *"), "invalid cron expression '0 0 31 2 *': day-of-month '31' never occurs in "
                                "month '2'"),
    (Timing(cron="* * * *"), "invalid cron expression '* * * *': expected 5 fields (minute hour "
                             "day-of-month month day-of-week), got 4"),
    (Timing(cron="0 * * * * *"), "expected 5 fields"),  # no seconds field: labels are per minute
    (Timing(cron="@reboot"), "invalid cron expression '@reboot': use five fields or one of @hourly, "),
    (Timing(cron="0 *\n* * *x"), "invalid cron expression '0 * * * *x'"),
    (Timing(cron="@daily", timezone="Mars/Base"), "unknown time zone 'Mars/Base'"),
    (Timing(cron="@daily", timezone="America"), "unknown time zone 'America'"),
    (Timing(cron="@daily", timezone=""), "unknown time zone ''"),
    (Timing(cron="@daily", timezone="../etc/passwd"), "unknown time zone '../etc/passwd'"),
    (Timing(every=3600, timezone="Europe/Berlin\n"), "unknown time zone 'Europe/Berlin\\n'"),
    (Timing(), "interval must be at least 1s, got 0s"),
    (Timing(every=0.5), "interval must be at least 1s, got 0.5s"),
    (Timing(every=-60), "interval must be at least 1s, got -1m"),
    (Timing(every=math.nan), "interval must be at least 1s, got nan"),
    (Timing(every=MAX_EVERY + 1), "interval must be at most 366d, got 366d1s"),
    (Timing(every=90.5), "interval must be whole seconds, got 1m30.5s"),
    (Timing(every=900, offset=900), "interval offset must be at least 0s and less than the interval (15m), "
                                    "got 15m"),
    (Timing(every=900, offset=-1), "got -1s"),
    (Timing(every=900, offset=0.5), "interval offset must be whole seconds, got 0.5s"),
    (Timing(cron="@daily", every=60), "give a cron expression or an interval, not both"),
    (Timing(cron="@daily", offset=60), "an offset applies only to an interval"),
])
def test_a_bad_timing_is_refused_in_one_line(timing: Timing, message: str) -> None:
    with pytest.raises(InvalidDefinition) as error:
        timing.check()
    assert message in str(error.value) and "\n" not in str(error.value)


def test_every_function_refuses_a_bad_timing() -> None:
    bad = Timing(cron="61 * * * *")
    now = utc("2026-01-01T00:00")
    for call in (lambda: next_after(bad, now), lambda: times_between(bad, now, now, 1),
                 lambda: count_between(bad, now, now + timedelta(days=1), 1), lambda: preview(bad, now, 1)):
        with pytest.raises(InvalidDefinition, match="minute 61"):
            call()


@pytest.mark.parametrize("timing", [
    Timing(cron="*/5 9-17 * * MON-FRI", timezone="Europe/Berlin"), Timing(cron="@daily"),
    Timing(every=MIN_EVERY), Timing(every=MAX_EVERY, offset=MAX_EVERY - 1), Timing(every=900, offset=315),
])
def test_good_timings_check_and_round_trip_through_their_document(timing: Timing) -> None:
    assert timing.check() is timing
    doc = timing.to_doc()
    assert set(doc) == {"cron", "timeZone", "everySeconds", "offsetSeconds"}
    assert Timing.from_doc(doc) == timing


def test_a_missing_document_is_the_defaults() -> None:
    assert Timing.from_doc(None) == Timing.from_doc({}) == Timing()
    assert Timing.from_doc({"everySeconds": 60}) == Timing(every=60.0)


def test_a_bad_label_to_continue_from_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not a cron schedule's label"):
        next_after(Timing(cron="@hourly"), utc("2026-01-01T00:00"), "yesterday")


# -- durations -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [
    ("15m", 900), ("90s", 90), ("1h30m", 5400), ("2d", 172800), ("1d12h", 129600), ("1h 30m", 5400),
    (" 45S ", 45), ("90", 90), ("1.5", 1.5), ("0", 0), ("0s", 0), (90, 90), (2.5, 2.5), ("1d1h1m1s", 90061),
])
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize("text", ["", "  ", "15x", "500ms", "m", "-5", -5, "1.5h", "1h2h", "30m1h", "h1",
                                  math.nan, math.inf, True, None, "1\n2"])
def test_a_bad_duration_is_refused_in_one_line(text: object) -> None:
    with pytest.raises(InvalidDefinition, match=r"^invalid duration .*: use seconds or whole units") as error:
        parse_duration(text)  # type: ignore[arg-type]
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("seconds", "text"), [
    (900, "15m"), (5400, "1h30m"), (0, "0s"), (1, "1s"), (86400, "1d"), (90061, "1d1h1m1s"),
    (MAX_EVERY, "366d"), (90.5, "1m30.5s"), (0.25, "0.25s"), (-60, "-1m"), (3600.0, "1h"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(0, 10**9))
def test_format_duration_reads_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


# -- jitter --------------------------------------------------------------------------------------

def test_jitter_is_the_same_for_the_same_inputs_on_any_worker() -> None:
    first = jitter_for("tenant/nightly", "20260308T0230", 60, 3600)
    assert first == jitter_for("tenant/nightly", "20260308T0230", 60, 3600)
    # blake2b of key and label, pinned: a change would move every schedule's fires
    assert first == pytest.approx(22.732500, abs=1e-6)
    others = {jitter_for("tenant/nightly", f"2026030{d}T0230", 60, 3600) for d in range(1, 10)}
    assert len(others) == 9  # each nominal time its own delay
    assert jitter_for("tenant/other", "20260308T0230", 60, 3600) != first


@given(key=st.text(max_size=30), label=st.text(max_size=20),
       jitter=st.floats(0, 10**6, allow_nan=False), room=st.floats(0, 10**6, allow_nan=False))
@example(key="", label="", jitter=5e-324, room=1.0)  # the product rounds up to the bound
def test_jitter_stays_within_its_bound_and_the_room(key: str, label: str, jitter: float, room: float) -> None:
    delay = jitter_for(key, label, jitter, room)
    assert delay >= 0
    if jitter == 0 or room == 0:
        assert delay == 0
    elif jitter < room:
        assert delay < jitter
    else:
        assert delay < 0.9 * room + 1e-9


def test_jitter_spreads_over_its_range_and_degenerate_bounds_are_zero() -> None:
    delays = [jitter_for("k", str(n), 100, math.inf) for n in range(2000)]
    assert all(0 <= d < 100 for d in delays)
    assert 45 < sum(delays) / len(delays) < 55
    assert min(delays) < 1 and max(delays) > 99
    assert jitter_for("k", "l", -5, 10) == jitter_for("k", "l", 5, 0) == 0
    assert jitter_for("k", "l", math.nan, 10) == jitter_for("k", "l", 5, math.nan) == 0


def test_room_after_is_the_time_to_the_next_nominal_time() -> None:
    hourly = Timing(cron="@hourly")
    nominal = next_after(hourly, utc("2026-01-01T00:30"))
    assert nominal is not None and room_after(hourly, nominal) == 3600
    # Two times in New York's spring-forward gap fire together: no room between them.
    gap = Timing(cron="*/30 * * * *", timezone="America/New_York")
    at_gap = next_after(gap, utc("2026-03-08T06:45"))
    assert at_gap == Nominal("20260308T0200", utc("2026-03-08T07:00"))
    assert room_after(gap, at_gap) == 0


def test_nominals_after_is_lazy_and_endless_for_an_interval() -> None:
    times = nominals_after(Timing(every=1), utc("2026-01-01T00:00"))
    assert [next(times).label for _ in range(3)] == [f"20260101T00000{s}Z" for s in (1, 2, 3)]
