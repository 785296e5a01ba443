"""Wakeups: the worker's change stream, read by a thread of its own, so the worker loop waits on
one bell that a change, a freed slot or a shutdown rings at once.

While the loop acts on what the stream said (claims), and while a claimed run is written Running,
the reader holds its next poll back (bounded, see ChangeFeed.hold): on a server that serves one
request at a time those writes would otherwise queue behind the poll."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from shards.errors import ShardsError, StoreUnavailable
from shards_store import ChangeFeed, ChangeFeedError

log = logging.getLogger("shards.worker")

READ_SLICE = 0.5  # the reader checks for a close at least this often
REOPEN_PAUSE = 1.0  # after a broken stream, before reading again


class Wakeups:
    def __init__(self, feed: ChangeFeed | None,
                 on_error: Callable[[ShardsError], None] = lambda error: None) -> None:
        self.feed = feed  # None: no change streams on this server, the worker polls
        self._on_error = on_error  # told at once, from the reader thread
        self._bell = threading.Event()
        self._changes: deque[dict[str, Any]] = deque()
        self._gap = False  # the stream broke: changes may have been missed
        self._closed = threading.Event()
        self._reader: threading.Thread | None = None
        self._loop_lock = threading.Lock()
        self._loop_holds = False  # the reader delivered changes the loop has not acted on yet

    def start(self) -> None:
        if self.feed is not None:
            self._reader = threading.Thread(target=self._read, name="shards-changes", daemon=True)
            self._reader.start()

    def ring(self) -> None:
        """Wake the waiting loop now (a freed slot, a shutdown)."""
        self._bell.set()

    def wait(self, timeout: float) -> None:
        """Bounded: returns when rung or after timeout seconds."""
        self._bell.wait(max(0.0, timeout))
        self._bell.clear()  # before taking the changes: one arriving later rings again

    def busy(self) -> None:
        """Something this worker acts on arrived: keep the stream quick for a while."""
        if self.feed is not None:
            self.feed.pace.busy()

    def nudge(self) -> None:
        """Read the stream again now (to learn whether a request was taken meanwhile)."""
        if self.feed is not None:
            self.settled()
            self.feed.nudge()

    def settled(self) -> None:
        """The loop has acted on the changes it took (claimed what it could): polls resume."""
        with self._loop_lock:
            if self._loop_holds and self.feed is not None:
                self.feed.release()
            self._loop_holds = False

    def hold(self) -> None:
        """A claimed run is about to be written Running: polls wait for it (release, once)."""
        if self.feed is not None:
            self.feed.hold()

    def release(self) -> None:
        if self.feed is not None:
            self.feed.release()

    def relax(self) -> None:
        """Nothing this worker could act on now (no free slot): let the stream back off."""
        if self.feed is not None:
            self.feed.pace.relax()

    def take(self) -> tuple[list[dict[str, Any]], bool]:
        """The changes since the last take, oldest first, and whether the stream broke
        meanwhile (changes may have been missed: sweep)."""
        gap, self._gap = self._gap, False
        changes = [self._changes.popleft() for _ in range(len(self._changes))]
        return changes, gap

    def close(self) -> None:
        self._closed.set()
        if self._reader is not None:
            self._reader.join(timeout=READ_SLICE * 4)

    def _read(self) -> None:
        assert self.feed is not None
        try:
            while not self._closed.is_set():
                try:
                    change = self.feed.next_change(READ_SLICE, interrupted=self._closed.is_set)
                except (StoreUnavailable, ChangeFeedError) as error:  # the feed reopens on the next read
                    self._broke(error)
                    continue
                except Exception as error:  # a bug must not silence the stream for good
                    log.exception("reading the change stream failed")
                    self._broke(ChangeFeedError(f"change stream reader failed: {error}"))
                    continue
                if change is not None:
                    self._hold_for_loop()
                    self._changes.append(change)
                    self._bell.set()
        finally:
            self.feed.close()

    def _hold_for_loop(self) -> None:
        assert self.feed is not None
        with self._loop_lock:
            if not self._loop_holds:
                self._loop_holds = True
                self.feed.hold()

    def _broke(self, error: ShardsError) -> None:
        self._on_error(error)
        self._gap = True
        self._bell.set()
        self._closed.wait(REOPEN_PAUSE)
