"""The reconciler: every active record has a live owner, or it is settled (see shards.ownership).

Every worker runs one on its heartbeat thread: all of them watch the others' heartbeats (any may
reap a silent worker), and the first worker in line also looks at every active record for an
owner (shards_worker.heartbeat). The operator runs one too (shards_operator.reconciler), so
stranded records are settled even when no worker is left. Its writes are guarded on what it
read, so several reconcilers at once settle each thing exactly once, and a run that started or
moved on meanwhile is never touched. Plain logic over the store: here so that the worker and the
operator share it (neither imports the other).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from shards.errors import StoreUnavailable
from shards.ownership import SilenceWatch, is_owned, orphan_verdict
from shards.records import ProcessRecord, ProcessStatus, WorkerRecord, utcnow
from shards.requests import Request, RequestKind, RequestState
from shards.retries import Cause, plan_retry
from shards.states import EXECUTING, FINAL, State

from shards_store.store import Store
from shards_store.workers import ALIVE, GONE, LOST, REPLACED

log = logging.getLogger("shards.reconciler")

OVERDUE = 30.0  # seconds past a schedule's fire time before the reconciler arms it again


class Reconciler:
    def __init__(
        self,
        store: Store,
        *,
        orphan_grace: float,
        me: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.orphan_grace = orphan_grace  # how long a record may lack an owner (a launch in flight)
        self.me = me  # this worker's own id: it never judges itself
        self._clock = clock
        self._beats = SilenceWatch()
        self._orphans = SilenceWatch()
        self._waiting = SilenceWatch()  # launches not started yet, by run id
        self._queues = SilenceWatch()  # ended records with launches queued behind them
        self._entries = SilenceWatch()  # history entries Running that no active record names
        self._last_pass: float | None = None
        self.live_workers: list[WorkerRecord] = []  # as the last pass saw them
        self._cut_off = False  # set by forget(), from any thread

    def forget(self) -> None:
        """After this observer could not reach MongoDB: what it saw before proves nothing (the
        others could not beat either). Safe from any thread: the next pass starts afresh."""
        self._cut_off = True

    def reconcile(self, max_gap: float, *, settle_orphans: bool = True) -> list[str]:
        """One pass; returns the ids of the workers and runs it settled. A pass more than
        max_gap seconds after the last one starts its observations afresh (it may have been cut
        off meanwhile). Every worker watches the others' heartbeats (any may reap a silent one
        and settle its runs); settle_orphans=False skips the look at every active record,
        which one worker at a time does (see Heartbeat.beat). Raises StoreUnavailable."""
        now = self._clock()
        if self._cut_off or (self._last_pass is not None and now - self._last_pass > max_gap):
            self._cut_off = False
            for watch in (self._beats, self._orphans, self._waiting, self._queues, self._entries):
                watch.forget()
        try:
            alive = self.store.workers.alive()
            reaped = self._reap_silent(alive, now)
            live = {worker.worker_id for worker in alive} - set(reaped)
            self.live_workers = [worker for worker in alive if worker.worker_id in live]
            if settle_orphans:
                settled = self._settle_orphans(live, now)
                settled += self._schedule_stranded_queues(now)
                self._arm_overdue_schedules()
            else:  # observations must be continuous to count: start afresh when elected again
                settled = []
                for watch in (self._orphans, self._waiting, self._queues, self._entries):
                    watch.forget()
        except StoreUnavailable:
            self.forget()
            raise
        self._last_pass = now
        return reaped + settled

    def _reap_silent(self, alive: list[WorkerRecord], now: float) -> list[str]:
        """Declare lost the workers whose heartbeat counter stood still for a whole lease of
        theirs, watched by this reconciler while it could reach MongoDB all along."""
        reaped = []
        for worker in alive:
            if worker.worker_id == self.me:
                continue
            if self._beats.unchanged_for(worker.worker_id, worker.beat, now) < worker.lease:
                continue
            reason = f"worker {worker.worker_id} was lost (no heartbeat for {worker.lease:g}s)"
            if self.store.workers.retire(worker.worker_id, LOST, reason, beat=worker.beat):
                log.warning("%s", reason)
                settle_worker(self.store, worker.worker_id, reason)
                reaped.append(worker.worker_id)
        self._beats.keep_only(worker.worker_id for worker in alive)
        return reaped

    def _settle_orphans(self, live: set[str], now: float) -> list[str]:
        active = self.store.processes.active()
        # A launch is looked up only once it was seen waiting by an earlier pass: under load
        # nearly every launch starts before the next pass, and is never looked up at all.
        unstarted = [record for record in active if not record.worker_id]
        waiting = {r.run_id for r in unstarted if self._waiting.unchanged_for(r.run_id, r.state, now) > 0}
        self._waiting.keep_only(record.run_id for record in unstarted)
        queued = self._queued_runs(self.store.requests.for_runs(sorted(waiting)), live)
        queued.update(r.run_id for r in unstarted if r.run_id not in waiting)
        orphans = [r for r in active if not is_owned(r, live_workers=live, queued_runs=queued)]
        settled = []
        ends: dict[str, WorkerRecord | None] = {}
        for record in orphans:
            # A new state or worker restarts the grace: only a record that stays ownerless counts.
            seen = (record.state, record.worker_id)
            if self._orphans.unchanged_for(record.run_id, seen, now) < self.orphan_grace:
                continue
            if record.worker_id and record.worker_id not in ends:
                ends[record.worker_id] = self.store.workers.get(record.worker_id)
            worker = ends.get(record.worker_id)
            # A worker that left (shut down) before its run ended hands the run off, if its
            # process says so; any other worker that went away lost it.
            handoff = worker is not None and worker.state == GONE and record.policy.on_shutdown == "retry"
            if settle_record(self.store, record, worker.end_reason if worker else "",
                             Cause.HANDOFF if handoff else Cause.WORKER_LOST):
                settled.append(record.run_id)
        self._orphans.keep_only(record.run_id for record in orphans)
        self._end_stale_entries({record.run_id for record in active}, now)
        return settled

    def _end_stale_entries(self, named: set[str], now: float) -> None:
        """History entries left Running by a worker killed between a run's two end writes (the
        record's, then the entry's): once no active record has named the run for a while, the
        entry gets the record's end (or, if the record moved on, a failure saying so)."""
        stale = [entry for entry in self.store.runs.executing() if entry.run_id not in named]
        self._entries.keep_only(entry.run_id for entry in stale)
        for entry in stale:
            if self._entries.unchanged_for(entry.run_id, entry.state, now) < self.orphan_grace:
                continue
            record = self.store.processes.get(entry.scope_id, entry.process_id)
            if record is not None and record.run_id == entry.run_id and record.state not in FINAL:
                continue  # started since the pass read the active records
            if record is not None and record.run_id == entry.run_id:
                status = record.status
            else:
                status = ProcessStatus.ended(
                    State.FAILED, running_since=entry.started_at,
                    error="its end was not recorded (its worker went away as it ended)")
            self.store.runs.ended(entry.run_id, entry.scope_id, entry.process_id, status,
                                  launch_id=entry.launch_id, attempt=entry.attempt)
            log.warning("ended the history entry of run %s (%s): %s", entry.run_id,
                        status.state.value, status.error or "as its record says")

    def _schedule_stranded_queues(self, now: float) -> list[str]:
        """Records whose run ended while launches waited behind it, left so for a while: the
        writer of the end died before it scheduled the next one. Returns the runs scheduled."""
        ended = self.store.processes.ended_with_queue()
        self._queues.keep_only(record.run_id for record in ended)
        scheduled = []
        for record in ended:
            seen = (record.state, len(record.queue))
            if self._queues.unchanged_for(record.run_id, seen, now) < self.orphan_grace:
                continue
            if (moved := self.store.schedule_queued(record)) is not None:
                scheduled.append(moved.run_id)
        return scheduled

    def _arm_overdue_schedules(self) -> None:
        """Schedules whose next fire is long overdue: their fire request was lost (a writer died
        between the schedule's write and the request's). Arming adds nothing when it is there."""
        for record in self.store.schedules.overdue(utcnow() - timedelta(seconds=OVERDUE)):
            if self.store.schedules.arm(record):
                log.warning("schedule %s had no fire request for its next time; armed it again", record.key)

    def _queued_runs(self, requests: list[Request], live: set[str]) -> set[str]:
        """Runs whose launch request is pending, or taken by a live worker. A launch taken by a
        worker that is gone goes back to the queue (any worker may start it)."""
        queued = set()
        for request in requests:
            if request.kind != RequestKind.LAUNCH:
                continue
            taker_gone = request.state == RequestState.TAKEN and request.taken_by not in live and (
                # not in this pass's list: gone, or registered since (then it is Alive)
                (taker := self.store.workers.get(request.taken_by)) is None or taker.state != ALIVE
            )
            if taker_gone:
                self.store.requests.release(request)
            queued.add(request.run_id)
        return queued


def settle_record(
    store: Store, record: ProcessRecord, worker_end: str = "", cause: Cause | None = None
) -> bool:
    """End an active record that has no owner, if it is still as it was read. A run that was
    Running when its worker went away (`cause`) is retried if its launch allows it."""
    verdict = orphan_verdict(record, worker_end)
    status = ProcessStatus.ended(verdict.state, error=verdict.error,
                                 running_since=record.status.running_since)
    retry = None
    if cause is not None and record.worker_id and record.state is State.RUNNING:
        retry = plan_retry(record.launch_state(), cause, verdict.error)
    if retry is not None and store.retry_run(record, status, retry) is not None:
        log.warning("settled run %s (%s): %s; %s", record.run_id, _named(record), verdict.error,
                    retry.message)
        return True
    if store.end_run(record, status, only_from_seen_state=True) is None:
        return False
    log.warning("settled run %s (%s): ended %s: %s", record.run_id, _named(record), verdict.state.value,
                verdict.error or "stopped before it started")
    return True


def _named(record: ProcessRecord) -> str:
    return f"scope={record.scope_id} process={record.process_id}"


def settle_worker(store: Store, worker_id: str, reason: str) -> None:
    """What a worker that is gone held: its runs fail with `reason`; launches it took but never
    started go back to the queue; stops addressed to it have nothing left to stop."""
    for record in store.processes.executing_on(worker_id, EXECUTING):
        settle_record(store, record, reason, Cause.WORKER_LOST)
    for request in store.requests.taken_by(worker_id):
        current = store.processes.get(request.scope_id, request.process_id)
        not_started = (
            current is not None
            and current.run_id == request.run_id
            and current.state in (State.SCHEDULED, State.STOP_REQUESTED)
            and not current.worker_id
        )
        if request.kind in (RequestKind.DEFINE, RequestKind.FIRE) or (
                request.kind == RequestKind.LAUNCH and not_started):
            store.requests.release(request)
        else:
            store.requests.complete(request)
    store.requests.drop_addressed_to(worker_id)


def replace_predecessors(store: Store, name: str, worker_id: str) -> list[str]:
    """A worker restarted under the same name: the incarnations before it are dead (a name
    belongs to one running worker), so what they held is settled now, not after a lease."""
    replaced = []
    for old in store.workers.named(name):
        if old.worker_id == worker_id:
            continue
        reason = f"worker {old.worker_id} was replaced by a restart of {name}"
        if store.workers.retire(old.worker_id, REPLACED, reason):
            log.warning("%s", reason)
            settle_worker(store, old.worker_id, reason)
            replaced.append(old.worker_id)
    return replaced
