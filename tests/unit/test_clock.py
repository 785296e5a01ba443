"""Stored times follow the server's clock, as the store measured it; durations are never negative."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from shards import records
from shards.records import ProcessStatus, server_offset, set_server_offset, utcnow, wall_clock
from shards.states import State


@pytest.fixture(autouse=True)
def restore_offset() -> Iterator[None]:
    before = server_offset()
    yield
    set_server_offset(before)


def test_utcnow_follows_the_servers_clock() -> None:
    set_server_offset(-120.0)  # this machine is two minutes ahead of the server
    drift = (wall_clock() - utcnow()).total_seconds()
    assert 119.9 < drift < 120.1


def test_a_duration_between_two_hosts_clocks_is_never_negative() -> None:
    ended = ProcessStatus.ended(State.DONE, running_since=utcnow() + timedelta(seconds=5))
    assert ended.duration == 0.0


def test_a_bad_skew_in_the_environment_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(records.CLOCK_SKEW_ENV, "two minutes")
    assert records._skew_from_env() == timedelta(0)
    monkeypatch.setenv(records.CLOCK_SKEW_ENV, "120")
    assert records._skew_from_env() == timedelta(seconds=120)
