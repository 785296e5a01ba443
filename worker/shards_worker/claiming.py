"""Claiming: sweep, wait for a change, claim by id, keep the backlog. Every request is claimed
exactly once (a guarded write); offers order the workers that could take it (shards_worker.offers),
wake-ups come from the change stream (shards_worker.wakeups)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shards.errors import ShardsError, StoreUnavailable
from shards.requests import Request, RequestKind
from shards_store import ChangeFeed, ChangeFeedError, PollPace, Store

from shards_worker import metrics
from shards_worker.connectivity import Connectivity
from shards_worker.firing import Firing
from shards_worker.offers import Offer, Offers
from shards_worker.settings import WorkerSettings
from shards_worker.slots import Slots
from shards_worker.state import WorkerState
from shards_worker.wakeups import Wakeups

log = logging.getLogger("shards.worker")

StartLaunch = Callable[[Request, "float | None"], None]  # a claimed launch, and when its event was seen


class Claiming:
    def __init__(self, store: Store, settings: WorkerSettings, state: WorkerState, slots: Slots,
                 offers: Offers, connectivity: Connectivity, *, start_launch: StartLaunch,
                 deliver_stop: Callable[[Request], None], define: Callable[[Request], None],
                 firing: Firing, may_define: Callable[[], bool] = lambda: True) -> None:
        self.store = store
        self.settings = settings
        self.state = state
        self.slots = slots
        self.offers = offers
        self.connectivity = connectivity
        self._start_launch = start_launch
        self._deliver_stop = deliver_stop
        self._define = define  # hands the define to its own thread (shards_worker.defines)
        self.firing = firing  # a schedule's time has come
        self._may_define = may_define  # that thread is free: one define at a time per worker
        self.wakeups = Wakeups(None)  # opened at start
        self._next_sweep = 0.0  # monotonic: the first sweep is at once
        self._backlog = False  # launches may be pending that no offer names: look when a slot frees
        self.sweeping = False  # a sweep is under way (read by tests and the debugger, never waited on)
        self.sweeps = 0  # sweeps completed

    def open(self) -> None:
        """Follow the change stream (or poll without one); wake-ups start arriving."""
        self.wakeups = Wakeups(self._open_feed(), on_error=self._on_stream_error)
        self.wakeups.start()

    def close(self) -> None:
        self.wakeups.close()

    def sweep_due(self) -> bool:
        return time.monotonic() >= self._next_sweep

    def sweep(self) -> None:
        """Claim everything this worker can take now, oldest first: at start, after a gap in
        the stream and on a slow timer, so nothing waits on a missed event."""
        settings = self.settings
        self._next_sweep = time.monotonic() + (settings.poll_interval if self.wakeups.feed is None
                                               else settings.sweep_interval)
        self.sweeping = True
        try:
            self._sweep()
        finally:
            self.sweeping = False
            self.sweeps += 1

    def _sweep(self) -> None:
        self.offers.expire(older_than=self.settings.sweep_interval)
        self.firing.release_unfinished()
        while (stop := self._claim(RequestKind.STOP, addressed=True)) is not None:
            self._deliver_stop(stop)
        if self._may_define() and (define := self._claim(RequestKind.DEFINE)) is not None:
            self._define(define)
        while (fire := self._claim(RequestKind.FIRE)) is not None:
            self._fire(fire)
        self._claim_oldest_launches()
        # Requests due before the next sweep (delayed launches, retries, schedules' fires) whose
        # events this worker did not see or has forgotten: each is claimed on its time.
        for request in self.store.requests.upcoming(self.settings.pool, self.offers.horizon):
            self.offers.add(request)

    def wait_for_change(self) -> None:
        """Bounded: returns on a change, a freed slot, a shutdown, the next turn to claim, or
        the next sweep."""
        self.wakeups.settled()  # what the last changes asked for is done: the reader may poll
        kinds = {RequestKind.STOP, RequestKind.FIRE}
        if self._may_define():
            kinds.add(RequestKind.DEFINE)
        if self.state.may_claim() and self.slots.free() > 0:
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
        if self._may_define():
            for offer in self._confirmed(self.offers.due(RequestKind.DEFINE, limit=1)):
                if (define := self._claim_id(offer)) is not None:
                    self._define(define)
        for offer in self._confirmed(self.offers.due(RequestKind.FIRE)):
            if (fire := self._claim_id(offer)) is not None:
                self._fire(fire)
        if not self.state.may_claim():
            return
        free = self.slots.free()
        due = self._confirmed(self.offers.due(RequestKind.LAUNCH))
        for offer in due[:free]:
            if (launch := self._claim_id(offer)) is not None:
                self.wakeups.busy()
                self._start_launch(launch, offer.seen)
        if len(due) > free:
            # Their turn came with no slot free: by the time one frees, a backup has likely
            # taken them, so claiming these ids would mostly lose. The oldest pending launch
            # is claimed instead when a slot frees (it never loses).
            self._backlog = True
        if self._backlog and self.slots.free() > 0:
            self._claim_oldest_launches()

    def after_outage(self) -> None:
        """MongoDB could not be reached: forget what the stream said, sweep once it is back."""
        self._next_sweep = time.monotonic() + self.settings.poll_interval
        self.offers.clear()

    def slot_freed(self) -> None:
        """A run's thread ended: be quick again, and claim a waiting launch now."""
        self.wakeups.busy()
        self.wakeups.ring()

    def defines_free(self) -> None:
        """The define thread is free again: sweep for pending defines now (from any thread)."""
        self._next_sweep = time.monotonic()
        self.wakeups.ring()

    def slots_full(self) -> None:
        """No launch can be taken until a slot frees: the stream need not be quick."""
        self.wakeups.relax()

    # -- one claim --------------------------------------------------------------------------
    def _claim(self, kind: str, *, addressed: bool = False) -> Request | None:
        """The oldest pending request of a kind (a sweep): finding none is "empty"."""
        request = self.store.requests.claim(kind, self.state.id, addressed=addressed, pool=self.settings.pool)
        return metrics.counted(kind, request, "empty")

    def _claim_id(self, offer: Offer) -> Request | None:
        """The request an event named: finding it taken is "lost"."""
        request = self.store.requests.claim_id(offer.request.id, self.state.id)
        return metrics.counted(offer.request.kind, request, "lost")

    def _fire(self, request: Request) -> None:
        """A schedule's time: fire it, and take the launch it made here if a slot is free and
        this worker offers the process (its request is new: waiting for the others to see its
        event would cost the stream's pace)."""
        for run_id in self.firing.fire(request):
            if not (self.state.may_claim() and self.slots.free() > 0
                    and self.offers.offers_process(request.process_id)):
                return
            # A schedule's launch request is named by its run id (shards_store.firing).
            launch = self.store.requests.claim_id(run_id, self.state.id, self.settings.pool)
            if metrics.counted(RequestKind.LAUNCH, launch, "lost") is not None:
                assert launch is not None
                self.wakeups.busy()
                self._start_launch(launch, None)

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
        while self.state.may_claim():
            if self.slots.free() == 0:
                self._backlog = True
                return
            launch = self._claim(RequestKind.LAUNCH)
            if launch is None:
                return
            self._start_launch(launch, None)

    # -- the stream -------------------------------------------------------------------------
    def _open_feed(self) -> ChangeFeed | None:
        if self.settings.poll_only:
            log.info("polling every %.1fs (no change stream)", self.settings.poll_interval)
            return None
        pace = PollPace(self.settings.stream_poll_min, self.settings.stream_poll_max)
        feed = self.store.request_feed(self.state.id, self.settings.pool, pace)
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
