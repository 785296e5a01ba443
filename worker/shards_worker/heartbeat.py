"""The heartbeat: renew the lease, write progress, log lines and unrecorded ends, and keep the
invariant (every active record has a live owner) with the reconciler; until the worker leaves."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shards.errors import StoreUnavailable
from shards.requests import RequestKind
from shards.retries import Cause
from shards.states import State
from shards_store import Store
from shards_store.reconciler import Reconciler, settle_record
from shards_store.store import CLOCK_SYNC_INTERVAL

from shards_worker import metrics
from shards_worker.connectivity import Connectivity
from shards_worker.lease import Lease
from shards_worker.ledger import Ledger
from shards_worker.offers import Offers
from shards_worker.policing import Policing
from shards_worker.settings import WorkerSettings
from shards_worker.state import WorkerState

log = logging.getLogger("shards.worker")


class Heartbeat:
    def __init__(self, store: Store, settings: WorkerSettings, state: WorkerState, ledger: Ledger,
                 policing: Policing, reconciler: Reconciler, offers: Offers, lease: Lease,
                 connectivity: Connectivity, rejoin: Callable[[float], None]) -> None:
        self.store = store
        self.settings = settings
        self.state = state
        self.ledger = ledger
        self.policing = policing
        self.reconciler = reconciler
        self.offers = offers
        self.lease = lease
        self.connectivity = connectivity
        self.rejoin = rejoin  # register a new incarnation (sent at: this monotonic time)
        self._next_watch = 0.0  # monotonic: when a worker that does not lead next reconciles
        self._unheld_launches: set[str] = set()  # seen taken by this worker but not held

    def beat_until_closed(self) -> None:
        """The heartbeat thread, through the worker's shutdown until it leaves."""
        settings = self.settings
        next_beat = 0.0
        while not self.state.closed.wait(settings.progress_interval):
            try:
                self.ledger.flush_endings()
                metrics.PROGRESS_WRITES.inc(self.ledger.flush_progress())
                metrics.LOG_WRITES.inc(self.ledger.flush_logs())
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + settings.heartbeat_interval
                    self.beat()
                self.connectivity.ok()
            except StoreUnavailable as error:
                self.connectivity.failed(error)
            except Exception:  # a bug must not end the heartbeat
                log.exception("heartbeat failed")

    def beat(self) -> None:
        state = self.state
        sent = time.monotonic()
        if not self.store.workers.heartbeat(state.id, len(self.ledger.executions())):
            if state.stopping.is_set():
                return
            if not self.ledger.executions():
                # Reaped while cut off (a whole lease: the fence ended its runs, the reaper handed
                # them off): nothing of it executes, so it comes back as a new incarnation.
                self.rejoin(sent)
                return
            log.error("%s was declared lost by another worker while runs execute; shutting down", state.id)
            state.stopping.set()
            self.policing.stop_all()
            return
        self.lease.renewed(sent)
        self.store.sync_clock(at_most_every=CLOCK_SYNC_INTERVAL)  # clocks drift: measured now and then
        # A renewal sent long ago (a slow beat after an outage) may already be half a lease old:
        # claiming again now would only stop the runs it claims a moment later.
        if state.fenced.is_set() and not self.lease.runs_must_stop():
            state.fenced.clear()
            log.info("lease renewed; claiming again")
        # The first worker in line reconciles every beat; the others watch the registry less
        # often (they can still reap a silent worker, the first one included) and check their
        # own records as often as they sweep: the cost of idle workers stays small.
        now, leads = time.monotonic(), self.offers.leads()
        if not leads and now < self._next_watch:
            return
        self._next_watch = now + min(self.settings.sweep_interval, self.settings.lease / 4)
        if state.may_own_records or self.ledger.executions():
            state.may_own_records = self.check_own()
        settled = self.reconciler.reconcile(max_gap=self.settings.lease / 2, settle_orphans=leads)
        metrics.SETTLED.inc(len(settled))
        self.offers.know_peers(self.reconciler.live_workers)

    def check_own(self) -> bool:
        """This worker's own records: deliver stops whose request it missed, and settle runs it
        no longer holds (their end was lost: nothing else would ever end them). Returns whether
        any record or request still names this worker (nothing can name a worker that has
        claimed nothing since: the next check can wait for a claim)."""
        me, ledger = self.state.id, self.ledger
        records = self.store.processes.executing_on(me)
        for record in records:
            # An inline child of an isolated run is the run's own: its end comes with the run's.
            if not ledger.holds(record.run_id) and not ledger.holds(record.parent_run_id):
                # Its start was cut off by an outage, or its end lost: handed off as a lost
                # worker's run would be (it executes nowhere).
                settle_record(self.store, record, f"worker {me} no longer runs it", Cause.WORKER_LOST)
            elif record.state is State.STOP_REQUESTED or record.stop_forced:  # forced: also once Stopping
                self.policing.stop_run(record.run_id, force=record.stop_forced)
        # A launch taken but not held: its start failed midway. Seen so twice in a row, so a claim
        # that has not been handed to a thread yet is never mistaken for one.
        unheld = {request.run_id: request for request in self.store.requests.taken_by(me)
                  if request.kind == RequestKind.LAUNCH and not ledger.holds(request.run_id)}
        for run_id in unheld.keys() & self._unheld_launches:
            self.store.requests.release(unheld[run_id])  # any worker may start it
        self._unheld_launches = set(unheld)
        return bool(records or unheld)
