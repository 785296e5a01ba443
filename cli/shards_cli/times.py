"""Times and durations as a person types them on the command line (`--at`, `--in`, `--every`,
`--from`): read into timezone-aware datetimes and seconds, every mistake one line naming its flag.
Plain logic, no I/O; the durations' grammar is shards.schedule_times'."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from shards.errors import InvalidArgs, ShardsError

if TYPE_CHECKING:
    from shards.schedule_times import Timing


def parse_time(text: str, flag: str) -> datetime:
    """An ISO 8601 time with its offset or Z (2026-12-05T10:00:00Z, 2026-12-05T11:00+01:00), in
    UTC. A time without one is refused: the same text means another instant on another machine."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgs(f"{flag} {text!r} is not an ISO 8601 time (like 2026-12-05T10:00:00Z)") from None
    if moment.tzinfo is None:
        raise InvalidArgs(f"{flag} {text!r} has no time zone: add Z (UTC) or an offset like +01:00")
    return moment.astimezone(UTC)


def parse_duration(text: str, flag: str) -> float:
    """Seconds from 90s, 15m, 1h30m, 2d or a bare number of seconds."""
    from shards.schedule_times import parse_duration as seconds

    try:
        return seconds(text)
    except ShardsError as error:
        raise InvalidArgs(f"{flag}: {error}") from None


def launch_start(at: str | None, delay: str | None, queue: bool, now: datetime) -> datetime | None:
    """When a launch may start: --at TIME, --in DURATION from now, or None (now; also --queue)."""
    given = [flag for flag, value in (("--at", at), ("--in", delay), ("--queue", queue)) if value]
    if len(given) > 1:
        raise InvalidArgs(f"{' and '.join(given)} exclude each other: a launch waits for a time "
                          "(--at or --in) or behind the active run (--queue)")
    if at is not None:
        return parse_time(at, "--at")
    if delay is not None:
        return now + timedelta(seconds=parse_duration(delay, "--in"))
    return None


def timing(cron: str | None, timezone: str | None, every: str | None, offset: str | None) -> Timing:
    """A schedule's timing from --cron [--tz] or --every [--offset], checked (one line)."""
    from shards.schedule_times import Timing

    if (cron is None) == (every is None):
        raise InvalidArgs("give a schedule either --cron EXPR or --every DURATION (one of them)")
    if cron is not None and offset is not None:
        raise InvalidArgs("--offset goes with --every; a cron schedule's times are in --tz")
    if every is not None and timezone is not None:
        raise InvalidArgs("--tz goes with --cron; an interval counts in UTC (shift it with --offset)")
    if cron is not None:
        chosen = Timing(cron=cron, timezone=timezone or "UTC")
    else:
        chosen = Timing(every=parse_duration(every or "", "--every"),
                        offset=parse_duration(offset, "--offset") if offset is not None else 0.0)
    try:
        return chosen.check()
    except ShardsError as error:
        raise InvalidArgs(str(error)) from None


def stamp(moment: datetime | None) -> str:
    """A moment for a table: UTC to the second, with its Z ('-' when there is none)."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
