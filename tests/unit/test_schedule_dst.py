"""Daylight saving in schedules (shards.schedule_times): each nominal wall-clock time fires once; a
time in the spring-forward gap fires at the gap's end (the transition instant), a time that occurs
twice in the autumn at its first occurrence. Examples by hand, then property tests against an
oracle that walks UTC minute by minute and shares no code with the module."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shards.schedule_times import (
    Nominal,
    Timing,
    count_between,
    next_after,
    preview,
    times_between,
)

MINUTE = timedelta(minutes=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(timing: Timing, start: str, end: str) -> list[tuple[str, str]]:
    """(label, UTC hh:mm) of the nominal times in (start, end]."""
    return [(n.label, n.at.strftime("%H:%M")) for n in times_between(timing, utc(start), utc(end), 100)]


# (zone, cron, window start and end in UTC, expected (label, UTC time))
EXAMPLES = [
    # New York, spring 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00Z (gap 02:00-03:00)
    ("America/New_York", "30 2 * * *", "2026-03-07T12:00", "2026-03-08T12:00", [("20260308T0230", "07:00")]),
    ("America/New_York", "*/15 * * * *", "2026-03-08T06:30", "2026-03-08T07:30", [
        ("20260308T0145", "06:45"), ("20260308T0200", "07:00"), ("20260308T0215", "07:00"),
        ("20260308T0230", "07:00"), ("20260308T0245", "07:00"), ("20260308T0300", "07:00"),
        ("20260308T0315", "07:15"), ("20260308T0330", "07:30")]),
    ("America/New_York", "0 * * * *", "2026-03-08T05:30", "2026-03-08T08:30", [
        ("20260308T0100", "06:00"), ("20260308T0200", "07:00"), ("20260308T0300", "07:00"),
        ("20260308T0400", "08:00")]),
    # New York, autumn 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00Z (01:00-02:00 twice)
    ("America/New_York", "30 1 * * *", "2026-10-31T12:00", "2026-11-01T12:00", [("20261101T0130", "05:30")]),
    ("America/New_York", "30 2 * * *", "2026-10-31T12:00", "2026-11-01T12:00", [("20261101T0230", "07:30")]),
    ("America/New_York", "*/15 * * * *", "2026-11-01T05:30", "2026-11-01T07:15", [
        ("20261101T0145", "05:45"), ("20261101T0200", "07:00"), ("20261101T0215", "07:15")]),
    ("America/New_York", "0 * * * *", "2026-11-01T04:30", "2026-11-01T07:30", [
        ("20261101T0100", "05:00"), ("20261101T0200", "07:00")]),
    # Berlin, spring 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00Z
    ("Europe/Berlin", "30 2 * * *", "2026-03-28T12:00", "2026-03-29T12:00", [("20260329T0230", "01:00")]),
    ("Europe/Berlin", "*/15 * * * *", "2026-03-29T00:30", "2026-03-29T01:30", [
        ("20260329T0145", "00:45"), ("20260329T0200", "01:00"), ("20260329T0215", "01:00"),
        ("20260329T0230", "01:00"), ("20260329T0245", "01:00"), ("20260329T0300", "01:00"),
        ("20260329T0315", "01:15"), ("20260329T0330", "01:30")]),
    ("Europe/Berlin", "0 * * * *", "2026-03-28T23:30", "2026-03-29T02:30", [
        ("20260329T0100", "00:00"), ("20260329T0200", "01:00"), ("20260329T0300", "01:00"),
        ("20260329T0400", "02:00")]),
    # Berlin, autumn 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00Z (02:00-03:00 twice)
    ("Europe/Berlin", "30 2 * * *", "2026-10-24T12:00", "2026-10-25T12:00", [("20261025T0230", "00:30")]),
    ("Europe/Berlin", "*/15 * * * *", "2026-10-25T00:30", "2026-10-25T02:15", [
        ("20261025T0245", "00:45"), ("20261025T0300", "02:00"), ("20261025T0315", "02:15")]),
    ("Europe/Berlin", "0 * * * *", "2026-10-24T23:30", "2026-10-25T02:30", [
        ("20261025T0200", "00:00"), ("20261025T0300", "02:00")]),
    # Lord Howe moves 30 minutes. Spring 2026-10-04: 02:00 (+10:30) -> 02:30 (+11) at 15:30Z on the
    # 3rd: 02:30 itself exists (it is the transition), 02:00 and 02:15 fire with it.
    ("Australia/Lord_Howe", "30 2 * * *", "2026-10-03T00:00", "2026-10-04T00:00",
     [("20261004T0230", "15:30")]),
    ("Australia/Lord_Howe", "*/15 * * * *", "2026-10-03T15:00", "2026-10-03T16:00", [
        ("20261004T0145", "15:15"), ("20261004T0200", "15:30"), ("20261004T0215", "15:30"),
        ("20261004T0230", "15:30"), ("20261004T0245", "15:45"), ("20261004T0300", "16:00")]),
    ("Australia/Lord_Howe", "0 * * * *", "2026-10-03T14:00", "2026-10-03T17:00", [
        ("20261004T0100", "14:30"), ("20261004T0200", "15:30"), ("20261004T0300", "16:00"),
        ("20261004T0400", "17:00")]),
    # Lord Howe, autumn 2026-04-05: 02:00 (+11) -> 01:30 (+10:30) at 15:00Z on the 4th (01:30-02:00 twice)
    ("Australia/Lord_Howe", "30 1 * * *", "2026-04-04T00:00", "2026-04-05T00:00",
     [("20260405T0130", "14:30")]),
    ("Australia/Lord_Howe", "30 2 * * *", "2026-04-04T00:00", "2026-04-05T00:00",
     [("20260405T0230", "16:00")]),
    ("Australia/Lord_Howe", "*/15 * * * *", "2026-04-04T14:00", "2026-04-04T16:00", [
        ("20260405T0115", "14:15"), ("20260405T0130", "14:30"), ("20260405T0145", "14:45"),
        ("20260405T0200", "15:30"), ("20260405T0215", "15:45"), ("20260405T0230", "16:00")]),
    ("Australia/Lord_Howe", "0 * * * *", "2026-04-04T13:30", "2026-04-04T16:30", [
        ("20260405T0100", "14:00"), ("20260405T0200", "15:30"), ("20260405T0300", "16:30")]),
    # Sydney (southern: spring in October). 2026-10-04: 02:00 AEST -> 03:00 AEDT at 16:00Z on the 3rd
    ("Australia/Sydney", "30 2 * * *", "2026-10-03T00:00", "2026-10-04T00:00", [("20261004T0230", "16:00")]),
    ("Australia/Sydney", "*/15 * * * *", "2026-10-03T15:30", "2026-10-03T16:30", [
        ("20261004T0145", "15:45"), ("20261004T0200", "16:00"), ("20261004T0215", "16:00"),
        ("20261004T0230", "16:00"), ("20261004T0245", "16:00"), ("20261004T0300", "16:00"),
        ("20261004T0315", "16:15"), ("20261004T0330", "16:30")]),
    ("Australia/Sydney", "0 * * * *", "2026-10-03T14:30", "2026-10-03T17:30", [
        ("20261004T0100", "15:00"), ("20261004T0200", "16:00"), ("20261004T0300", "16:00"),
        ("20261004T0400", "17:00")]),
    # Sydney, autumn 2026-04-05: 03:00 AEDT -> 02:00 AEST at 16:00Z on the 4th (02:00-03:00 twice)
    ("Australia/Sydney", "30 2 * * *", "2026-04-04T00:00", "2026-04-05T12:00", [("20260405T0230", "15:30")]),
    ("Australia/Sydney", "*/15 * * * *", "2026-04-04T15:30", "2026-04-04T17:15", [
        ("20260405T0245", "15:45"), ("20260405T0300", "17:00"), ("20260405T0315", "17:15")]),
    ("Australia/Sydney", "0 * * * *", "2026-04-04T14:30", "2026-04-04T17:30", [
        ("20260405T0200", "15:00"), ("20260405T0300", "17:00")]),
]


@pytest.mark.parametrize(("zone", "cron", "start", "end", "expected"), EXAMPLES)
def test_daylight_saving_examples(zone: str, cron: str, start: str, end: str,
                                  expected: list[tuple[str, str]]) -> None:
    timing = Timing(cron=cron, timezone=zone).check()
    assert fires(timing, start, end) == expected
    assert count_between(timing, utc(start), utc(end), 1000) == len(expected)


def test_chaining_next_after_with_labels_fires_each_gap_time_once() -> None:
    """A worker that continues from the nominal time it just fired (its instant and label) gets
    the other times of the gap next, though they share the instant; without the label they are
    past (strictly after the instant means after all of them)."""
    timing = Timing(cron="*/15 * * * *", timezone="America/New_York")
    fired: list[Nominal] = []
    nominal = next_after(timing, utc("2026-03-08T06:50"))
    while nominal is not None and nominal.at <= utc("2026-03-08T07:15"):
        fired.append(nominal)
        nominal = next_after(timing, nominal.at, nominal.label)
    assert [n.label[-4:] for n in fired] == ["0200", "0215", "0230", "0245", "0300", "0315"]
    assert next_after(timing, utc("2026-03-08T07:00")) == Nominal("20260308T0315", utc("2026-03-08T07:15"))


def test_a_whole_skipped_day_fires_every_time_of_it_once_at_its_end() -> None:
    # Samoa (Pacific/Apia) went from 2011-12-29 23:59:59 (-10) to 2011-12-31 00:00 (+14) at 10:00Z.
    timing = Timing(cron="0 */6 * * *", timezone="Pacific/Apia")
    assert fires(timing, "2011-12-30T00:00", "2011-12-30T17:00") == [
        ("20111229T1800", "04:00"), ("20111230T0000", "10:00"), ("20111230T0600", "10:00"),
        ("20111230T1200", "10:00"), ("20111230T1800", "10:00"), ("20111231T0000", "10:00"),
        ("20111231T0600", "16:00")]


# -- the oracle ----------------------------------------------------------------------------------

ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Australia/Sydney", "America/Santiago",
         "Pacific/Chatham", "Europe/London", "Asia/Kolkata", "UTC"]


@dataclass(frozen=True)
class Spec:
    """A cron expression built from sets, so the oracle matches the sets and never parses it."""

    minute: str
    minutes: frozenset[int]
    hour: str
    hours: frozenset[int]
    weekday: str
    weekdays: frozenset[int]  # cron's: 0 is Sunday

    @property
    def cron(self) -> str:
        return f"{self.minute} {self.hour} * * {self.weekday}"

    def matches(self, wall: datetime) -> bool:
        return (wall.minute in self.minutes and wall.hour in self.hours
                and (wall.weekday() + 1) % 7 in self.weekdays)


def field(highest: int) -> st.SearchStrategy[tuple[str, frozenset[int]]]:
    every = frozenset(range(highest + 1))
    star = st.just(("*", every))
    step = st.integers(1, highest).map(lambda k: (f"*/{k}", frozenset(range(0, highest + 1, k))))
    listed = st.sets(st.integers(0, highest), min_size=1, max_size=4).map(
        lambda s: (",".join(map(str, sorted(s))), frozenset(s)))
    ranged = st.tuples(st.integers(0, highest), st.integers(0, highest), st.integers(1, 5)).map(
        lambda t: (f"{min(t[:2])}-{max(t[:2])}/{t[2]}", frozenset(range(min(t[:2]), max(t[:2]) + 1, t[2]))))
    return st.one_of(star, step, listed, ranged)


@cache
def transitions(zone: str, year: int) -> tuple[datetime, ...]:
    """The instants a zone's UTC offset changes in a year, to the minute (found by walking days,
    then hours, then minutes)."""
    tz = ZoneInfo(zone)
    found = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        following = day + timedelta(days=1)
        if day.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            moment = day
            for step in (timedelta(hours=1), MINUTE):
                while (moment + step).astimezone(tz).utcoffset() == day.astimezone(tz).utcoffset():
                    moment += step
            found.append(moment + MINUTE)
        day = following
    return tuple(found) or (datetime(year, 6, 1, tzinfo=UTC),)  # no DST: any time will do


@dataclass(frozen=True)
class Case:
    spec: Spec
    zone: str
    start: datetime
    end: datetime


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A zone, a window of up to three days that starts near one of its transitions (often just
    before it), and a cron expression whose hours are often those around the transition."""
    zone = draw(st.sampled_from(ZONES))
    transition = draw(st.sampled_from(transitions(zone, draw(st.integers(2020, 2030)))))
    lead = draw(st.one_of(st.integers(-6 * 60, 60), st.integers(-36 * 60, 12 * 60)))
    start = transition + timedelta(minutes=lead, seconds=draw(st.sampled_from([0, 0, 0, 1, 30, 59])))
    end = start + timedelta(minutes=draw(st.one_of(st.integers(6 * 60, 72 * 60), st.integers(0, 72 * 60))))
    # the local hours before and after the transition, and those a gap skips
    tz = ZoneInfo(zone)
    before = (transition - MINUTE).astimezone(tz).hour
    near = sorted({(before + h) % 24 for h in (-1, 0, 1, 2)} | {transition.astimezone(tz).hour})
    minute, minutes = draw(field(59))
    hour, hours = draw(st.one_of(st.just(("*", frozenset(range(24)))), field(23),
                                 st.just((",".join(map(str, near)), frozenset(near)))))
    days = draw(st.one_of(st.none(), st.none(), st.sets(st.integers(0, 6), min_size=1, max_size=6)))
    weekday, weekdays = ("*", frozenset(range(7))) if days is None else (
        ",".join(map(str, sorted(days))), frozenset(days))
    return Case(Spec(minute, minutes, hour, hours, weekday, weekdays), zone, start, end)


def oracle(spec: Spec, zone: str, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
    """Walk UTC minutes from 3 hours before the window to 3 hours after (more than any offset
    change here, so each wall time's first occurrence is seen). A matching wall time that appears
    fires at the first minute showing it; one that never appears (a gap) at the first minute
    showing a later wall time."""
    tz = ZoneInfo(zone)
    moment = start.replace(second=0) - timedelta(hours=3)
    walk: list[tuple[datetime, datetime]] = []  # (UTC minute, its wall time)
    while moment <= end + timedelta(hours=3):
        walk.append((moment, moment.astimezone(tz).replace(tzinfo=None)))
        moment += MINUTE
    first: dict[datetime, datetime] = {}
    for instant, wall in walk:
        first.setdefault(wall, instant)
    found = []
    wall, last = min(first), max(first)
    while wall <= last:
        if spec.matches(wall):
            at = first.get(wall) or next((i for i, w in walk if w > wall), None)
            if at is not None and start < at <= end:
                found.append((wall.strftime("%Y%m%dT%H%M"), at))
        wall += MINUTE
    return sorted(found, key=lambda pair: (pair[1], pair[0]))


@pytest.mark.parametrize("zone", ZONES)
def test_every_minute_around_every_transition_of_a_decade_agrees_with_the_oracle(zone: str) -> None:
    every_minute = Spec("*", frozenset(range(60)), "*", frozenset(range(24)), "*", frozenset(range(7)))
    timing = Timing(cron=every_minute.cron, timezone=zone)
    for year in range(2020, 2031):
        for transition in transitions(zone, year):
            start, end = transition - timedelta(hours=2), transition + timedelta(hours=2)
            found = times_between(timing, start, end, 10_000)
            assert [(n.label, n.at) for n in found] == oracle(every_minute, zone, start, end)


@settings(max_examples=100, deadline=None)
@given(case=cases())
def test_times_between_agrees_with_the_minute_by_minute_oracle(case: Case) -> None:
    timing = Timing(cron=case.spec.cron, timezone=case.zone).check()
    found = times_between(timing, case.start, case.end, 10_000)
    assert [(n.label, n.at) for n in found] == oracle(case.spec, case.zone, case.start, case.end)
    assert len({n.label for n in found}) == len(found)  # no time twice
    assert all(a.at <= b.at for a, b in pairwise(found))  # in order
    assert all(re.fullmatch(r"\d{8}T\d{4}", n.label) and n.at.tzinfo is UTC for n in found)


@settings(max_examples=30, deadline=None)
@given(case=cases(), cap=st.integers(0, 300), limit=st.integers(1, 50))
def test_counting_chaining_and_paging_agree_with_times_between(case: Case, cap: int, limit: int) -> None:
    timing = Timing(cron=case.spec.cron, timezone=case.zone)
    start, end = case.start, case.end
    every = times_between(timing, start, end, 10_000)
    assert count_between(timing, start, end, cap) == min(cap, len(every))
    # next_after from each fired time (and its label) walks the same times, none skipped or repeated
    chained: list[Nominal] = []
    nominal = next_after(timing, start)
    while nominal is not None and nominal.at <= end:
        chained.append(nominal)
        nominal = next_after(timing, nominal.at, nominal.label)
    assert chained == every
    # pages of `limit`, each continuing from the last time of the one before
    paged: list[Nominal] = []
    page = times_between(timing, start, end, limit)
    while page:
        paged += page
        page = times_between(timing, page[-1].at, end, limit, page[-1].label)
    assert paged == every
    assert preview(timing, start, len(every)) == every
