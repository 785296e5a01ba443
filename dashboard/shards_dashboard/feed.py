"""One change stream per dashboard process, whatever the number of open pages: a thread reads
the processes collection's changes and publishes each record to the hub, which coalesces them
per page.

Fallbacks: a server without change streams (or one that loses them) is polled instead, every
`poll` seconds (1 s if none is given); `--poll S` also polls the watched scopes beside the
stream, for servers whose change events miss some writes (mongo-java-server emits none for
find_one_and_update, which every state change uses). Polls publish only records that differ
from what was last published. After an outage, or when a record is deleted (a purge), every
page gets a full snapshot."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from shards.errors import StoreUnavailable
from shards.records import ProcessRecord
from shards_store import Store
from shards_store.changes import ChangeFeed, ChangeFeedEnded, ChangeFeedError, PollPace

from shards_dashboard.hub import Hub

log = logging.getLogger("shards.dashboard")
# The embedded server answers an empty getMore at once: poll it every 2 ms while changes flow,
# doubling to 50 ms when quiet, so a change reaches a page well within 100 ms.
STREAM_POLL = (0.002, 0.05)
OUTAGE_PAUSE = 1.0
MATCH = {"operationType": {"$in": ["insert", "update", "replace", "delete"]}}


class Follower:
    def __init__(self, store: Store, hub: Hub, *, poll: float = 0.0, streams: bool = True) -> None:
        self.store = store
        self.hub = hub
        self.poll = poll
        self.streams = streams
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-feed", daemon=True)
        self._seen: dict[tuple[str, str], dict[str, Any]] = {}  # last published, for polls
        self._lock = threading.Lock()
        self.changes = 0  # change events read (the bench reads it through /api/stats)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    # -- the loop -----------------------------------------------------------------------------
    def _read_stream(self, feed: ChangeFeed | None) -> ChangeFeed | None:
        """One read of the stream, opened first if need be; None once the stream ended (it is
        opened again at the next read, and every page reads afresh what it may have missed)."""
        if feed is None:
            feed = ChangeFeed(self.store.processes.collection, MATCH, pace=PollPace(*STREAM_POLL),
                              losses=self.store.server_losses)
            feed.open()
        try:
            change = feed.next_change(timeout=0.5, interrupted=self._stop.is_set)
        except ChangeFeedEnded as error:
            log.info("dashboard: %s", error)
            self.hub.resync()
            return None
        if change is not None:
            self._handle(change)
        return feed

    def _run(self) -> None:
        feed: ChangeFeed | None = None
        next_poll = time.monotonic() + self.poll if self.poll > 0 else float("inf")
        while not self._stop.is_set():
            try:
                if self.streams:
                    feed = self._read_stream(feed)
                else:
                    self._stop.wait(min(0.5, max(0.0, next_poll - time.monotonic())))
                    if next_poll == float("inf"):
                        next_poll = time.monotonic()  # polling only: every 1 s unless told
                if time.monotonic() >= next_poll:
                    self.poll_once()
                    next_poll = time.monotonic() + (self.poll or 1.0)
            except ChangeFeedError as error:
                log.warning("dashboard: %s; polling the watched scopes every %s s instead",
                            error, self.poll or 1.0)
                self.streams, feed = False, None
            except StoreUnavailable as error:
                log.warning("dashboard: %s; retrying in %s s", error, OUTAGE_PAUSE)
                if feed is not None:
                    feed.close()
                feed = None
                self._stop.wait(OUTAGE_PAUSE)
                self.hub.resync()  # what changed meanwhile was not seen: every page starts over
            except Exception:  # never let the feed die silently: log it and start again
                log.exception("dashboard: the change feed failed; reopening it")
                if feed is not None:
                    feed.close()
                feed = None
                self._stop.wait(OUTAGE_PAUSE)
                self.hub.resync()
        if feed is not None:
            feed.close()

    def _handle(self, change: dict[str, Any]) -> None:
        self.changes += 1
        if change.get("operationType") == "delete":
            self.hub.resync()  # a delete names no scope: every page reloads (purges are rare)
            return
        doc = change.get("fullDocument")
        if not doc or "scopeId" not in doc:
            return  # deleted before the lookup: its delete event follows
        self.publish(ProcessRecord.from_doc(doc))

    def publish(self, record: ProcessRecord) -> None:
        document = record.to_json()
        key = (record.scope_id, record.process_id)
        with self._lock:
            self._seen[key] = document
        self.hub.publish(record.scope_id, record.process_id, document)

    def poll_once(self) -> None:
        """Read each watched scope once and publish the records that changed since."""
        watched = self.hub.scopes()
        with self._lock:
            for key in [k for k in self._seen if k[0] not in watched]:
                del self._seen[key]
        for scope in watched:
            for record in self.store.processes.in_scope(scope):
                document = record.to_json()
                with self._lock:
                    same = self._seen.get((scope, record.process_id)) == document
                if not same:
                    self.publish(record)
