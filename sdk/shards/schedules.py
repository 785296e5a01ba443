"""Schedules: what a schedule is (its spec and its record), and the rules a firing follows, as
plain functions (unit-tested): which nominal times fire now and which were missed, what the
overlap policy does with a run still active, the run id of each nominal time. The timing itself
(cron in a time zone, intervals, daylight saving) is shards.schedule_times.

Exactly once without a leader: each nominal time is one launch whose run id is derived from the
schedule and the time, so any number of workers firing the same time launch it once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from shards.app import is_valid_id
from shards.errors import InvalidDefinition
from shards.records import SCHEMA_FIELD, SCHEMA_VERSION, Document, from_ms, iso, to_ms
from shards.schedule_times import Nominal, Timing, count_between, jitter_for, next_after, times_between

DEFAULT_CATCHUP_WINDOW = 60.0  # seconds: missed times younger than this still fire
MAX_CATCHUP_WINDOW = 7 * 86400.0
MAX_CATCHUP_FIRES = 100  # nominal times fired by one catch-up; older ones in the window are missed
MISSED_COUNT_CAP = 100_000  # a long outage's missed times are counted up to this (then "at least")
DEFAULT_BUFFER_LIMIT = 10
MAX_BUFFER_LIMIT = 100  # = shards_store.launches.MAX_QUEUE
MAX_BACKFILL = 1000  # nominal times one backfill may cover
KEPT_ACTIONS = 20  # a schedule's status keeps its last actions
MAX_JITTER = 86400.0


class Overlap(StrEnum):
    """What a fire does while the process's previous run is still active."""

    SKIP = "Skip"  # do not launch; count it
    BUFFER_ONE = "BufferOne"  # launch once the active run ends; at most one waits
    BUFFER_ALL = "BufferAll"  # every fire waits its turn, up to bufferLimit (then skipped)
    CANCEL_OTHER = "CancelOther"  # stop the active run, then launch
    TERMINATE_OTHER = "TerminateOther"  # force-stop (kill) the active run, then launch


class Outcome(StrEnum):
    """What one nominal time came to."""

    LAUNCHED = "Launched"
    QUEUED = "Queued"  # waits behind the active run
    SKIPPED = "Skipped"  # the overlap policy (or a full buffer) left it out
    MISSED = "Missed"  # older than the catch-up window when a worker came to it
    FAILED = "Failed"  # the launch was refused (unknown process, needs confirmation)


@dataclass(frozen=True)
class Decision:
    """The overlap policy's answer for one fire: launch now, queue behind the active run (up to
    queue_limit waiting), skip; stop (forced: kill) the active run first."""

    outcome: Outcome
    queue_limit: int = 0
    stop_active: bool = False
    force: bool = False


def decide_overlap(overlap: Overlap, *, active: bool, queued: int, buffer_limit: int) -> Decision:
    """The overlap policy, given whether the process's run is active and how many launches
    already wait behind it."""
    if not active and queued == 0:
        return Decision(Outcome.LAUNCHED)
    if overlap is Overlap.SKIP:
        return Decision(Outcome.SKIPPED)
    limit = buffer_limit if overlap is Overlap.BUFFER_ALL else 1
    if queued >= limit:
        return Decision(Outcome.SKIPPED)
    stop = overlap in (Overlap.CANCEL_OTHER, Overlap.TERMINATE_OTHER) and active
    return Decision(
        Outcome.QUEUED, queue_limit=limit, stop_active=stop, force=overlap is Overlap.TERMINATE_OTHER
    )


def check_name(name: object) -> str:
    if not is_valid_id(name) or ":" in str(name):
        raise InvalidDefinition(
            f"invalid schedule name {name!r}: use letters, digits, '_', '.', '-' "
            "(at most 200, starting with a letter or digit)"
        )
    return str(name)


def schedule_key(scope_id: str, name: str) -> str:
    return f"{scope_id}/{name}"


def run_id_for(scope_id: str, name: str, label: str) -> str:
    """The run id of one nominal time: the same on every worker, for every try."""
    run_id = f"{name}:{label}"
    scope = hashlib.blake2b(scope_id.encode(), digest_size=4).hexdigest()  # run ids are global
    run_id = f"{run_id}:{scope}"
    if len(run_id) > 200:
        digest = hashlib.blake2b(f"{scope_id}/{name}".encode(), digest_size=8).hexdigest()
        run_id = f"{digest}:{label}"
    return run_id


@dataclass(frozen=True)
class ScheduleSpec:
    """What a user writes: which process to launch, with what, and when."""

    name: str
    scope_id: str
    process_id: str
    timing: Timing
    args: Document = field(default_factory=dict)
    options: Document = field(default_factory=dict)  # a launch's timeout, retries, retryBackoff
    overlap: Overlap = Overlap.SKIP
    buffer_limit: int = DEFAULT_BUFFER_LIMIT
    catchup_window: float = DEFAULT_CATCHUP_WINDOW
    jitter: float = 0.0
    pause_on_failure: bool = False
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_runs: int | None = None
    confirm: bool = False  # the process carries a warning: its launches confirm it

    def check(self) -> ScheduleSpec:
        """Raises InvalidDefinition, one line, for the first thing wrong."""
        check_name(self.name)
        self.timing.check()
        try:
            overlap = Overlap(self.overlap)
        except ValueError:
            raise InvalidDefinition(
                f"overlap must be one of {', '.join(o.value for o in Overlap)}, got {self.overlap!r}"
            ) from None
        _check_number("bufferLimit", self.buffer_limit, 1, MAX_BUFFER_LIMIT, whole=True)
        _check_number("catchupWindow", self.catchup_window, 0, MAX_CATCHUP_WINDOW)
        _check_number("jitter", self.jitter, 0, MAX_JITTER)
        if self.max_runs is not None:
            _check_number("maxRuns", self.max_runs, 1, 10**9, whole=True)
        for what, at in (("startAt", self.start_at), ("endAt", self.end_at)):
            if at is not None and at.tzinfo is None:
                raise InvalidDefinition(f"{what} must be a time with a time zone, got {at.isoformat()}")
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise InvalidDefinition(
                f"endAt ({iso(self.end_at)}) must come after startAt ({iso(self.start_at)})"
            )
        return replace(self, overlap=overlap)

    def to_doc(self) -> Document:
        return {
            "name": self.name,
            "scopeId": self.scope_id,
            "processId": self.process_id,
            "timing": self.timing.to_doc(),
            "args": self.args,
            "options": self.options,
            "overlap": self.overlap.value,
            "bufferLimit": self.buffer_limit,
            "catchupWindow": self.catchup_window,
            "jitter": self.jitter,
            "pauseOnFailure": self.pause_on_failure,
            "startAt": to_ms(self.start_at),
            "endAt": to_ms(self.end_at),
            "maxRuns": self.max_runs,
            "confirm": self.confirm,
        }

    @classmethod
    def from_doc(cls, doc: Document) -> ScheduleSpec:
        return cls(
            name=doc["name"],
            scope_id=doc["scopeId"],
            process_id=doc["processId"],
            timing=Timing.from_doc(doc.get("timing") or {}),
            args=dict(doc.get("args") or {}),
            options=dict(doc.get("options") or {}),
            overlap=Overlap(doc.get("overlap", Overlap.SKIP)),
            buffer_limit=int(doc.get("bufferLimit", DEFAULT_BUFFER_LIMIT)),
            catchup_window=float(doc.get("catchupWindow", DEFAULT_CATCHUP_WINDOW)),
            jitter=float(doc.get("jitter", 0.0)),
            pause_on_failure=bool(doc.get("pauseOnFailure")),
            start_at=from_ms(doc.get("startAt")),
            end_at=from_ms(doc.get("endAt")),
            max_runs=doc.get("maxRuns"),
            confirm=bool(doc.get("confirm")),
        )

    def fire_time(self, nominal: Nominal, following: Nominal | None) -> datetime:
        """When a nominal time fires: its instant plus its jitter (never past the next one)."""
        if self.jitter <= 0:
            return nominal.at
        room = (following.at - nominal.at).total_seconds() if following else self.jitter
        delay = jitter_for(schedule_key(self.scope_id, self.name), nominal.label, self.jitter, room)
        return nominal.at + timedelta(milliseconds=int(delay * 1000))  # as stored: whole ms

    def next_after(self, after: datetime) -> Nominal | None:
        """The first nominal time after `after` within the schedule's start and end."""
        if self.start_at is not None and after < self.start_at:
            after = self.start_at - timedelta(microseconds=1)
        nominal = next_after(self.timing, after)
        if nominal is None or (self.end_at is not None and nominal.at > self.end_at):
            return None
        return nominal


@dataclass(frozen=True)
class Action:
    """One thing a schedule did, kept in its status."""

    label: str
    nominal: datetime | None
    at: datetime | None  # when it was acted on
    run_id: str
    outcome: Outcome
    detail: str = ""

    def to_doc(self) -> Document:
        return {
            "label": self.label,
            "nominal": to_ms(self.nominal),
            "at": to_ms(self.at),
            "runId": self.run_id,
            "outcome": self.outcome.value,
            "detail": self.detail,
        }

    @classmethod
    def from_doc(cls, doc: Document) -> Action:
        return cls(
            label=str(doc.get("label", "")),
            nominal=from_ms(doc.get("nominal")),
            at=from_ms(doc.get("at")),
            run_id=str(doc.get("runId", "")),
            outcome=Outcome(doc.get("outcome", Outcome.LAUNCHED)),
            detail=str(doc.get("detail", "")),
        )


@dataclass(frozen=True)
class NextFire:
    """The schedule's next nominal time, and when it fires (with its jitter)."""

    label: str
    nominal: datetime
    fire_at: datetime

    def to_doc(self) -> Document:
        return {"label": self.label, "nominal": to_ms(self.nominal), "fireAt": to_ms(self.fire_at)}

    @classmethod
    def from_doc(cls, doc: Document | None) -> NextFire | None:
        if not doc or not doc.get("label"):
            return None
        nominal, fire_at = from_ms(doc.get("nominal")), from_ms(doc.get("fireAt"))
        if nominal is None or fire_at is None:
            return None
        return cls(label=str(doc["label"]), nominal=nominal, fire_at=fire_at)


class Phase(StrEnum):
    ACTIVE = "Active"
    PAUSED = "Paused"
    COMPLETED = "Completed"  # past its end time, or its maxRuns launched


@dataclass
class ScheduleRecord:
    """A schedule as stored: its spec, and what it has done so far. `generation` counts changes
    of spec or pause: a fire armed under another generation does nothing."""

    spec: ScheduleSpec
    generation: int = 1
    paused: bool = False
    note: str = ""  # why it was paused (by a user, or by pauseOnFailure)
    next: NextFire | None = None
    fired: int = 0  # nominal times acted on (launched, queued or skipped)
    launched: int = 0  # runs launched or queued: what maxRuns counts
    skipped: int = 0
    missed: int = 0
    actions: list[Action] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        return schedule_key(self.spec.scope_id, self.spec.name)

    @property
    def phase(self) -> Phase:
        if self.paused:
            return Phase.PAUSED
        return Phase.ACTIVE if self.next is not None else Phase.COMPLETED

    def last(self, *outcomes: Outcome) -> Action | None:
        return next((a for a in reversed(self.actions) if not outcomes or a.outcome in outcomes), None)

    def to_doc(self) -> Document:
        return {
            SCHEMA_FIELD: SCHEMA_VERSION,
            "_id": self.key,
            "spec": self.spec.to_doc(),
            "scopeId": self.spec.scope_id,
            "generation": self.generation,
            "paused": self.paused,
            "note": self.note,
            "next": self.next.to_doc() if self.next else None,
            # The next fire's time, top level and never null: what the repair pass ranges over.
            "nextFireAt": to_ms(self.next.fire_at) if self.next and not self.paused else NEVER_MS,
            "fired": self.fired,
            "launched": self.launched,
            "skipped": self.skipped,
            "missed": self.missed,
            "actions": [a.to_doc() for a in self.actions],
            "createdAt": to_ms(self.created_at),
            "updatedAt": to_ms(self.updated_at),
        }

    @classmethod
    def from_doc(cls, doc: Document) -> ScheduleRecord:
        return cls(
            spec=ScheduleSpec.from_doc(doc["spec"]),
            generation=int(doc.get("generation", 1)),
            paused=bool(doc.get("paused")),
            note=str(doc.get("note") or ""),
            next=NextFire.from_doc(doc.get("next")),
            fired=int(doc.get("fired", 0)),
            launched=int(doc.get("launched", 0)),
            skipped=int(doc.get("skipped", 0)),
            missed=int(doc.get("missed", 0)),
            actions=[Action.from_doc(a) for a in doc.get("actions") or []],
            created_at=from_ms(doc.get("createdAt")),
            updated_at=from_ms(doc.get("updatedAt")),
        )

    def to_json(self) -> Document:
        """The stable, script-readable form (`shards schedule get -o json`)."""
        spec = self.spec
        return {
            "name": spec.name,
            "scope": spec.scope_id,
            "process": spec.process_id,
            "cron": spec.timing.cron or None,
            "timeZone": spec.timing.timezone,
            "everySeconds": spec.timing.every or None,
            "offsetSeconds": spec.timing.offset or None,
            "args": spec.args,
            "options": spec.options,
            "overlap": spec.overlap.value,
            "bufferLimit": spec.buffer_limit,
            "catchupWindowSeconds": spec.catchup_window,
            "jitterSeconds": spec.jitter,
            "pauseOnFailure": spec.pause_on_failure,
            "startAt": iso(spec.start_at),
            "endAt": iso(spec.end_at),
            "maxRuns": spec.max_runs,
            "phase": self.phase.value,
            "paused": self.paused,
            "note": self.note,
            "next": iso(self.next.fire_at) if self.next else None,
            "nextNominal": iso(self.next.nominal) if self.next else None,
            "fired": self.fired,
            "launched": self.launched,
            "skipped": self.skipped,
            "missed": self.missed,
            "actions": [{**a.to_doc(), "nominal": iso(a.nominal), "at": iso(a.at)} for a in self.actions],
            "createdAt": iso(self.created_at),
        }


NEVER_MS = 2**62  # nextFireAt of a schedule with no next time: sorts after every real time


def first_next(spec: ScheduleSpec, after: datetime) -> NextFire | None:
    """The next fire of a schedule, counting from `after` (its creation, an unpause)."""
    return _fire(spec, spec.next_after(after))


def _fire(spec: ScheduleSpec, nominal: Nominal | None) -> NextFire | None:
    if nominal is None:
        return None
    return NextFire(nominal.label, nominal.at, spec.fire_time(nominal, successor(spec, nominal)))


def next_fire_after(spec: ScheduleSpec, fire: NextFire) -> NextFire | None:
    """The fire after this one (a preview's next line)."""
    return _fire(spec, successor(spec, Nominal(fire.label, fire.nominal)))


def successor(spec: ScheduleSpec, nominal: Nominal) -> Nominal | None:
    """The nominal time after this one, within the schedule's end. In nominal order: times of a
    daylight-saving gap share their instant, and each still comes once."""
    later = next_after(spec.timing, nominal.at, nominal.label)
    return later if later is not None and (spec.end_at is None or later.at <= spec.end_at) else None


def later_nominals(spec: ScheduleSpec, nominal: Nominal, end: datetime, limit: int) -> list[Nominal]:
    """The nominal times after this one up to `end` (at most limit), in nominal order."""
    end = end if spec.end_at is None else min(end, spec.end_at)
    return times_between(spec.timing, nominal.at, end, limit, nominal.label)


@dataclass(frozen=True)
class CatchUp:
    """What a fire of the schedule's pending time does at `now`: the nominal times to act on in
    order (the pending one and any others whose fire time came since, within the catch-up
    window), how many older ones were missed (and from when to when), and the next fire after
    them (None: the schedule is completed)."""

    due: list[Nominal]
    missed: int
    missed_from: datetime | None
    missed_to: datetime | None
    following: NextFire | None


def catch_up(spec: ScheduleSpec, pending: NextFire, now: datetime, launched: int) -> CatchUp:
    """Bounded work whatever the gap: times older than the window are counted (up to a cap), at
    most MAX_CATCHUP_FIRES in it are listed; a longer backlog goes on at the next fire, at once.
    `launched`: runs so far (for maxRuns)."""
    first = Nominal(pending.label, pending.nominal)
    window_start = now - timedelta(seconds=spec.catchup_window)
    if first.at < window_start:  # the pending time, and those up to the window, are missed
        missed = 1 + count_between(spec.timing, first.at, window_start, MISSED_COUNT_CAP)
        missed_from, missed_to = first.at, window_start
        candidates = times_between(spec.timing, window_start, now, MAX_CATCHUP_FIRES)
        if spec.end_at is not None:
            candidates = [n for n in candidates if n.at <= spec.end_at]
    else:
        missed, missed_from, missed_to = 0, None, None
        candidates = [first, *later_nominals(spec, first, now, MAX_CATCHUP_FIRES - 1)]
    due: list[Nominal] = []
    for nominal in candidates:
        # A later time whose jittered fire has not come yet waits for it.
        if due and spec.fire_time(nominal, successor(spec, nominal)) > now:
            break
        due.append(nominal)
    if spec.max_runs is not None:
        due = due[: max(0, spec.max_runs - launched)]
        if launched + len(due) >= spec.max_runs:
            return CatchUp(due, missed, missed_from, missed_to, None)
    following = successor(spec, due[-1]) if due else spec.next_after(window_start)
    return CatchUp(due, missed, missed_from, missed_to, _fire(spec, following))


def backfill_times(spec: ScheduleSpec, start: datetime, end: datetime) -> list[Nominal]:
    """The nominal times of a backfill (start < t <= end), or InvalidDefinition, one line, when
    the range is empty, reversed or covers more than MAX_BACKFILL times."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidDefinition("a backfill's start and end must be times with a time zone")
    if end <= start:
        raise InvalidDefinition(f"a backfill's end ({iso(end)}) must come after its start ({iso(start)})")
    if count_between(spec.timing, start, end, MAX_BACKFILL + 1) > MAX_BACKFILL:
        raise InvalidDefinition(
            f"the backfill from {iso(start)} to {iso(end)} covers more than {MAX_BACKFILL} "
            "nominal times; backfill a shorter range"
        )
    return times_between(spec.timing, start, end, MAX_BACKFILL)


def kept_actions(actions: list[Action], new: list[Action]) -> list[Action]:
    return [*actions, *new][-KEPT_ACTIONS:]


def _check_number(what: str, value: object, low: float, high: float, *, whole: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
    if ok and whole and not float(value).is_integer():  # type: ignore[arg-type]
        ok = False
    if not ok:
        kind = "a whole number" if whole else "a number"
        raise InvalidDefinition(f"{what} must be {kind} from {low:g} to {high:g}, got {value!r}")
