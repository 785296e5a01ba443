"""The worker: start, sweep, wait for a change or a timeout, claim, execute, heartbeat, stop.

Worker wires its services and orders their start, stop and SIGTERM hand-off:
- Claiming (claiming.py): sweeps, waits for changes, claims by id, keeps the backlog;
- Lifecycle (lifecycle.py) on a Host (hosting.py, process_host.py): executes a claimed launch in
  a thread of its own, holding one of the Slots (slots.py), recorded in the Ledger (ledger.py);
  isolated runs take a process forked ahead of demand, one per free slot (standbys.py);
- Heartbeat (heartbeat.py): renews the lease, writes progress and ends, reconciles;
- Fence (fencing.py): runs never outlive the lease;
- Policing (policing.py): deadlines, grace, forced stops, hand-offs;
- Firing (firing.py): a schedule's time has come, claimed like any request.
They share a WorkerState (state.py): the id and the flags of this incarnation's life.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from shards.app import App
from shards.errors import StoreUnavailable
from shards.requests import Request
from shards_store import Store, upgrade
from shards_store.reconciler import Reconciler, replace_predecessors
from shards_store.workers import GONE

from shards_worker import metrics
from shards_worker.claiming import Claiming
from shards_worker.connectivity import Connectivity
from shards_worker.defines import Definer
from shards_worker.fencing import Fence
from shards_worker.firing import Firing
from shards_worker.heartbeat import Heartbeat
from shards_worker.lease import Lease
from shards_worker.ledger import Ledger
from shards_worker.lifecycle import Lifecycle
from shards_worker.logs import about
from shards_worker.offers import Offers, advertised
from shards_worker.policing import Policing
from shards_worker.process_host import host_for
from shards_worker.settings import WorkerSettings
from shards_worker.slots import Slots
from shards_worker.state import WorkerState

log = logging.getLogger("shards.worker")

JOIN_KILLED = 10.0  # seconds a killed run's thread gets to record its end at shutdown


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(self, store: Store, app: App, settings: WorkerSettings | None = None,
                 name: str | None = None, app_spec: str = "") -> None:
        self.store = store
        self.app = app
        self.settings = settings = settings or WorkerSettings()
        self.state = WorkerState(name or default_name())
        self.connectivity = Connectivity(on_lost=self._on_store_lost)
        self.lease = Lease(settings.lease)
        self.slots = Slots(settings.concurrency)
        self.host = host_for(settings, app_spec, store.uri, self.lease, free_slots=self.slots.free)
        self.ledger = Ledger(store, on_outage=self.connectivity.failed)
        self.lifecycle = Lifecycle(store, app, self.ledger, self.host, on_outage=self.connectivity.failed,
                                   stop_grace=settings.stop_grace)
        self.policing = Policing(store, self.ledger, stop_grace=settings.stop_grace)
        self.reconciler = Reconciler(store, orphan_grace=settings.orphan_grace)
        self.catalog = advertised(app, settings.pool)
        metrics.label_processes(self.catalog)
        self.offers = Offers("", self.catalog, settings.claim_stagger, pool=settings.pool,
                             horizon=settings.sweep_interval * 2)
        self.definer = Definer(store, app, self.state, on_outage=self.connectivity.failed,
                               on_idle=self._define_ended, retry_pause=settings.poll_interval)
        self.firing = Firing(store)
        self.claiming = Claiming(store, settings, self.state, self.slots, self.offers, self.connectivity,
                                 start_launch=self._start_launch, deliver_stop=self._deliver_stop,
                                 define=self.definer.start, firing=self.firing, may_define=self.definer.idle)
        self.heartbeat = Heartbeat(store, settings, self.state, self.ledger, self.policing, self.reconciler,
                                   self.offers, self.lease, self.connectivity, rejoin=self._rejoin)
        self.fence = Fence(self.state, self.lease, self.ledger, self.policing)
        self._run_threads: list[threading.Thread] = []
        self._rejoined = threading.Event()  # a new incarnation: the stream must name its id

    @property
    def id(self) -> str:
        return self.state.id

    @property
    def name(self) -> str:
        return self.state.name

    # -- the story --------------------------------------------------------------------------
    def run(self) -> None:
        if not self._reach_store():
            return  # asked to stop before MongoDB ever answered: nothing to leave
        self.start()
        try:
            while not self.state.stopping.is_set():
                if self._rejoined.is_set():
                    self._rejoined.clear()
                    self.claiming.close()
                    self._guarded(self.claiming.open)
                if self.claiming.sweep_due():
                    self._guarded(self.claiming.sweep, reached_store=True)
                self.claiming.wait_for_change()
                self._guarded(self.claiming.claim_offered)
        finally:
            self.stop()

    def _reach_store(self) -> bool:
        """A worker started while MongoDB is away (a restart during an outage) waits for it, in
        bounded steps, rather than exiting; False if asked to stop meanwhile."""
        while True:
            try:
                self.store.ensure_indexes()
                self.connectivity.ok()
                return True
            except StoreUnavailable as error:
                self.connectivity.failed(error)
                if self.state.stopping.wait(self.settings.poll_interval):
                    return False

    def start(self) -> None:
        self.store.ensure_indexes()
        upgrade(self.store)  # before the first claim: what an older release left becomes claimable
        self.store.sync_clock()  # times it stores follow the server's clock, not this host's
        self.host.warm()
        self._register(time.monotonic())
        replace_predecessors(self.store, self.name, self.id)
        self.claiming.open()
        for target, name in ((self.heartbeat.beat_until_closed, "shards-heartbeat"),
                             (self.fence.watch_until_closed, "shards-lease"),
                             (lambda: self.policing.patrol(self.state.closed), "shards-police")):
            threading.Thread(target=target, name=name, daemon=True).start()
        log.info("%s started (pool %s, concurrency %d, %s isolation, processes %s)", self.id,
                 self.settings.pool, self.settings.concurrency, self.settings.isolation,
                 ", ".join(self.catalog) or "per scope")

    def _register(self, sent: float) -> None:
        """Register a new incarnation (sent: when, on the monotonic clock): its id is the
        lease's holder from here on."""
        self.state.id = self.store.workers.register(
            self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            catalog=self.catalog,
            concurrency=self.settings.concurrency,
            lease=self.settings.lease,
            pool=self.settings.pool,
        )
        self.lease.renewed(sent)
        self.lifecycle.worker_id = self.reconciler.me = self.offers.me = self.id
        self.state.may_own_records = True

    def _rejoin(self, sent: float) -> None:
        """Declared lost while cut off, with nothing left executing: come back as a new
        incarnation instead of leaving (on the heartbeat thread; the main loop reopens the
        stream under the new id)."""
        lost = self.id
        self._register(sent)
        self._rejoined.set()
        self.claiming.wakeups.ring()
        log.warning("%s was declared lost while cut off from MongoDB; back as %s", lost, self.id)

    def stop(self) -> None:
        """Stop running processes cooperatively, heart-beating all along so no other worker
        takes them over, wait a bounded time, then leave the registry. A run whose process
        hands off at shutdown (on_shutdown="retry") is queued to run again elsewhere once it
        has ended here: stopped, or killed at the end of the grace."""
        self.state.stopping.set()
        log.info("%s stopping: claiming nothing more", self.id)
        self.policing.hand_off_all(self.id)
        deadline = time.monotonic() + self.settings.shutdown_grace
        for thread in self._run_threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self.definer.finish(deadline)  # a define stops between batches; the next worker resumes it
        if self.host.killable:  # isolated runs end with the worker, and their ends are recorded
            self.policing.kill_all()
            for thread in self._run_threads:
                thread.join(timeout=JOIN_KILLED)
        self.host.close()  # standby processes exit with the worker
        self.claiming.close()
        still_running = [run.run_id for run in self.ledger.executions()]
        self.state.closed.set()  # the last heartbeat has been sent: from here on we leave
        try:
            self.ledger.flush_endings()
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
        self.state.stopping.set()
        self.claiming.wakeups.ring()

    # -- what a claim leads to --------------------------------------------------------------
    def _start_launch(self, launch: Request, seen: float | None) -> None:
        """Hand a claimed launch to a thread of its own (a slot was free)."""
        self.state.may_own_records = True
        log.debug("claimed (%s)", "by a sweep" if seen is None else "from its event", extra=about(launch))
        if self.slots.take():
            self.claiming.slots_full()
        self._run_threads = [thread for thread in self._run_threads if thread.is_alive()]
        self.ledger.hold(launch.run_id)
        wakeups = self.claiming.wakeups
        wakeups.hold()  # the stream's next poll waits for the start's write (released once)
        thread = threading.Thread(target=self._execute, args=(launch, seen, wakeups.release), daemon=True,
                                  name=f"shards-run-{launch.run_id[:8]}")
        self._run_threads.append(thread)
        try:
            thread.start()
        except BaseException:
            wakeups.release()
            raise

    def _execute(self, launch: Request, seen: float | None, start_written: Callable[[], None]) -> None:
        try:
            self.lifecycle.run_launch(launch, seen, on_start_written=start_written)
        except StoreUnavailable as error:  # not started, or its start unconfirmed: see Heartbeat.check_own
            self.connectivity.failed(error)
        except BaseException:  # a bug must not kill the worker; Heartbeat.check_own settles the record
            log.exception("the launch could not be completed", extra=about(launch))
        finally:
            self.ledger.let_go(launch.run_id)
            self.slots.release()
            self.claiming.slot_freed()
            self.host.slot_freed()  # its standby is forked now, after the end's write

    def _deliver_stop(self, stop: Request) -> None:
        self.policing.stop_run(stop.run_id, force=bool(stop.options.get("force")))
        self.store.requests.complete(stop)

    def _define_ended(self) -> None:
        """The define thread is free: claim the next define now, not at the next sweep."""
        if not self.state.stopping.is_set():
            self.claiming.defines_free()

    # -- outages ----------------------------------------------------------------------------
    def _guarded(self, step: Callable[[], None], reached_store: bool = False) -> None:
        """A store outage keeps the worker: it is reported once, and the loop pauses.
        reached_store: the step always talks to the store, so its success proves contact."""
        try:
            step()
            if reached_store:
                self.connectivity.ok()
        except StoreUnavailable as error:
            self.connectivity.failed(error)
            self.claiming.after_outage()
            self.state.stopping.wait(self.settings.poll_interval)

    def _on_store_lost(self) -> None:
        self.reconciler.forget()
