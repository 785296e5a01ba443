"""Firing schedules: a worker that claimed a schedule's fire request acts on its pending nominal
time (and on any others that came since, within the catch-up window), then moves the schedule to
its next time and arms that. No leader: each nominal time is one launch with a derived run id
(shards.schedules.run_id_for), so whoever fires it again (a second worker, a retry after a crash
between the launch and the schedule's write) launches nothing twice; the schedule's write is
guarded on the time it waited for, so counts move once."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from shards.errors import ConfirmationRequired, ProcessActive, ShardsError
from shards.records import to_ms, utcnow
from shards.requests import Request
from shards.schedule_times import Nominal
from shards.schedules import (
    MAX_CATCHUP_FIRES,
    Action,
    CatchUp,
    Outcome,
    ScheduleRecord,
    catch_up,
    decide_overlap,
    later_nominals,
    run_id_for,
)
from shards.states import ACTIVE

from shards_store import launches
from shards_store.store import Store

log = logging.getLogger("shards.schedules")


def fire(store: Store, request: Request) -> list[Action]:
    """Act on a claimed fire request, then complete it. Returns what it did: nothing when the
    request was stale (the schedule changed, was paused or deleted, or another worker fired that
    time). Raises StoreUnavailable (the request stays taken: the caller releases it)."""
    options = request.options
    record = store.schedules.get_key(str(options.get("schedule", "")))
    stale = (
        record is None
        or record.paused
        or record.next is None
        or record.generation != options.get("generation")
        or record.next.label != options.get("label")
    )
    if stale or record is None or record.next is None:
        store.requests.complete(request)
        return []
    now = utcnow()
    plan = catch_up(record.spec, record.next, now, record.launched)
    launched_before = launched_already(store, record, plan) if plan.missed else []
    actions = [
        Action(label=nominal.label, nominal=nominal.at, at=now, outcome=Outcome.LAUNCHED,
               run_id=run_id_for(record.spec.scope_id, record.spec.name, nominal.label),
               detail="launched already")
        for nominal in launched_before
    ]
    actions += [
        fire_once(
            store,
            record,
            nominal.label,
            nominal.at,
            now,
            record.spec.fire_time(nominal, None)
            if nominal.label != record.next.label
            else record.next.fire_at,
        )
        for nominal in plan.due
    ]
    missed = plan.missed - len(launched_before)
    if missed:
        missed_from = plan.missed_from
        if launched_before:
            after_them = later_nominals(record.spec, launched_before[-1], plan.missed_to or now, 1)
            missed_from = after_them[0].at if after_them else plan.missed_to
        actions.append(
            Action(
                label="",
                nominal=missed_from,
                at=now,
                run_id="",
                outcome=Outcome.MISSED,
                detail=f"{missed} nominal times from {_minute(missed_from)} to "
                f"{_minute(plan.missed_to)} were missed (more than {record.spec.catchup_window:g}s late)",
            )
        )
        log.warning(
            "schedule %s missed %d nominal times (no worker fired them within %gs)",
            record.key,
            missed,
            record.spec.catchup_window,
        )
    after = store.schedules.advance(record, plan.following, actions, **counts(actions), missed=missed)
    store.requests.complete(request)
    if after is None:
        return []
    log.info(
        "fired schedule %s: %s; next at %s",
        record.key,
        ", ".join(f"{a.label or 'missed'} {a.outcome.value}" for a in actions) or "nothing due",
        after.next.fire_at.isoformat() if after.next else "never (completed)",
    )
    return actions


def launched_already(store: Store, record: ScheduleRecord, plan: CatchUp) -> list[Nominal]:
    """The oldest missed times that an earlier fire of the pending time launched before it could
    move the schedule on (a crash or an outage came between): they count as launched, not missed.
    That fire launched in order from the pending time, so they are the first of the missed times."""
    spec, pending = record.spec, record.next
    if pending is None or plan.missed_to is None:
        return []
    first = Nominal(pending.label, pending.nominal)
    candidates = [first, *later_nominals(spec, first, plan.missed_to, MAX_CATCHUP_FIRES - 1)]
    candidates = [nominal for nominal in candidates if nominal.at < plan.missed_to][: plan.missed]
    run_ids = [run_id_for(spec.scope_id, spec.name, nominal.label) for nominal in candidates]
    known = store.runs.existing(run_ids)
    process = store.processes.get(spec.scope_id, spec.process_id)
    if process is not None:
        known |= {process.launch_id, *(queued.run_id for queued in process.queue)}
    launched = []
    for nominal, run_id in zip(candidates, run_ids, strict=True):
        if run_id not in known:
            break
        launched.append(nominal)
    return launched


def fire_once(
    store: Store,
    schedule: ScheduleRecord,
    label: str,
    nominal: datetime | None,
    now: datetime,
    fire_at: datetime | None = None,
) -> Action:
    """One nominal time (or a trigger): launch it under the overlap policy. Launched again, the
    same label finds its run launched already and reports it so."""
    spec = schedule.spec
    run_id = run_id_for(spec.scope_id, spec.name, label)

    def action(outcome: Outcome, detail: str = "") -> Action:
        return Action(label=label, nominal=nominal, at=now, run_id=run_id, outcome=outcome, detail=detail)

    record = store.processes.get(spec.scope_id, spec.process_id)
    if record is None:
        return action(
            Outcome.FAILED, f"process {spec.process_id!r} is not defined in scope {spec.scope_id!r}"
        )
    if record.launch_id == run_id or store.runs.get(run_id) is not None:
        return action(Outcome.LAUNCHED, "launched already")
    if any(queued.run_id == run_id for queued in record.queue):
        return action(Outcome.QUEUED, "queued already")
    active = record.state in ACTIVE
    decision = decide_overlap(
        spec.overlap, active=active, queued=len(record.queue), buffer_limit=spec.buffer_limit
    )
    if decision.outcome is Outcome.SKIPPED:
        why = (
            f"run {record.run_id} was {record.state.value}"
            if not record.queue
            else f"{len(record.queue)} launches already wait behind run {record.run_id}"
        )
        return action(Outcome.SKIPPED, f"{why} ({spec.overlap.value})")
    # What the run carries of its schedule: pauseOnFailure finds it, the worker measures the lag.
    options = {**spec.options, "schedule": schedule.key, "nominal": label, "fireAt": to_ms(fire_at or now)}
    try:
        launched = launches.launch(
            store,
            spec.scope_id,
            spec.process_id,
            run_id,
            args=spec.args,
            options=options,
            confirm=spec.confirm,
            queue_limit=decision.queue_limit,
            known=True,
            request_id=run_id,  # the worker that fires takes it by this id at once, if it can
        )
    except ConfirmationRequired as error:
        return action(Outcome.FAILED, str(error))
    except ProcessActive as error:  # became active, or the buffer filled, meanwhile
        return action(Outcome.SKIPPED, str(error))
    except ShardsError as error:
        return action(Outcome.FAILED, str(error))
    if launched is None:
        return action(
            Outcome.FAILED, f"process {spec.process_id!r} is not defined in scope {spec.scope_id!r}"
        )
    if decision.stop_active and launched.queued:
        with contextlib.suppress(ShardsError):  # it ended meanwhile: the queued launch starts anyway
            launches.stop(store, launched.record, force=decision.force)
    return action(
        Outcome.QUEUED if launched.queued else Outcome.LAUNCHED,
        f"behind run {launched.record.run_id}" if launched.queued else "",
    )


def counts(actions: list[Action]) -> dict[str, int]:
    return {
        "skipped": sum(a.outcome is Outcome.SKIPPED for a in actions),
        "launched": sum(a.outcome in (Outcome.LAUNCHED, Outcome.QUEUED) for a in actions),
    }


def _minute(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ") if at else "?"
