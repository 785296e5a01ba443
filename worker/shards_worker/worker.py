"""The worker: start, sweep, wait for a change or a timeout, claim, execute, heartbeat, stop."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from shards.app import App
from shards.errors import ShardsError, StoreUnavailable
from shards.requests import Request, RequestKind
from shards.retries import Cause
from shards_store import ChangeFeed, ChangeFeedError, PollPace, Store
from shards_store.workers import GONE

from shards_worker import metrics
from shards_worker.connectivity import Connectivity
from shards_worker.definition import define_scope
from shards_worker.execution import Executor
from shards_worker.isolation import isolation_for
from shards_worker.lease import Lease
from shards_worker.logs import about
from shards_worker.offers import Offer, Offers, advertised
from shards_worker.reconciler import Reconciler, check_own, replace_predecessors
from shards_worker.settings import WorkerSettings
from shards_worker.wakeups import Wakeups

log = logging.getLogger("shards.worker")

EXIT_LEASE_LOST = 75  # the process exits with this when runs outlive its lease (EX_TEMPFAIL)
POLICE_INTERVAL = 0.1  # seconds between looks at deadlines and grace periods
JOIN_KILLED = 10.0  # seconds a killed run's thread gets to record its end at shutdown


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(self, store: Store, app: App, settings: WorkerSettings | None = None,
                 name: str | None = None, app_spec: str = "") -> None:
        self.store = store
        self.app = app
        self.settings = settings or WorkerSettings()
        self.name = name or default_name()  # kept across restarts; the id is per incarnation
        self.id = ""  # this incarnation's id, given at registration
        self.connectivity = Connectivity(on_lost=self._on_store_lost)
        self.isolation = isolation_for(self.settings, app_spec, store.uri)
        self.executor = Executor(store, app, self.id, on_outage=self.connectivity.failed,
                                 isolation=self.isolation, stop_grace=self.settings.stop_grace)
        self.reconciler = Reconciler(store, orphan_grace=self.settings.orphan_grace)
        self.lease = Lease(self.settings.lease)
        self._stopping = threading.Event()  # claim nothing more; runs are asked to stop
        self._closed = threading.Event()  # heartbeats end: this incarnation leaves
        self._fenced = threading.Event()  # the lease is running out: claim nothing until renewed
        self._busy_lock = threading.Lock()
        self._busy = 0  # slots taken by launches (their children run inside them)
        self._threads: list[threading.Thread] = []
        self.catalog = advertised(app, self.settings.pool)
        self.offers = Offers(self.id, self.catalog, self.settings.claim_stagger, pool=self.settings.pool)
        self.wakeups = Wakeups(None)  # opened at start
        self._next_sweep = 0.0  # monotonic: the first sweep is at once
        self._backlog = False  # launches may be pending that no offer names: look when a slot frees
        self._unheld_launches: set[str] = set()  # seen taken by this worker but not held
        self._next_watch = 0.0  # monotonic: when a worker that does not lead next reconciles
        self._may_own_records = True  # a record may name this worker: check them

    # -- the story --------------------------------------------------------------------------
    def run(self) -> None:
        self.start()
        try:
            while not self._stopping.is_set():
                if self._sweep_due():
                    self._guarded(self.sweep, reached_store=True)
                self.wait_for_change()
                self._guarded(self.claim_offered)
        finally:
            self.stop()

    def start(self) -> None:
        self.store.ensure_indexes()
        if self.isolation is not None:
            self.isolation.warm()
        sent = time.monotonic()
        self.id = self.store.workers.register(
            self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            catalog=self.catalog,
            concurrency=self.settings.concurrency,
            lease=self.settings.lease,
            pool=self.settings.pool,
        )
        self.lease.renewed(sent)
        self.executor.worker_id = self.reconciler.me = self.offers.me = self.id
        replace_predecessors(self.store, self.name, self.id)
        self.wakeups = Wakeups(self._open_feed(), on_error=self._on_stream_error)
        self.wakeups.start()
        for target, name in ((self._heartbeat_loop, "shards-heartbeat"), (self._watch_lease, "shards-lease"),
                             (self._police, "shards-police")):
            threading.Thread(target=target, name=name, daemon=True).start()
        log.info("%s started (pool %s, concurrency %d, %s isolation, processes %s)", self.id,
                 self.settings.pool, self.settings.concurrency, self.settings.isolation,
                 ", ".join(self.catalog) or "per scope")

    def sweep(self) -> None:
        """Claim everything this worker can take now, oldest first: at start, after a gap in
        the stream and on a slow timer, so nothing waits on a missed event."""
        settings = self.settings
        self._next_sweep = time.monotonic() + (settings.poll_interval if self.wakeups.feed is None
                                               else settings.sweep_interval)
        self.offers.expire(older_than=settings.sweep_interval)
        while (stop := self._claim(RequestKind.STOP, addressed=True)) is not None:
            self._deliver_stop(stop)
        while (define := self._claim(RequestKind.DEFINE)) is not None:
            define_scope(self.store, self.app, define, self.id)
        self._claim_oldest_launches()

    def wait_for_change(self) -> None:
        """Bounded: returns on a change, a freed slot, a shutdown, the next turn to claim, or
        the next sweep."""
        kinds = {RequestKind.STOP, RequestKind.DEFINE}
        if self._may_claim() and self._free_slots() > 0:
            kinds.add(RequestKind.LAUNCH)
        wake_at = min(self._next_sweep, self.offers.next_due(frozenset(kinds)) or self._next_sweep)
        self.wakeups.wait(wake_at - time.monotonic())
        changes, gap = self.wakeups.take()
        for change in changes:
            request_id = change.get("documentKey", {}).get("_id")
            if not isinstance(request_id, str):  # not a request this version submitted
                continue
            if change["operationType"] == "insert":
                request = Request.from_doc({**change["fullDocument"], "_id": request_id})
                if self.offers.add(request) == 0:
                    self.wakeups.busy()  # this worker is first in line: stay quick
            else:  # taken (or put back, rarely: the next sweep finds it)
                self.offers.taken(request_id)
        if gap:  # events may have been missed: sweep for them
            self.offers.clear()
            self._next_sweep = time.monotonic()

    def claim_offered(self) -> None:
        """Claim, by id, the requests whose turn has come: stops and defines at once, launches
        while a slot is free. A claim another worker won costs one round trip, no sweep."""
        for offer in self._confirmed(self.offers.due(RequestKind.STOP)):
            if (stop := self._claim_id(offer)) is not None:
                self._deliver_stop(stop)
        for offer in self._confirmed(self.offers.due(RequestKind.DEFINE)):
            if (define := self._claim_id(offer)) is not None:
                define_scope(self.store, self.app, define, self.id)
        if not self._may_claim():
            return
        free = self._free_slots()
        due = self._confirmed(self.offers.due(RequestKind.LAUNCH))
        for offer in due[:free]:
            if (launch := self._claim_id(offer)) is not None:
                self.wakeups.busy()
                self._start(launch, seen=offer.seen)
        if len(due) > free:
            # Their turn came with no slot free: by the time one frees, a backup has likely
            # taken them, so claiming these ids would mostly lose. The oldest pending launch
            # is claimed instead when a slot frees (it never loses).
            self._backlog = True
        if self._backlog and self._free_slots() > 0:
            self._claim_oldest_launches()

    def stop(self) -> None:
        """Stop running processes cooperatively, heart-beating all along so no other worker
        takes them over, wait a bounded time, then leave the registry. A run whose process
        hands off at shutdown (on_shutdown="retry") is queued to run again elsewhere once it
        has ended here: stopped, or killed at the end of the grace."""
        self._stopping.set()
        self.executor.hand_off_all()
        deadline = time.monotonic() + self.settings.shutdown_grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.isolation is not None:  # isolated runs end with the worker, and their ends are recorded
            self.executor.kill_all()
            for thread in self._threads:
                thread.join(timeout=JOIN_KILLED)
        self.wakeups.close()
        still_running = [e.run_id for e in self.executor.executions()]
        self._closed.set()  # the last heartbeat has been sent: from here on we leave
        try:
            self.executor.flush_endings()
            # Runs still executing end with this process; another worker's reconciler settles
            # them once it has exited, so their code never overlaps with a relaunch.
            reason = f"worker {self.id} left"
            if still_running:
                reason = (f"worker {self.id} shut down before the process stopped "
                          f"(after {self.settings.shutdown_grace:g}s)")
            self.store.workers.retire(self.id, GONE, reason)
        except StoreUnavailable as error:
            log.warning("could not leave the registry (%s); another worker "
                        "settles what is left after the lease", error)
        log.info("%s stopped", self.id)

    def request_shutdown(self) -> None:
        self._stopping.set()
        self.wakeups.ring()

    # -- claims -----------------------------------------------------------------------------
    def _open_feed(self) -> ChangeFeed | None:
        if self.settings.poll_only:
            log.info("polling every %.1fs (no change stream)", self.settings.poll_interval)
            return None
        pace = PollPace(self.settings.stream_poll_min, self.settings.stream_poll_max)
        feed = self.store.request_feed(self.id, self.settings.pool, pace)
        try:
            feed.open()
        except ChangeFeedError as error:
            log.warning("%s; polling every %.1fs instead", error, self.settings.poll_interval)
            return None
        return feed

    def _on_stream_error(self, error: ShardsError) -> None:
        metrics.STREAM_ERRORS.inc()
        if isinstance(error, StoreUnavailable):
            self.connectivity.failed(error)
        else:
            log.warning("%s; reopening after a sweep", error)

    def _claim(self, kind: str, *, addressed: bool = False) -> Request | None:
        """The oldest pending request of a kind (a sweep): finding none is "empty"."""
        request = self.store.requests.claim(kind, self.id, addressed=addressed, pool=self.settings.pool)
        return metrics.counted(kind, request, "empty")

    def _claim_id(self, offer: Offer) -> Request | None:
        """The request an event named: finding it taken is "lost"."""
        request = self.store.requests.claim_id(offer.request.id, self.id)
        return metrics.counted(offer.request.kind, request, "lost")

    def _confirmed(self, due: list[Offer]) -> list[Offer]:
        """The due offers to claim now. A backup's first turn only asks for a fresh read of
        the stream, and claims a moment later if the request is still not seen taken: a
        claim that would lose is a write, a read of the stream is not."""
        ready = []
        for offer in due:
            if offer.turn > 0 and not offer.rechecked:
                self.offers.recheck(offer)
                self.wakeups.nudge()
            else:
                ready.append(offer)
        return ready

    def _claim_oldest_launches(self) -> None:
        """Fill the free slots with the oldest pending launches. Remembers when slots ran out
        first (a backlog), so the next freed slot looks again instead of waiting for a sweep."""
        self._backlog = False
        while self._may_claim():
            if self._free_slots() == 0:
                self._backlog = True
                return
            launch = self._claim(RequestKind.LAUNCH)
            if launch is None:
                return
            self._start(launch, seen=None)

    def _deliver_stop(self, stop: Request) -> None:
        self.executor.stop_run(stop.run_id, force=bool(stop.options.get("force")))
        self.store.requests.complete(stop)

    def _start(self, launch: Request, seen: float | None) -> None:
        """Hand a claimed launch to a thread of its own (a slot was free)."""
        self._may_own_records = True
        log.debug("claimed (%s)", "by a sweep" if seen is None else "from its event", extra=about(launch))
        with self._busy_lock:  # the caller checked that a slot is free
            self._busy += 1
            full = self._busy >= self.settings.concurrency
        if full:  # no launch can be taken until a slot frees: the stream need not be quick
            self.wakeups.relax()
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        self.executor.hold(launch.run_id)
        thread = threading.Thread(target=self._execute, args=(launch, seen), daemon=True,
                                  name=f"shards-run-{launch.run_id[:8]}")
        self._threads.append(thread)
        thread.start()

    def _free_slots(self) -> int:
        with self._busy_lock:
            return self.settings.concurrency - self._busy

    def _sweep_due(self) -> bool:
        return time.monotonic() >= self._next_sweep

    def _guarded(self, step: Callable[[], None], reached_store: bool = False) -> None:
        """A store outage keeps the worker: it is reported once, and the loop pauses.
        reached_store: the step always talks to the store, so its success proves contact."""
        try:
            step()
            if reached_store:
                self.connectivity.ok()
        except StoreUnavailable as error:
            self.connectivity.failed(error)
            self._next_sweep = time.monotonic() + self.settings.poll_interval
            self.offers.clear()
            self._stopping.wait(self.settings.poll_interval)

    # -- threads ----------------------------------------------------------------------------
    def _execute(self, launch: Request, seen: float | None) -> None:
        try:
            self.executor.run_launch(launch, seen)
        except StoreUnavailable as error:  # not started, or its start unconfirmed: see _check_own
            self.connectivity.failed(error)
        except BaseException:  # a bug must not kill the worker; _check_own settles the record
            log.exception("the launch could not be completed", extra=about(launch))
        finally:
            self.executor.let_go(launch.run_id)
            with self._busy_lock:
                self._busy -= 1
            self.wakeups.busy()  # a free slot: be quick again, and claim a waiting launch now
            self.wakeups.ring()

    def _may_claim(self) -> bool:
        return not self._stopping.is_set() and not self._fenced.is_set()

    def _heartbeat_loop(self) -> None:
        """Renew the lease, write progress and unrecorded ends, keep the invariant; until the
        worker leaves (also through its shutdown)."""
        settings = self.settings
        next_beat = 0.0
        while not self._closed.wait(settings.progress_interval):
            try:
                self.executor.flush_endings()
                metrics.PROGRESS_WRITES.inc(self.executor.flush_progress())
                metrics.LOG_WRITES.inc(self.executor.flush_logs())
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + settings.heartbeat_interval
                    self._beat()
                self.connectivity.ok()
            except StoreUnavailable as error:
                self.connectivity.failed(error)
            except Exception:  # a bug must not end the heartbeat
                log.exception("heartbeat failed")

    def _beat(self) -> None:
        sent = time.monotonic()
        if not self.store.workers.heartbeat(self.id, len(self.executor.executions())):
            if not self._stopping.is_set():
                log.error("%s was declared lost by another worker; shutting down", self.id)
                self._stopping.set()
                self.executor.stop_all()
            return
        self.lease.renewed(sent)
        # A renewal sent long ago (a slow beat after an outage) may already be half a lease old:
        # claiming again now would only stop the runs it claims a moment later.
        if self._fenced.is_set() and not self.lease.runs_must_stop():
            self._fenced.clear()
            log.info("lease renewed; claiming again")
        # The first worker in line reconciles every beat; the others watch the registry less
        # often (they can still reap a silent worker, the first one included) and check their
        # own records as often as they sweep: the cost of idle workers stays small.
        now, leads = time.monotonic(), self.offers.leads()
        if not leads and now < self._next_watch:
            return
        self._next_watch = now + min(self.settings.sweep_interval, self.settings.lease / 4)
        if self._may_own_records or self.executor.executions():
            self._may_own_records = self._check_own()
        settled = self.reconciler.reconcile(max_gap=self.settings.lease / 2, settle_orphans=leads)
        metrics.SETTLED.inc(len(settled))
        self.offers.know_peers(self.reconciler.live_workers)

    def _check_own(self) -> bool:
        """This worker's own records: deliver stops whose request it missed, and settle runs it
        no longer holds (see reconciler.check_own). Returns whether any record or request still
        names this worker (else the next check can wait for a claim)."""
        names_me, self._unheld_launches = check_own(self.store, self.id, self.executor, self._unheld_launches)
        return names_me

    def _police(self) -> None:
        """Deadlines, and kills after a forced stop or the grace: never touches the store."""
        while not self._closed.wait(POLICE_INTERVAL):
            try:
                self.executor.police(time.monotonic())
            except Exception:  # a bug must not end the policing
                log.exception("policing runs failed")

    def _watch_lease(self) -> None:
        """Never touches the store, so a hung store call cannot delay it."""
        while not self._closed.wait(min(0.1, self.settings.lease / 30)):
            if self.lease.runs_must_stop() and not self._fenced.is_set():
                self._fenced.set()
                silence = self.lease.silence()
                log.warning("no heartbeat for %.1fs; stopping %d runs so that none "
                            "outlives the lease (%gs)", silence, len(self.executor.executions()),
                            self.settings.lease)
                self.executor.stop_all(f"stopped: worker {self.id} lost contact with MongoDB for "
                                       f"{silence:.0f}s, so it could not keep its lease", Cause.WORKER_LOST)
            if self.lease.process_must_exit() and (  # code still executing: not an ended run's history write
                    running := [e for e in self.executor.executions() if not e.body_over]):
                log.critical("%d runs still execute at the end of the lease; exiting "
                             "so that they cannot overlap with a relaunch elsewhere", len(running))
                logging.shutdown()
                os._exit(EXIT_LEASE_LOST)

    def _on_store_lost(self) -> None:
        self.reconciler.forget()
