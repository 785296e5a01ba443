"""Wakeups: the reader's polls wait while the worker acts on what it read (claims, a run's start),
each hold released once; with a stand-in change stream (the real one: tests/integration)."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from shards_store import ChangeFeed
from shards_store.changes import HOLD_LIMIT
from shards_worker.wakeups import Wakeups
from tooling.harness import wait_until


class FakeStream:
    """Polls are counted; each returns the next queued change, or None."""

    def __init__(self) -> None:
        self.polls = 0
        self.queued: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.alive = True

    def try_next(self) -> dict[str, Any] | None:
        with self.lock:
            self.polls += 1
            return self.queued.pop(0) if self.queued else None

    def close(self) -> None:
        pass


def _feed() -> tuple[ChangeFeed, FakeStream]:
    feed = ChangeFeed(cast(Any, None), {}, full_document=False)
    stream = FakeStream()
    feed._stream = cast(Any, stream)  # as open() would
    return feed, stream


def test_a_hold_keeps_polls_back_until_released_and_at_most_the_limit() -> None:
    feed, stream = _feed()
    feed.hold()
    began = time.monotonic()
    assert feed.next_change(0.0) is None  # one poll, after waiting out the hold's limit
    assert time.monotonic() - began >= HOLD_LIMIT * 0.9
    feed.release()
    assert feed._unheld.is_set()  # released: the next poll does not wait
    feed.release()  # a release too many never holds polls back
    feed.next_change(0.0)
    assert stream.polls == 2 and feed._unheld.is_set()


def test_the_reader_holds_for_the_loop_once_until_it_has_settled() -> None:
    feed, stream = _feed()
    stream.queued = [{"operationType": "insert"}, {"operationType": "insert"}]
    wakeups = Wakeups(feed)
    wakeups.start()
    try:
        wakeups.wait(10)
        wait_until(lambda: len(wakeups._changes) == 2 or stream.polls > 4, 10, "both changes read")
        assert feed._holds == 1  # one hold for the loop, however many changes
        wakeups.hold()  # a claimed run's start
        wakeups.settled()  # the loop is done with the changes
        assert feed._holds == 1
        wakeups.settled()  # once only
        assert feed._holds == 1
        wakeups.release()  # the start was written
        assert feed._holds == 0 and feed._unheld.is_set()
    finally:
        wakeups.close()
