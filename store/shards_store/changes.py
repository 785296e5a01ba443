"""Change streams: how workers (and later the operator) are woken instead of polling."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from pymongo.change_stream import CollectionChangeStream
from pymongo.errors import ConnectionFailure, PyMongoError
from shards.errors import ShardsError, StoreUnavailable

from shards_store.collection import Collection, describe_outage

# The shortest pause between two empty polls, so a server that does not wait never makes a
# follower spin.
IDLE_POLL = 0.05


class ChangeFeedError(ShardsError):
    """The stream broke or the server has none; callers sweep and reopen, or poll."""


class ChangeFeed:
    """A change stream on one collection; full documents come from updateLookup, never from
    updateDescription (which some servers leave out)."""

    def __init__(self, collection: Collection, operations: list[str]) -> None:
        self._collection = collection
        self._operations = operations
        self._stream: CollectionChangeStream[dict[str, Any]] | None = None

    def open(self) -> None:
        pipeline = [{"$match": {"operationType": {"$in": self._operations}}}]
        try:
            self._stream = self._collection.mongo.watch(
                pipeline, full_document="updateLookup", max_await_time_ms=250
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
                polled = time.monotonic()
                change = self._stream.try_next()
                if change is not None:
                    return change
                now = time.monotonic()
                if now >= deadline or interrupted():
                    return None
                if now - polled < IDLE_POLL:  # the server did not wait (maxAwaitTimeMS ignored)
                    time.sleep(min(IDLE_POLL, deadline - now))
        except ConnectionFailure as error:  # the server is away: one outage, reported as such
            self.close()
            raise StoreUnavailable(describe_outage(error)) from error
        except PyMongoError as error:
            self.close()
            name = self._collection.name
            raise ChangeFeedError(f"change stream on {name} broke: {_one_line(error)}") from error

    def close(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(PyMongoError):  # closing a broken stream is best effort
                self._stream.close()
            self._stream = None


def _one_line(error: PyMongoError) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
