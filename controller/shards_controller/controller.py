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
from collections.abc import Callable, Iterable
from typing import Any

from shards.errors import (
    ConfirmationRequired,
    NotActive,
    NoWorker,
    ProcessActive,
    ShardsError,
    StoreUnavailable,
    TimedOut,
    UnknownProcess,
    UnknownRun,
    UnknownScope,
)
from shards.records import LaunchSpec, ProcessRecord, RunRecord, ScopeRecord, WorkerRecord
from shards.requests import Request, RequestKind
from shards.runlog import RunLog
from shards.states import ACTIVE, FINAL, State
from shards_store import Store

from shards_controller.inputs import check_args, check_id, launch_options


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
    ) -> ProcessRecord:
        """Launch a run: two round trips, a guarded schedule and its request (the worker that
        starts it writes the history entry). With a caller's run_id the launch is idempotent:
        launching the same run id again (a retry, a replayed event, a second operator) never
        runs it twice, and finishes a launch that was cut short; that costs one more point read.
        require_worker refuses (NoWorker) when no live worker offers the process, instead of
        leaving it Scheduled. timeout: each attempt's time limit in seconds; retries: failed
        attempts run again this many times, the first after about retry_backoff seconds (each
        else the process's own; see shards.retries)."""
        args = check_args(args)
        options = launch_options(timeout, retries, retry_backoff)
        if run_id is not None:
            check_id("run", run_id)
            if self.store.runs.get(run_id) is not None:
                return self.get(scope_id, process_id)  # that run happened already
        if require_worker:
            pool = self.get(scope_id, process_id).pool  # an unknown process says so first
            if not self.offered(process_id, pool):
                raise NoWorker(no_worker_message(process_id, pool))
        new_run_id = run_id or uuid.uuid4().hex
        for _attempt in range(3):  # the record may move between a failed guard and the look
            scheduled = self.store.processes.schedule(scope_id, process_id, new_run_id, confirmed=confirm,
                                                      launch=LaunchSpec(args, options))
            if scheduled is not None:
                previous, record = scheduled
                self._queue(previous, record, args, options)
                return record
            record = self.get(scope_id, process_id)  # why the guard failed (unknown raises)
            if run_id is not None and record.launch_id == run_id:
                return self._finish_launch(record, args, options)
            if record.warning and not confirm:
                raise ConfirmationRequired(
                    f"process {process_id!r} needs confirmation: {record.warning} (launch with --confirm)"
                )
            if record.state in ACTIVE:
                raise ProcessActive(
                    f"process {process_id!r} in scope {scope_id!r} is already active ({record.state.value})"
                )
        raise ShardsError(f"could not launch {process_id!r} in scope {scope_id!r}; try again")

    def _queue(self, previous: ProcessRecord, scheduled: ProcessRecord, args: dict[str, Any],
               options: dict[str, Any]) -> None:
        """Back a new Scheduled record with its request; if that fails, undo the schedule."""
        try:
            self._request(scheduled, args, options)
        except Exception as error:
            # Never a Scheduled record that no request backs: give the record back what it had.
            # If that fails too, the reconciler settles it once it has had no owner for a while.
            with contextlib.suppress(StoreUnavailable):
                self.store.processes.unschedule(previous, scheduled.run_id)
            if isinstance(error, ShardsError):
                raise
            first_line = (str(error).splitlines() or [type(error).__name__])[0][:200]
            raise ShardsError(f"the launch could not be queued: {first_line}") from error

    def _finish_launch(self, record: ProcessRecord, args: dict[str, Any],
                       options: dict[str, Any]) -> ProcessRecord:
        """The record already names this run: queue its request if the launch was cut short
        between its two writes; otherwise there is nothing to do."""
        unstarted = record.state is State.SCHEDULED and not record.worker_id
        if unstarted and not self.store.requests.for_runs([record.run_id]):
            self._request(record, args, options)
        return record

    def _request(self, scheduled: ProcessRecord, args: dict[str, Any], options: dict[str, Any]) -> None:
        self.store.requests.submit(Request(
            kind=RequestKind.LAUNCH, scope_id=scheduled.scope_id, process_id=scheduled.process_id,
            run_id=scheduled.run_id, args=args, pool=scheduled.pool, options=options,
        ))

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
        a forced stop of a run already stopping is sent again, forced."""
        record = self.get(scope_id, process_id)
        if record.state is State.SCHEDULED and (launch := self.store.requests.withdraw_launch(record.run_id)):
            return self.store.end_unstarted(record, request=launch) or self.get(scope_id, process_id)
        if record.state in (State.STOP_REQUESTED, State.STOPPING):
            if force and record.worker_id and not self._forced(record.run_id):
                self._request_stop(record, force)
            return record
        if record.state in FINAL or record.state is State.IDLE:
            raise NotActive(
                f"process {process_id!r} in scope {scope_id!r} is not active ({record.state.value})"
            )
        requested = self.store.processes.move(
            scope_id, process_id, State.STOP_REQUESTED, run_id=record.run_id
        )
        if requested is None:  # it moved on meanwhile (finished, or started): look again
            return self._retry_stop(scope_id, process_id, record, force)
        if requested.worker_id:
            self._request_stop(requested, force)
        # Without a worker id the launch is being taken right now: the taker sees StopRequested.
        return requested

    def _forced(self, run_id: str) -> bool:
        """A forced stop of this run is on its way already (a repeated force adds nothing)."""
        return any(r.kind == RequestKind.STOP and r.options.get("force")
                   for r in self.store.requests.for_runs([run_id]))

    def _request_stop(self, record: ProcessRecord, force: bool) -> None:
        self.store.requests.submit(Request(
            kind=RequestKind.STOP, scope_id=record.scope_id, process_id=record.process_id,
            run_id=record.run_id, target_worker=record.worker_id, options={"force": force} if force else {},
        ))

    def _retry_stop(self, scope_id: str, process_id: str, seen: ProcessRecord, force: bool) -> ProcessRecord:
        current = self.get(scope_id, process_id)
        if current.state == seen.state and current.run_id == seen.run_id:
            raise ShardsError(f"could not stop {process_id!r} in scope {scope_id!r}; try again")
        return self.stop(scope_id, process_id, force=force)

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
