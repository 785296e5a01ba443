"""The controller API: what the CLI calls now and the Kubernetes operator calls later.

It validates, moves records with guarded writes and leaves requests for workers; it never runs
process code itself.
"""

from __future__ import annotations

import builtins
import contextlib
import difflib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from shards.errors import (
    InvalidArgs,
    InvalidDefinition,
    NoWorker,
    ProcessActive,
    ShardsError,
    TimedOut,
    UnknownProcess,
    UnknownRun,
    UnknownSchedule,
    UnknownScope,
)
from shards.records import ProcessRecord, RunRecord, ScopeRecord, WorkerRecord, utcnow
from shards.requests import Request, RequestKind
from shards.runlog import RunLog
from shards.schedules import (
    Action,
    NextFire,
    ScheduleRecord,
    ScheduleSpec,
    backfill_times,
    first_next,
    next_fire_after,
)
from shards.states import ACTIVE, FINAL, State
from shards_store import ChangeFeed, ChangeFeedError, Store, firing, launches
from shards_store.launches import MAX_QUEUE
from shards_store.schedules import ScheduleExists

from shards_controller.inputs import check_args, check_id, check_start_at, launch_options

LOG_POLL = 0.5  # seconds between reads of a followed run's log at the latest (its end is not a log change)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """" (did you mean 'x'?)" for a near miss among `known`, else ""."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_scope(scope_id: str, known: Iterable[str] = ()) -> UnknownScope:
    hint = did_you_mean(scope_id, known) or f" (define it first: shards define --scope {scope_id})"
    return UnknownScope(f"unknown scope {scope_id!r}{hint}")


def matches(
    record: ProcessRecord,
    *,
    search: str = "",
    max_detail_level: int = 4,
    include_special: bool = True,
    active_only: bool = False,
) -> bool:
    """The seed GUI's filters: search by name or id, hide details, hide special, focus on active."""
    needle = search.lower()
    return (
        (not needle or needle in record.name.lower() or needle in record.process_id.lower())
        and record.detail_level <= max_detail_level
        and (include_special or not record.special)
        and (not active_only or record.state in ACTIVE)
    )


def offers(worker: WorkerRecord, process_id: str, pool: str | None) -> bool:
    """The worker claims launches of this process (of this pool, when one is given)."""
    return (pool is None or worker.pool == pool) and (not worker.catalog or process_id in worker.catalog)


def pool_summary(workers: list[WorkerRecord], pending: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per pool (those with live workers or pending launches): workers, free slots, pending."""
    summary: dict[str, dict[str, int]] = {}
    for pool in sorted({w.pool for w in workers} | set(pending)):
        members = [w for w in workers if w.pool == pool]
        summary[pool] = {
            "workers": len(members),
            "freeSlots": sum(max(0, w.concurrency - w.running) for w in members),
            "pending": pending.get(pool, 0),
        }
    return summary


def _define_waiting(scope_id: str, request: Request | None, timeout: float) -> str:
    """Why a define is not done yet, after `timeout` seconds without news of it."""
    if request is None or not request.taken_by:
        return (f"no worker took the define of scope {scope_id!r} within {timeout:.0f}s "
                "(is a worker running?)")
    done, total = request.progress.get("done"), request.progress.get("total")
    how_far = (f"{done:,} of {total:,} processes written, none in the last {timeout:.0f}s"
               if isinstance(done, int) and isinstance(total, int) else "computing its catalog")
    return (f"worker {request.taken_by} is defining scope {scope_id!r} ({how_far}); it goes on "
            "(shards scopes shows it once defined)")


def no_worker_message(process_id: str, pool: str) -> str:
    return (f"no live worker in pool {pool!r} offers process {process_id!r}; it runs when one starts "
            f"(shards worker APP --pool {pool})")


class Controller:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._alive_seen: tuple[float, builtins.list[WorkerRecord]] = (0.0, [])  # (monotonic, workers)
        self.schedules = Schedules(self)

    # -- scopes ---------------------------------------------------------------------------
    def define(self, scope_id: str, *, only_if_missing: bool = False, clean: bool = False) -> Request:
        """Ask a worker to (re)define the scope's catalog; see wait_defined."""
        check_id("scope", scope_id)
        request = Request(
            kind=RequestKind.DEFINE,
            scope_id=scope_id,
            options={"onlyIfMissing": only_if_missing, "clean": clean},
        )
        return self.store.requests.submit(request)

    def wait_defined(self, request: Request, timeout: float = 30.0) -> ScopeRecord:
        """The scope once a worker has defined it. `timeout` bounds the wait for a worker to
        take the define and, once one has, the time without progress: a large define goes on
        as long as its batches do. TimedOut says who is on it and how far it got."""
        deadline = time.monotonic() + timeout
        delay, seen = 0.05, None
        while True:
            scope = self.store.scopes.get(request.scope_id)
            if scope is not None and scope.request_id == str(request.id):
                break
            current = self.store.requests.get(request.id)
            progress = (current.taken_by, current.progress.get("done")) if current else None
            if progress != seen and current is not None and current.taken_by:
                seen, deadline = progress, time.monotonic() + timeout
            if time.monotonic() >= deadline:
                raise TimedOut(_define_waiting(request.scope_id, current, timeout))
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        if scope.state == "Failed":
            raise ShardsError(f"defining scope {scope.scope_id!r} failed: {scope.error}")
        return scope

    # -- processes ------------------------------------------------------------------------
    def get(self, scope_id: str, process_id: str) -> ProcessRecord:
        record = self.store.processes.get(scope_id, process_id)
        if record is not None:
            return record
        in_scope = self.store.processes.in_scope(scope_id)
        if self.store.scopes.get(scope_id) is None and not in_scope:
            raise unknown_scope(scope_id, self.scope_ids())
        hint = did_you_mean(process_id, [r.process_id for r in in_scope])
        raise UnknownProcess(f"unknown process {process_id!r} in scope {scope_id!r}{hint}")

    def scope_ids(self) -> builtins.list[str]:
        return [scope.scope_id for scope in self.store.scopes.all()]

    def list(
        self,
        scope_id: str,
        *,
        search: str = "",
        max_detail_level: int = 4,
        include_special: bool = True,
        active_only: bool = False,
    ) -> list[ProcessRecord]:
        records = self.store.processes.in_scope(scope_id)
        if not records and self.store.scopes.get(scope_id) is None:
            raise unknown_scope(scope_id, self.scope_ids())
        return [
            r
            for r in records
            if matches(
                r,
                search=search,
                max_detail_level=max_detail_level,
                include_special=include_special,
                active_only=active_only,
            )
        ]

    def launch(
        self,
        scope_id: str,
        process_id: str,
        *,
        args: Any = None,
        confirm: bool = False,
        run_id: str | None = None,
        require_worker: bool = False,
        timeout: float | None = None,
        retries: int | None = None,
        retry_backoff: float | None = None,
        at: datetime | None = None,
        queue: bool = False,
    ) -> ProcessRecord:
        """Launch a run: two round trips, a guarded schedule and its request (the worker that
        starts it writes the history entry). With a caller's run_id the launch is idempotent:
        launching the same run id again (a retry, a replayed event, a second operator) never
        runs it twice, and finishes a launch that was cut short; that costs one more point read.
        require_worker refuses (NoWorker) when no live worker offers the process, instead of
        leaving it Scheduled. timeout: each attempt's time limit in seconds; retries: failed
        attempts run again this many times, the first after about retry_backoff seconds (each
        else the process's own; see shards.retries). at: a delayed launch, Scheduled until then
        (no worker claims it sooner). queue: while the process is active, wait behind its run
        (at most MAX_QUEUE launches) instead of being refused."""
        args = check_args(args)
        options = launch_options(timeout, retries, retry_backoff)
        start_at = check_start_at(at)
        if start_at is not None and queue:
            raise ShardsError("a launch waits either for a time (--at, --in) or behind the active run "
                              "(--queue), not both")
        if run_id is not None:
            check_id("run", run_id)
        if require_worker:
            pool = self.get(scope_id, process_id).pool  # an unknown process says so first
            if not self.offered(process_id, pool):
                raise NoWorker(no_worker_message(process_id, pool))
        launched = launches.launch(
            self.store, scope_id, process_id, run_id or uuid.uuid4().hex, args=args, options=options,
            confirm=confirm, start_at=start_at, queue_limit=MAX_QUEUE if queue else 0,
            known=run_id is None)
        if launched is None:
            return self.get(scope_id, process_id)  # raises: unknown scope or process
        return launched.record

    def offered(self, process_id: str, pool: str | None = None) -> bool:
        """A live worker (of the pool, if given) offers the process (a worker with per-scope
        catalogs offers any of its pool's)."""
        return any(offers(worker, process_id, pool) for worker in self.store.workers.alive())

    def waiting_reasons(
        self, records: builtins.list[ProcessRecord], max_age: float = 0.0
    ) -> dict[str, str]:
        """Why Scheduled records wait, by process id: no live worker of their pool offers them
        (they run when one starts). One registry read, only if any record is Scheduled, and
        none when the last one is younger than max_age seconds."""
        waiting = [r for r in records if r.state is State.SCHEDULED and not r.worker_id]
        if not waiting:
            return {}
        read_at, alive = self._alive_seen
        if max_age <= 0 or time.monotonic() - read_at > max_age:
            alive = self.store.workers.alive()
            self._alive_seen = (time.monotonic(), alive)
        return {record.process_id: no_worker_message(record.process_id, record.pool) for record in waiting
                if not any(offers(worker, record.process_id, record.pool) for worker in alive)}

    def stop(self, scope_id: str, process_id: str, *, force: bool = False) -> ProcessRecord:
        """Stop a scheduled or running process; the stop reaches the worker that runs it.
        force: the worker kills the run at once if it runs isolated (else it is asked to stop);
        a forced stop of a run already stopping is sent again, forced. Launches queued behind
        the run start once it has stopped."""
        for _attempt in range(3):  # it may move on meanwhile (finish, or start): look again
            record = self.get(scope_id, process_id)
            stopped = launches.stop(self.store, record, force=force)
            if stopped is not None:
                return stopped
        raise ShardsError(f"could not stop {process_id!r} in scope {scope_id!r}; try again")

    def dismiss(self, scope_id: str, process_id: str) -> ProcessRecord:
        """Clear error and progress; back to Idle."""
        record = self.get(scope_id, process_id)
        if record.state in (State.STOP_REQUESTED, State.STOPPING):
            raise ProcessActive(
                f"process {process_id!r} in scope {scope_id!r} is {record.state.value}; dismiss it once "
                f"it has stopped (shards wait {process_id} --scope {scope_id})"
            )
        if record.state in ACTIVE:
            raise ProcessActive(
                f"process {process_id!r} in scope {scope_id!r} is {record.state.value}; stop it first "
                f"(shards stop {process_id} --scope {scope_id} --wait)"
            )
        dismissed = self.store.processes.dismiss(scope_id, process_id)
        return dismissed or self.get(scope_id, process_id)

    def history(self, scope_id: str, process_id: str, limit: int = 20) -> builtins.list[RunRecord]:
        self.get(scope_id, process_id)
        return self.store.runs.of_process(scope_id, process_id, limit)

    def runs_since(self, scope_id: str, since: datetime, limit: int = 500) -> builtins.list[RunRecord]:
        """The runs of every process of a scope requested at `since` or later, newest first, at
        most `limit`; an unknown scope says so, as list() does."""
        runs = self.store.runs.of_scope_since(scope_id, since, limit)
        known = runs or self.store.scopes.get(scope_id) is not None or self.store.processes.in_scope(scope_id)
        if not known:
            raise unknown_scope(scope_id, self.scope_ids())
        return runs

    def run_logs(self, scope_id: str, process_id: str, run_id: str | None = None) -> RunLog:
        """A run's log (default: the process's latest run): its last lines, how many earlier
        ones were dropped, and whether the run is still going (more lines may come)."""
        if run_id:
            run = self.store.runs.get(run_id)
            if run is None or (run.scope_id, run.process_id) != (scope_id, process_id):
                self.get(scope_id, process_id)  # an unknown scope or process says so first
                raise UnknownRun(f"no run {run_id!r} of process {process_id!r} in scope {scope_id!r} "
                                 f"(its runs: shards history {process_id} --scope {scope_id})")
        else:
            latest = self.history(scope_id, process_id, 1)
            if not latest:
                raise UnknownRun(f"process {process_id!r} in scope {scope_id!r} has no runs yet")
            run = latest[0]
        lines, dropped = self.store.runlogs.get(run.run_id) or ([], 0)
        return RunLog(run.run_id, scope_id, process_id, run.state.value, active=run.state not in FINAL,
                      lines=lines, dropped=dropped)

    def follow_log(self, log: RunLog, timeout: float, poll: float = LOG_POLL) -> Iterator[RunLog]:
        """The run's log read again each time it may have changed, until the run ends (the last
        log yielded is no longer active) or `timeout` passes (it still is). Woken by a change
        stream on the log; the run's end is no change of its log, so the log is read at least
        every `poll` seconds, and only on that timer where the server has no change streams."""
        deadline = time.monotonic() + timeout
        opening = self.store.runlogs.feed(log.run_id)
        try:
            opening.open()
            feed: ChangeFeed | None = opening
        except ChangeFeedError:
            feed = None
        try:
            while log.active and (left := deadline - time.monotonic()) > 0:
                if feed is None:
                    time.sleep(min(poll, left))
                else:
                    try:
                        feed.next_change(min(poll, left))
                    except ChangeFeedError:  # a stream that broke or ended: read on the timer from now on
                        feed.close()
                        feed = None
                log = self.run_logs(log.scope_id, log.process_id, log.run_id)
                yield log
        finally:
            if feed is not None:
                feed.close()

    def wait(
        self,
        scope_id: str,
        process_id: str,
        until: Callable[[ProcessRecord], bool],
        timeout: float,
    ) -> ProcessRecord:
        """Bounded wait for a record condition (used by `launch --wait` and tests)."""
        record = _wait(
            lambda: self.get(scope_id, process_id),
            until,
            timeout,
            f"process {process_id!r} in scope {scope_id!r} did not get there within {timeout:.0f}s",
        )
        assert record is not None
        return record


def _wait(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise TimedOut(message)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


class Schedules:
    """The controller's schedules: create, change, pause, trigger, backfill, delete. Workers fire
    them (shards_store.firing); this validates and writes, guarded on each schedule's generation."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.store = controller.store

    def get(self, scope_id: str, name: str) -> ScheduleRecord:
        record = self.store.schedules.get(scope_id, name)
        if record is None:
            hint = did_you_mean(name, [r.spec.name for r in self.store.schedules.all(scope_id)])
            raise UnknownSchedule(f"unknown schedule {name!r} in scope {scope_id!r}{hint}")
        return record

    def list(self, scope_id: str | None = None) -> builtins.list[ScheduleRecord]:
        return self.store.schedules.all(scope_id)

    def check(self, spec: ScheduleSpec) -> ScheduleSpec:
        """The spec, checked (one line for the first thing wrong), naming a defined process."""
        try:
            checked = spec.check()
            check_args(spec.args)
        except InvalidDefinition as error:
            raise InvalidArgs(str(error)) from None
        self.controller.get(spec.scope_id, spec.process_id)  # unknown scope or process says so
        return checked

    def create(self, spec: ScheduleSpec, *, paused: bool = False, note: str = "") -> ScheduleRecord:
        return self.store.schedules.create(self.check(spec), paused=paused, note=note)

    def apply(self, spec: ScheduleSpec) -> ScheduleRecord:
        """Create the schedule, or give it this spec (its next time counts from now; what it
        did so far is kept). The same spec again changes nothing."""
        checked = self.check(spec)
        for _attempt in range(3):
            current = self.store.schedules.get(spec.scope_id, spec.name)
            if current is None:
                with contextlib.suppress(ScheduleExists):
                    return self.store.schedules.create(checked)
                continue
            if current.spec == checked:
                return current
            if (changed := self.store.schedules.change(current, spec=checked)) is not None:
                return changed
        raise ShardsError(f"schedule {spec.name!r} changed meanwhile; try again")

    def pause(self, scope_id: str, name: str, note: str = "") -> ScheduleRecord:
        return self._set_paused(scope_id, name, True, note or "paused")

    def unpause(self, scope_id: str, name: str, note: str = "") -> ScheduleRecord:
        """Times that passed while paused are not fired: the next one counts from now."""
        return self._set_paused(scope_id, name, False, note)

    def _set_paused(self, scope_id: str, name: str, paused: bool, note: str) -> ScheduleRecord:
        for _attempt in range(3):
            current = self.get(scope_id, name)
            if current.paused == paused and current.note == note:
                return current
            if (changed := self.store.schedules.change(current, paused=paused, note=note)) is not None:
                return changed
        raise ShardsError(f"schedule {name!r} changed meanwhile; try again")

    def trigger(self, scope_id: str, name: str) -> Action:
        """Launch now, under the overlap policy; the schedule's next time does not move."""
        record = self.get(scope_id, name)
        now = utcnow()
        label = f"trigger-{now.strftime('%Y%m%dT%H%M%S%fZ')}"
        action = firing.fire_once(self.store, record, label, None, now)
        self._note(record, [action])
        return action

    def backfill(self, scope_id: str, name: str, start: datetime, end: datetime) -> builtins.list[Action]:
        """Fire the nominal times from start (excluded) to end (included), in order, under the
        overlap policy; times fired before (by the schedule or a backfill) launch nothing again.
        At most MAX_BACKFILL times: a longer range is refused, and nothing is fired."""
        record = self.get(scope_id, name)
        try:
            nominals = backfill_times(record.spec, start, end)
        except InvalidDefinition as error:
            raise InvalidArgs(str(error)) from None
        now = utcnow()
        actions = [firing.fire_once(self.store, record, n.label, n.at, now) for n in nominals]
        self._note(record, actions)
        return actions

    def _note(self, record: ScheduleRecord, actions: builtins.list[Action]) -> None:
        for _attempt in range(3):
            if self.store.schedules.note_actions(record, actions, **firing.counts(actions)):
                return
            record = self.get(record.spec.scope_id, record.spec.name)

    def delete(self, scope_id: str, name: str) -> ScheduleRecord:
        """Remove the schedule: no time fires after this. Its runs are not touched."""
        record = self.get(scope_id, name)
        self.store.schedules.delete(record)
        return record

    def preview(self, spec: ScheduleSpec, count: int = 5,
                after: datetime | None = None) -> builtins.list[NextFire]:
        """The next `count` fires of a spec (checked), from `after` (default now)."""
        try:
            checked = spec.check()
        except InvalidDefinition as error:
            raise InvalidArgs(str(error)) from None
        fires: builtins.list[NextFire] = []
        fire = first_next(checked, after or utcnow())
        while fire is not None and len(fires) < max(0, min(count, 1000)):
            fires.append(fire)
            fire = next_fire_after(checked, fire)
        return fires
