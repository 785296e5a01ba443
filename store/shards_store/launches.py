"""Launches: a run Scheduled on its record with the request that backs it, idempotent by the run
id; or, asked to queue, a launch that waits behind the active run and is scheduled once that run
ends. The controller launches through here, and so do workers firing schedules."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shards.errors import ConfirmationRequired, NotActive, ProcessActive, ShardsError, StoreUnavailable
from shards.records import LaunchSpec, ProcessRecord, QueuedLaunch, utcnow
from shards.requests import Request, RequestKind
from shards.states import ACTIVE, State

if TYPE_CHECKING:
    from shards_store.store import Store

log = logging.getLogger("shards.store")

MAX_QUEUE = 100  # launches that may wait behind one run (`launch --queue`; a schedule's bufferLimit)


class QueueFull(ProcessActive):
    """The process is active and as many launches as allowed already wait behind it."""


@dataclass(frozen=True)
class Launched:
    record: ProcessRecord
    queued: bool = False  # waits behind the active run (record.queue names it)


def launch(
    store: Store,
    scope_id: str,
    process_id: str,
    run_id: str,
    *,
    args: dict[str, Any],
    options: dict[str, Any],
    confirm: bool = False,
    start_at: datetime | None = None,
    queue_limit: int = 0,
    known: bool = False,
    request_id: str | None = None,
) -> Launched | None:
    """Schedule run `run_id` of the process (two writes: the guarded schedule, then its request),
    or with queue_limit > 0 queue it behind an active run (one guarded write) when fewer than
    queue_limit wait there. The same run id launched again never runs twice: it finishes a launch
    cut short and otherwise changes nothing. known=True: the run id is new (no history lookup).
    None: no such process. Raises ConfirmationRequired, ProcessActive (QueueFull)."""
    if not known and store.runs.get(run_id) is not None:  # that run happened already
        record = store.processes.get(scope_id, process_id)
        return None if record is None else Launched(record)
    for _attempt in range(5):  # the record may move between a failed guard and the look
        scheduled = store.processes.schedule(
            scope_id,
            process_id,
            run_id,
            confirmed=confirm,
            launch=LaunchSpec(args, options),
            start_at=start_at,
        )
        if scheduled is not None:
            previous, record = scheduled
            _back(store, previous, record, args, options, start_at, request_id)
            return Launched(record)
        record = store.processes.get(scope_id, process_id)  # why the guard failed
        if record is None:
            return None
        if record.launch_id == run_id:
            return Launched(_finish(store, record, args, options, start_at))
        if any(queued.run_id == run_id for queued in record.queue):
            return Launched(record, queued=True)
        if record.warning and not confirm:
            raise ConfirmationRequired(
                f"process {process_id!r} needs confirmation: {record.warning} (launch with --confirm)"
            )
        if record.state in ACTIVE:
            if queue_limit <= 0:
                raise ProcessActive(
                    f"process {process_id!r} in scope {scope_id!r} is already active ({record.state.value})"
                )
            if len(record.queue) >= queue_limit:
                raise QueueFull(
                    f"process {process_id!r} in scope {scope_id!r} is active and its queue "
                    f"is full ({len(record.queue)} of {queue_limit} launches wait)"
                )
            queued = store.processes.enqueue(record, QueuedLaunch(run_id, args, options, utcnow()))
            if queued is not None:
                return Launched(queued, queued=True)
        elif record.queue:  # ended, and the launches that waited behind it come first
            store.schedule_queued(record)
    raise ShardsError(f"could not launch {process_id!r} in scope {scope_id!r}; try again")


def _back(
    store: Store,
    previous: ProcessRecord,
    scheduled: ProcessRecord,
    args: dict[str, Any],
    options: dict[str, Any],
    start_at: datetime | None,
    request_id: str | None,
) -> None:
    """Back a new Scheduled record with its request; if that fails, undo the schedule."""
    try:
        store.requests.submit(_request(scheduled, scheduled.run_id, args, options, start_at=start_at,
                                       request_id=request_id))
    except Exception as error:
        # Never a Scheduled record that no request backs: give the record back what it had.
        # If that fails too, the reconciler settles it once it has had no owner for a while.
        with contextlib.suppress(StoreUnavailable):
            store.processes.unschedule(previous, scheduled.run_id)
        if isinstance(error, ShardsError):
            raise
        first_line = (str(error).splitlines() or [type(error).__name__])[0][:200]
        raise ShardsError(f"the launch could not be queued: {first_line}") from error


def _finish(
    store: Store,
    record: ProcessRecord,
    args: dict[str, Any],
    options: dict[str, Any],
    start_at: datetime | None,
) -> ProcessRecord:
    """The record already names this run: queue its request if the launch was cut short
    between its two writes; otherwise there is nothing to do."""
    unstarted = record.state is State.SCHEDULED and not record.worker_id
    if unstarted and not store.requests.for_runs([record.run_id]):
        store.requests.submit(_request(record, record.run_id, args, options, start_at=start_at))
    return record


def _request(
    record: ProcessRecord,
    run_id: str,
    args: dict[str, Any],
    options: dict[str, Any],
    *,
    start_at: datetime | None = None,
    request_id: str | None = None,
) -> Request:
    # A delayed launch's request is created at the time it may start: no worker claims it sooner.
    return Request(
        kind=RequestKind.LAUNCH,
        scope_id=record.scope_id,
        process_id=record.process_id,
        run_id=run_id,
        args=args,
        pool=record.pool,
        options=options,
        created_at=start_at or utcnow(),
        id=request_id,
    )


def stop(store: Store, record: ProcessRecord, *, force: bool = False) -> ProcessRecord | None:
    """Stop the run of `record` (as read): withdraw a launch no worker took yet, or ask the worker
    that runs it. force: the worker kills the run at once if it runs isolated; a forced stop of a
    run already stopping is sent again, forced. Returns the record after, or None when it moved
    on meanwhile (finished, or started: the caller reads it again). Raises NotActive."""
    scope_id, process_id = record.scope_id, record.process_id
    if record.state is State.SCHEDULED and (launch := store.requests.withdraw_launch(record.run_id)):
        return store.end_unstarted(record, request=launch) or store.processes.get(scope_id, process_id)
    if record.state in (State.STOP_REQUESTED, State.STOPPING):
        if force and not record.stop_forced and (forced := store.processes.force_stop(record)):
            if forced.worker_id:
                _request_stop(store, forced, force)
            return forced
        return record
    if record.state not in ACTIVE:
        raise NotActive(f"process {process_id!r} in scope {scope_id!r} is not active ({record.state.value})")
    # A forced stop is marked on the record too: the worker's look at its own records delivers it
    # as forced if the request's event is missed (a stop that waited for the grace would not do).
    requested = store.processes.move(scope_id, process_id, State.STOP_REQUESTED, run_id=record.run_id,
                                     fields={"forcedStop": record.run_id} if force else None)
    if requested is None:
        return None
    if requested.worker_id:
        _request_stop(store, requested, force)
    # Without a worker id the launch is being taken right now: the taker sees StopRequested.
    return requested


def _request_stop(store: Store, record: ProcessRecord, force: bool) -> None:
    store.requests.submit(
        Request(
            kind=RequestKind.STOP,
            scope_id=record.scope_id,
            process_id=record.process_id,
            run_id=record.run_id,
            target_worker=record.worker_id,
            options={"force": force} if force else {},
        )
    )
