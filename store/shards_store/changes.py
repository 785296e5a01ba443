"""Change streams: how workers and the operator are woken instead of polling."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from pymongo import monitoring
from pymongo.change_stream import CollectionChangeStream
from pymongo.errors import ConnectionFailure, PyMongoError
from shards.errors import ShardsError, StoreUnavailable

from shards_store.collection import Collection, describe_outage

SERVER_AWAIT = 0.25  # maxAwaitTimeMS: how long a server that honours it holds an empty getMore
HOLD_LIMIT = 0.02  # seconds a poll waits at most for the follower's writes to go first (see hold)


class PollPace:
    """The pause between two empty polls on a server that answers at once (one that ignores
    maxAwaitTimeMS, such as the embedded server): the shortest while the follower is busy
    (for `hot_for` seconds after the follower said so), doubling up to the longest when idle.
    So a busy follower answers within milliseconds and an idle one costs the server little."""

    def __init__(self, shortest: float = 0.002, longest: float = 0.25, hot_for: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < shortest <= longest:
            raise ShardsError(f"the poll pauses must satisfy 0 < shortest ({shortest:g}s) "
                              f"<= longest ({longest:g}s)")
        self.shortest, self.longest, self.hot_for = shortest, longest, hot_for
        self._clock = clock
        self._pause = longest
        self._hot_until = 0.0

    def busy(self) -> None:
        """Something relevant happened: poll at the shortest pause for a while."""
        self._hot_until = self._clock() + self.hot_for
        self._pause = self.shortest

    def relax(self) -> None:
        """Nothing can be acted on for now (a worker without a free slot): back off."""
        self._hot_until = 0.0

    def next_pause(self) -> float:
        if self._clock() < self._hot_until:
            return self.shortest
        pause, self._pause = self._pause, min(self._pause * 2, self.longest)
        return pause


class ChangeFeedError(ShardsError):
    """The stream broke or the server has none; callers sweep and reopen, or poll."""


class ChangeFeedEnded(ChangeFeedError):
    """The stream ended without an error (the server closed its cursor, or the client dropped its
    connections since it was opened): callers sweep and open it again."""


class ServerLosses(monitoring.ConnectionPoolListener):
    """Counts the times the client dropped its connections to the server (a network error or a
    failed heartbeat clears the pool), told at once by pymongo. A stream opened before a loss is
    opened again rather than continued: a restarted embedded server gives the ids of the cursors
    it forgot to new ones, so a getMore may read another client's stream (see the conformance
    module). Only the clearing counts; the other events cost a no-op call each."""

    def __init__(self) -> None:
        self.count = 0

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        self.count += 1

    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        pass

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        pass

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        pass

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        pass

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        pass

    def connection_check_out_started(self, event: monitoring.ConnectionCheckOutStartedEvent) -> None:
        pass

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        pass

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        pass

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        pass


class ChangeFeed:
    """A change stream on one collection; full documents come from updateLookup, never from
    updateDescription (which some servers leave out)."""

    def __init__(self, collection: Collection, match: dict[str, Any], *, full_document: bool = True,
                 pace: PollPace | None = None, busy_on_change: bool = True,
                 losses: ServerLosses | None = None) -> None:
        self._collection = collection
        self._losses = losses or ServerLosses()  # the client's (Store.server_losses)
        self._losses_at_open = 0
        self._busy_on_change = busy_on_change  # False: the follower says itself what is relevant
        self._match = match  # filtered by the server: a follower sees only what it acts on
        self._full_document = "updateLookup" if full_document else None
        self.pace = pace or PollPace()
        self._stream: CollectionChangeStream[dict[str, Any]] | None = None
        self._nudged = threading.Event()  # ends a pause between polls at once
        self._holds = 0  # writes of the follower under way that polls let go first
        self._holds_lock = threading.Lock()
        self._unheld = threading.Event()
        self._unheld.set()

    def open(self) -> None:
        self._losses_at_open = self._losses.count
        try:
            self._stream = self._collection.mongo.watch(
                [{"$match": self._match}], full_document=self._full_document,
                max_await_time_ms=int(SERVER_AWAIT * 1000),
            )
        except ConnectionFailure as error:
            raise StoreUnavailable(describe_outage(error)) from error
        except PyMongoError as error:
            name = self._collection.name
            raise ChangeFeedError(f"no change stream on {name}: {_one_line(error)}") from error

    def next_change(
        self, timeout: float, interrupted: Callable[[], bool] = lambda: False
    ) -> dict[str, Any] | None:
        """The next change within timeout seconds, or None (also as soon as `interrupted()`)."""
        if self._stream is None:
            self.open()
        assert self._stream is not None
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._unheld.wait(HOLD_LIMIT)
                if self._losses.count != self._losses_at_open:
                    self.close()
                    raise ChangeFeedEnded(f"the change stream on {self._collection.name} was opened "
                                          "before the connections to MongoDB were lost; opening it again")
                polled = time.monotonic()
                change = self._stream.try_next()
                if change is not None:
                    if self._busy_on_change:
                        self.pace.busy()
                    return change
                if not self._stream.alive:  # pymongo gives no error for a cursor the server ended
                    self.close()
                    raise ChangeFeedEnded(f"the server ended the change stream on {self._collection.name}; "
                                          "opening it again")
                now = time.monotonic()
                if now >= deadline or interrupted():
                    return None
                if now - polled < SERVER_AWAIT / 5:  # the server did not wait for a change
                    self._nudged.wait(min(self.pace.next_pause(), deadline - now))
                    self._nudged.clear()
        except ConnectionFailure as error:  # the server is away: one outage, reported as such
            self.close()
            raise StoreUnavailable(describe_outage(error)) from error
        except PyMongoError as error:
            self.close()
            name = self._collection.name
            raise ChangeFeedError(f"change stream on {name} broke: {_one_line(error)}") from error

    def nudge(self) -> None:
        """Poll again now rather than after the current pause (from any thread)."""
        self._nudged.set()

    def hold(self) -> None:
        """The follower is acting on what it read (a claim, a run's start): the next poll waits
        until it is done (release), at most HOLD_LIMIT. A server that serves one request at a
        time (the embedded one) otherwise has a poll in hand when those writes arrive, and they
        wait for it: measured, a claim took 1.2 ms behind a poll and 0.5 ms alone."""
        with self._holds_lock:
            self._holds += 1
            self._unheld.clear()

    def release(self) -> None:
        """One hold is over (each hold is released once)."""
        with self._holds_lock:
            self._holds = max(0, self._holds - 1)
            if self._holds == 0:
                self._unheld.set()

    def close(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(PyMongoError):  # closing a broken stream is best effort
                self._stream.close()
            self._stream = None


def _one_line(error: PyMongoError) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
