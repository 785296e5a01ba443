"""Ages as kubectl writes them, and the time column of the process table (no I/O)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shards.records import ProcessRecord, ProcessStatus, utcnow
from shards.states import State
from shards_cli.ages import age, ago
from shards_cli.output import when


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (182, "3m2s"), (600, "10m"), (10_799, "179m"),
    (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"), (8 * 3600, "8h"), (47 * 3600, "47h"), (2 * 86400, "2d"),
    (3 * 86400 + 4 * 3600, "3d4h"), (30 * 86400, "30d"),
])
def test_age_is_precise_when_short_and_coarse_when_long(seconds: int, shown: str) -> None:
    assert age(seconds) == shown


@given(st.floats(min_value=0, max_value=10 * 365 * 86400))
def test_an_age_is_short_and_never_negative(seconds: float) -> None:
    shown = age(seconds)
    assert len(shown) <= 7 and shown[0].isdigit() and not shown.startswith("-")


def test_ago_says_which_way_and_unknown_is_a_question_mark() -> None:
    now = utcnow()
    assert ago(now - timedelta(seconds=45), now) == "45s ago"
    assert ago(now + timedelta(seconds=4.5), now) == "in 4s"
    assert ago(None, now) == "?"


def test_the_time_column_shows_ages_not_clock_times() -> None:
    now = utcnow()
    done = ProcessRecord("farm", "p", "P", status=ProcessStatus(
        state=State.DONE, done_at=now - timedelta(minutes=3, seconds=2), duration=42.0))
    assert when(done, now) == "finished 3m2s ago in 00:42"
    retry = ProcessRecord("farm", "p", "P", status=ProcessStatus(
        state=State.SCHEDULED, retry_at=now + timedelta(seconds=4.2)))
    assert when(retry, now) == "retry in 4s"
    running = ProcessRecord("farm", "p", "P", status=ProcessStatus(
        state=State.RUNNING, running_since=now - timedelta(seconds=75)))
    assert when(running, now) == "01:15"
