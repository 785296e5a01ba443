"""Offers: requests this worker has seen offered on its change stream and not yet seen taken,
each with the moment it is this worker's turn to claim it.

The live workers that can take a request stand in one fixed order (a hash of their ids). The
first claims at once, the k-th only k staggers later and only if it has not seen the request
taken meanwhile, so a launch costs about one claim however many workers watch, and the first
worker with a free slot in that order stays the one that is quick to answer.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shards.app import App
from shards.errors import ShardsError
from shards.records import DEFAULT_POOL, WorkerRecord, utcnow
from shards.requests import Request, RequestKind


def advertised(app: App, pool: str) -> list[str]:
    """The processes a worker of this pool claims ([] for per-scope catalogs: any launch of
    its pool). A pool in which the app defines nothing is a mistake, said in one line."""
    if app.per_scope:
        return []
    offered = app.offered(pool)
    if not offered:
        raise ShardsError(f"the app defines no process in pool {pool!r} "
                          f"(its pools: {', '.join(app.pools) or 'none'})")
    return offered


def place(worker_id: str) -> bytes:
    """A worker's place in the order; every worker computes the same one."""
    return hashlib.blake2b(worker_id.encode(), digest_size=8).digest()


RECHECK = 0.01  # seconds a backup waits, after asking for a fresh read of its stream, to claim


@dataclass
class Offer:
    request: Request
    due: float  # monotonic time when it is this worker's turn
    seen: float  # monotonic time the event reached this worker
    turn: int = 0
    rechecked: bool = False  # a backup reads its stream once more before it claims


class Offers:
    def __init__(
        self, me: str, catalog: Iterable[str], stagger: float,
        clock: Callable[[], float] = time.monotonic, pool: str = DEFAULT_POOL, horizon: float = 10.0,
    ) -> None:
        self.me = me
        self.catalog = frozenset(catalog)  # empty: per-scope catalogs, any process is offered
        self.pool = pool
        self.stagger = stagger
        self.horizon = horizon  # seconds: requests due later are left to the sweep's look ahead
        self._clock = clock
        self._peers: list[WorkerRecord] = []
        self._offers: dict[object, Offer] = {}

    def know_peers(self, alive: list[WorkerRecord]) -> None:
        """The live workers as the last registry read saw them (this one included or not)."""
        self._peers = [worker for worker in alive if worker.worker_id != self.me]

    def turn(self, request: Request) -> int | None:
        """This worker's turn for the request (0: first), or None when it does not take it."""
        if request.target_worker == self.me:
            return 0
        if request.kind == RequestKind.LAUNCH:
            if request.pool != self.pool or not self._offers_process(self.catalog, request.process_id):
                return None
            peers = [w for w in self._peers if w.pool == self.pool
                     and self._offers_process(frozenset(w.catalog), request.process_id)]
        else:
            peers = self._peers
        mine = place(self.me)
        return sum(1 for peer in peers if place(peer.worker_id) < mine)

    def leads(self) -> bool:
        """First in the order among all live workers: the one that looks at every active
        record for owners this heartbeat (several may, briefly, while views differ: safe)."""
        mine = place(self.me)
        return all(place(peer.worker_id) > mine for peer in self._peers)

    def offers_process(self, process_id: str) -> bool:
        """This worker runs the process (its catalog names it, or it serves per-scope catalogs)."""
        return self._offers_process(self.catalog, process_id)

    @staticmethod
    def _offers_process(catalog: frozenset[str], process_id: str) -> bool:
        return not catalog or process_id in catalog

    def add(self, request: Request) -> int | None:
        """Note an offered request; returns this worker's turn (None: not for this worker, or
        not yet: due beyond the horizon, where the sweep looks ahead for it)."""
        turn = self.turn(request)
        # A retry, a delayed launch, a schedule's fire start later (their creation time): their
        # turn comes then. Only those due soon are kept, so that thousands of schedules cost
        # this worker nothing until their time is near.
        delay = max(0.0, (request.created_at - utcnow()).total_seconds())
        if turn is None or request.id is None or delay > self.horizon:
            return None
        now = self._clock() + delay
        self._offers[request.id] = Offer(request, now + turn * self.stagger, now, turn)
        return turn

    def recheck(self, offer: Offer) -> None:
        """A backup's turn came: before it claims, its stream is read once more (the first
        in line has usually taken the request, and the event saying so may not be read yet)."""
        offer.rechecked = True
        offer.due = self._clock() + RECHECK
        self._offers[offer.request.id] = offer

    def taken(self, request_id: object) -> None:
        """Another worker took it (or it was withdrawn)."""
        self._offers.pop(request_id, None)

    def clear(self) -> None:
        """After a gap in the stream: the sweep finds whatever is still pending."""
        self._offers.clear()

    def due(self, kind: str, limit: int | None = None) -> list[Offer]:
        """The offers of a kind whose turn has come (up to limit), oldest first (the order
        they were seen in), removed from here."""
        if limit is not None and limit <= 0:
            return []
        now = self._clock()
        ready = []
        for offer in self._offers.values():
            if offer.request.kind == kind and offer.due <= now:
                ready.append(offer)
                if len(ready) == limit:
                    break
        for offer in ready:
            del self._offers[offer.request.id]
        return ready

    def next_due(self, kinds: frozenset[str]) -> float | None:
        """When the next turn comes (monotonic) among offers of these kinds (those the worker
        can act on now: a full worker waits for a freed slot, not for a launch's turn)."""
        return min((offer.due for offer in self._offers.values() if offer.request.kind in kinds),
                   default=None)

    def expire(self, older_than: float) -> int:
        """Forget offers seen long ago whose taking was never seen (the sweep covers them);
        returns how many."""
        cutoff = self._clock() - older_than
        expired = [key for key, offer in self._offers.items() if offer.seen < cutoff]
        for request_id in expired:
            del self._offers[request_id]
        return len(expired)

    def __len__(self) -> int:
        return len(self._offers)
