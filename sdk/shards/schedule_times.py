"""The timing rules of schedules: which nominal times a cron expression (in a time zone) or an
interval names, the instant each fires, and a deterministic jitter. Plain logic, no I/O; the store,
worker and CLI build on it. Every datetime in and out is timezone-aware (returned in UTC).

Daylight saving: each nominal wall-clock time fires exactly once. A wall time that does not exist
(the spring-forward gap) fires at the first instant after the gap, the transition itself; one that
occurs twice (the autumn overlap) fires at its first occurrence. Several times in one gap all fire
at the transition instant, in wall-clock order, each with its own label. Intervals are plain UTC
arithmetic. Cron expressions are matched by cronsim on naive wall-clock times; this module only
maps those wall times to instants.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from shards.errors import InvalidDefinition

MIN_EVERY = 1.0  # seconds: the shortest interval
MAX_EVERY = 366 * 86400.0

CRON_NAMES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
CRON_LABEL = "%Y%m%dT%H%M"  # local wall clock: unique per cron schedule, even for two times in one gap
INTERVAL_LABEL = "%Y%m%dT%H%M%SZ"  # UTC: interval times are whole seconds

# (name, lowest, highest, names allowed besides numbers) of the five fields, in order
_FIELDS = (("minute", 0, 59, ""), ("hour", 0, 23, ""), ("day-of-month", 1, 31, ""),
           ("month", 1, 12, " or JAN-DEC"), ("day-of-week", 0, 7, " or SUN-SAT"))
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
# A gap is at most a day long (Pacific/Apia skipped 2011-12-30): no time sharing an instant with
# the one just fired lies further back than this.
_LONGEST_GAP = timedelta(days=2)


def _quote(text: object) -> str:
    """Quoted for a one-line message (a newline or control character shows escaped)."""
    text = str(text)
    return f"'{text}'" if text.isprintable() else repr(text)


def parse_duration(text: str | float | int) -> float:
    """Seconds from "90s", "15m", "1h30m", "2d", "1d12h" or a bare number of seconds."""
    problem = InvalidDefinition(f"invalid duration {_quote(text)}: use seconds or whole units like "
                                "90s, 15m, 1h30m, 2d")
    if isinstance(text, bool):  # an int to Python, never a duration to a person
        raise problem
    if isinstance(text, int | float):
        if not math.isfinite(text) or text < 0:
            raise problem
        return float(text)
    if not isinstance(text, str):
        raise problem
    compact = re.sub(r"(?<=[a-z])\s+", "", text.strip().lower())  # "1h 30m", but not "1 2"
    if re.fullmatch(r"\d+(?:\.\d+)?", compact):
        return float(compact)
    match = _DURATION.fullmatch(compact)
    if not compact or match is None:
        raise problem
    return float(sum(int(n) * size for n, (_, size) in zip(match.groups(), _UNITS, strict=True) if n))


def format_duration(seconds: float) -> str:
    """The shortest form parse_duration reads back: 900 -> "15m", 5400 -> "1h30m", 0 -> "0s"."""
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    rest = round(seconds, 3)
    whole = int(rest)
    fraction = rest - whole
    parts = []
    for unit, size in _UNITS:
        count, whole = divmod(whole, size)
        if unit == "s" and fraction:
            parts.append(f"{count + fraction:.3f}".rstrip("0").rstrip(".") + "s")
        elif count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class Timing:
    """When a schedule's nominal times fall: a cron expression in a time zone, or an interval."""

    cron: str = ""  # five fields or @hourly/@daily/...; "" for an interval
    timezone: str = "UTC"  # IANA name; cron times are wall-clock times in it
    every: float = 0.0  # seconds between nominal times (0 for a cron schedule)
    offset: float = 0.0  # interval times are epoch + offset + k*every (0 <= offset < every)

    def check(self) -> Timing:
        """Itself, or InvalidDefinition with a one-line reason."""
        _compile(self)
        return self

    @property
    def is_cron(self) -> bool:
        return bool(self.cron)

    def to_doc(self) -> dict[str, Any]:
        return {"cron": self.cron, "timeZone": self.timezone, "everySeconds": self.every,
                "offsetSeconds": self.offset}

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> Timing:
        doc = doc or {}
        return cls(cron=str(doc.get("cron") or ""), timezone=str(doc.get("timeZone") or "UTC"),
                   every=float(doc.get("everySeconds") or 0.0),
                   offset=float(doc.get("offsetSeconds") or 0.0))


@dataclass(frozen=True)
class Nominal:
    """One nominal time of a schedule: its stable label and the instant it fires (before jitter)."""

    label: str  # cron: local wall clock "20260308T0230"; interval: UTC "20260308T023015Z"
    at: datetime  # UTC


@dataclass(frozen=True)
class _Compiled:
    zone: ZoneInfo
    cron: str  # five fields, names expanded; "" for an interval
    every: int  # whole seconds
    offset: int


@lru_cache(maxsize=256)
def _compile(timing: Timing) -> _Compiled:
    """The checked, ready form of a timing (cached: the worker asks about the same ones often)."""
    if timing.cron and timing.every:
        raise InvalidDefinition("give a cron expression or an interval, not both")
    zone = _zone(timing.timezone)
    if timing.cron:
        if timing.offset:
            raise InvalidDefinition("an offset applies only to an interval, not to a cron expression")
        return _Compiled(zone, _cron_expression(timing.cron), 0, 0)
    return _Compiled(zone, "", *_interval(timing.every, timing.offset))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):  # OSError: "America" is a folder
        raise InvalidDefinition(f"unknown time zone {_quote(name)}") from None


def _interval(every: float, offset: float) -> tuple[int, int]:
    shown = format_duration(every)
    if not math.isfinite(every) or every < MIN_EVERY:
        raise InvalidDefinition(f"interval must be at least {format_duration(MIN_EVERY)}, got {shown}")
    if every > MAX_EVERY:
        raise InvalidDefinition(f"interval must be at most {format_duration(MAX_EVERY)}, got {shown}")
    if every != int(every):  # labels and the arithmetic are in whole seconds
        raise InvalidDefinition(f"interval must be whole seconds, got {shown}")
    if not (math.isfinite(offset) and 0 <= offset < every):
        raise InvalidDefinition(f"interval offset must be at least 0s and less than the interval "
                                f"({shown}), got {format_duration(offset)}")
    if offset != int(offset):
        raise InvalidDefinition(f"interval offset must be whole seconds, got {format_duration(offset)}")
    return int(every), int(offset)


def _cron_expression(cron: str) -> str:
    """The five fields of a valid cron expression (a name like @daily expanded)."""
    text = " ".join(cron.split())
    expression = CRON_NAMES.get(text.lower(), text)
    fields = expression.split()
    if expression.startswith("@"):
        problem = f"use five fields or one of {', '.join(CRON_NAMES)}"
    elif len(fields) != 5:  # cronsim also takes a seconds field; labels are per minute
        problem = f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
    else:
        try:
            matches = CronSim(expression, datetime(2000, 1, 1))
        except CronSimError as error:
            problem = _field_problem(fields, str(error))
        else:
            # cronsim refuses the impossible days it knows ("0 0 30 2 *") and gives up after 50
            # years without a match; a time that never comes is refused here, not found missing later
            if next(matches, None) is not None:
                return expression
            problem = "it never fires"
    raise InvalidDefinition(f"invalid cron expression {_quote(text)}: {problem}")


def _field_problem(fields: list[str], message: str) -> str:
    """cronsim says "Bad minute": name the field, and an out-of-range value when there is one."""
    for index, (name, lowest, highest, names) in enumerate(_FIELDS):
        if message != f"Bad {name}":
            continue
        field = fields[index]
        for term in field.split(","):
            for number in re.findall(r"\d+", re.split(r"[/#]", term)[0]):  # not a step or an nth
                if not lowest <= int(number) <= highest:
                    return f"{name} {int(number)} is out of range {lowest}-{highest}"
        if name == "day-of-month" and _parses([*fields[:3], "*", fields[4]]):
            return f"day-of-month {_quote(field)} never occurs in month {_quote(fields[3])}"
        return f"bad {name} field {_quote(field)} (allowed: {lowest}-{highest}{names}, lists, ranges, steps)"
    return message


def _parses(fields: list[str]) -> bool:
    try:
        CronSim(" ".join(fields), datetime(2000, 1, 1))
    except CronSimError:
        return False
    return True


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"a schedule time must be timezone-aware, got {moment}")
    return moment.astimezone(UTC)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def fire_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a naive wall-clock time of `zone` fires: its first occurrence, or for a time in a
    spring-forward gap the end of the gap (the transition instant)."""
    candidates = [wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)]
    real = [instant for instant in candidates if _wall(instant, zone) == wall]  # round-trips
    if real:
        return min(real)
    # In a gap one fold reads the time with the offset before the transition (an instant after
    # it), the other with the offset after (an instant before): bisect to the transition, which
    # zoneinfo does not expose. Transitions fall on whole seconds.
    before, after = min(candidates), max(candidates)
    while after - before > _SECOND:
        middle = before + (after - before) // _SECOND // 2 * _SECOND
        if _wall(middle, zone) >= wall:
            after = middle
        else:
            before = middle
    return after


def nominals_after(timing: Timing, after: datetime, after_label: str = "") -> Iterator[Nominal]:
    """The nominal times after `after`, in order (see next_after); ends when there are no more."""
    compiled = _compile(timing)
    after = _utc(after)
    found = _cron_after(compiled, after, after_label) if compiled.cron else _interval_after(compiled, after)
    try:
        yield from found
    except OverflowError:  # past year 9999
        return


def _cron_after(compiled: _Compiled, after: datetime, after_label: str) -> Iterator[Nominal]:
    # Fire instants never decrease as wall times increase (first occurrence; gap -> its end), and
    # the wall time of `after` itself fires no later than `after`: so every time due after it has
    # a later wall time, and the walk starts there. With a label, times sharing the instant of
    # the one it names (in a gap, earlier wall times) follow it too.
    start = _wall(after, compiled.zone)
    if after_label:
        try:
            named = datetime.strptime(after_label, CRON_LABEL)
        except ValueError:
            raise ValueError(f"not a cron schedule's label: {after_label!r}") from None
        start = max(min(start, named), start - _LONGEST_GAP)
    for wall in CronSim(compiled.cron, start):  # strictly after `start`, to the second
        at = fire_instant(wall, compiled.zone)
        label = wall.strftime(CRON_LABEL)
        if at > after or (after_label and at == after and label > after_label):
            yield Nominal(label, at)


def _interval_after(compiled: _Compiled, after: datetime) -> Iterator[Nominal]:
    micro = timedelta(microseconds=1)
    since = (after - _EPOCH) // micro - compiled.offset * 1_000_000  # exact: no float rounding
    k = since // (compiled.every * 1_000_000) + 1
    while True:
        at = _EPOCH + timedelta(seconds=compiled.offset + k * compiled.every)
        yield Nominal(at.strftime(INTERVAL_LABEL), at)
        k += 1


def next_after(timing: Timing, after: datetime, after_label: str = "") -> Nominal | None:
    """The first nominal time firing strictly after `after`, or None if there is none.

    Several cron times in one spring-forward gap fire at the same instant: pass the label of the
    one just fired as `after_label` (with its `at` as `after`) and the next of those comes next,
    instead of being skipped.
    """
    return next(nominals_after(timing, after, after_label), None)


def times_between(timing: Timing, start: datetime, end: datetime, limit: int,
                  after_label: str = "") -> list[Nominal]:
    """The nominal times with start < at <= end, in order, at most `limit` (`after_label` as in
    next_after, to continue a list cut by the limit)."""
    end = _utc(end)
    found: list[Nominal] = []
    for nominal in nominals_after(timing, start, after_label):
        if nominal.at > end or len(found) >= limit:
            break
        found.append(nominal)
    return found


def count_between(timing: Timing, start: datetime, end: datetime, cap: int) -> int:
    """How many nominal times have start < at <= end: exact up to `cap`, `cap` if more. Intervals
    count in O(1); cron times are walked, never more than `cap` of them."""
    compiled = _compile(timing)
    start, end = _utc(start), _utc(end)
    if cap <= 0 or end <= start:
        return 0
    if compiled.cron:
        count = 0
        for nominal in nominals_after(timing, start):
            if nominal.at > end or count >= cap:
                break
            count += 1
        return count
    micro = timedelta(microseconds=1)
    every, offset = compiled.every * 1_000_000, compiled.offset * 1_000_000
    due = ((end - _EPOCH) // micro - offset) // every - ((start - _EPOCH) // micro - offset) // every
    return min(due, cap)


def preview(timing: Timing, after: datetime, count: int) -> list[Nominal]:
    """The next `count` nominal times after `after` (fewer if the schedule ends)."""
    return list(islice(nominals_after(timing, after), max(count, 0)))


def room_after(timing: Timing, nominal: Nominal) -> float:
    """Seconds from a nominal time to the next one (inf if none): the room for its jitter."""
    following = next_after(timing, nominal.at, nominal.label)
    return math.inf if following is None else (following.at - nominal.at).total_seconds()


def jitter_for(schedule_key: str, label: str, jitter: float, room: float) -> float:
    """A delay in [0, min(jitter, room)) for one nominal time, the same on every worker (a hash of
    the schedule's key and the label, not random). With jitter >= room the bound is 0.9*room, so a
    jittered fire stays before the next nominal time."""
    if not (jitter > 0 and room > 0):  # also NaN
        return 0.0
    bound = jitter if jitter < room else 0.9 * room
    digest = hashlib.blake2b(f"{schedule_key}\x00{label}".encode(), digest_size=8).digest()
    delay = int.from_bytes(digest, "big") / 2**64 * bound
    return delay if delay < bound else math.nextafter(bound, 0.0)  # a product rounded up to a tiny bound


def interval_offset(every: float, anchor: datetime) -> float:
    """The offset that puts one of an interval's times at `anchor` (to the second): for "every
    15m from now" instead of from the epoch."""
    seconds = (_utc(anchor) - _EPOCH) // _SECOND
    return float(seconds % int(every))
