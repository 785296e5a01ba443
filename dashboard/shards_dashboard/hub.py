"""The fan-out: every change the feed reads goes to the pages open on its scope, coalesced.

A page keeps only the latest document per process id until it is sent, and is sent at most
every `interval` seconds, so a process that reports progress 1,000 times a second costs a page
at most ten messages a second, and 1,000 processes changing at once one message. What a page
holds is bounded: past `limit` pending ids it drops them and takes a full snapshot instead.
Plain Python and thread-safe: the feed publishes from its thread; pages drain in the server's
event loop (their `wake` callback hands over to it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from shards.errors import ShardsError

Doc = dict[str, Any]
FLUSH_INTERVAL = 0.1  # seconds between two messages to one page
PAGE_LIMIT = 2000  # pending process ids per page before it gets a full snapshot instead
MAX_PAGES = 100  # live pages at once (each holds a connection and a queue: about 30 KB)
MAX_PER_CLIENT = 20  # live pages of one client address (a proxy in front counts as one client)


class TooManyPages(ShardsError):
    """Every live slot is taken; a new page is refused (503) rather than queued."""


class Page:
    """One open page (one push channel) on one scope."""

    def __init__(self, scope: str, wake: Callable[[], None], *, limit: int = PAGE_LIMIT,
                 interval: float = FLUSH_INTERVAL, client: str = "") -> None:
        self.scope = scope
        self.client = client  # the address it was opened from
        self.limit = limit
        self.interval = interval
        self._wake = wake
        self._lock = threading.Lock()
        self._pending: dict[str, Doc] = {}
        self._resync = False
        self._last_flush = float("-inf")
        self.offered = 0  # documents offered, and messages sent: what coalescing saved
        self.sent = 0

    def offer(self, process_id: str, doc: Doc) -> None:
        with self._lock:
            self.offered += 1
            idle = not self._pending and not self._resync
            if self._resync:
                return  # a snapshot is due anyway
            self._pending[process_id] = doc
            if len(self._pending) > self.limit:
                self._pending.clear()
                self._resync = True
        if idle:
            self._wake()

    def resync(self) -> None:
        """Send a full snapshot next (records were removed, or the page fell behind)."""
        with self._lock:
            idle = not self._pending and not self._resync
            self._pending.clear()
            self._resync = True
        if idle:
            self._wake()

    def delay(self, now: float) -> float:
        """Seconds to wait before the next message may go out."""
        return max(0.0, self._last_flush + self.interval - now)

    def take(self, now: float) -> tuple[list[Doc], bool]:
        """What to send now: the latest document per changed process, and whether a full
        snapshot is due instead (then the list is empty)."""
        with self._lock:
            docs, resync = list(self._pending.values()), self._resync
            self._pending.clear()
            self._resync = False
        if docs or resync:
            self._last_flush = now
            self.sent += 1
        return docs, resync

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)


class Hub:
    """The pages of every scope; the feed publishes here, pages subscribe."""

    def __init__(self, *, limit: int = PAGE_LIMIT, interval: float = FLUSH_INTERVAL,
                 max_pages: int = MAX_PAGES, max_per_client: int = MAX_PER_CLIENT) -> None:
        self.limit = limit
        self.max_pages = max_pages  # live pages at once: each holds a connection and a queue
        self.max_per_client = max_per_client
        self.interval = interval
        self._lock = threading.Lock()
        self._pages: dict[str, set[Page]] = {}
        self.changed = threading.Event()  # the set of watched scopes changed (for a polling feed)

    def subscribe(self, scope: str, wake: Callable[[], None], client: str = "") -> Page:
        page = Page(scope, wake, limit=self.limit, interval=self.interval, client=client)
        with self._lock:
            live = [page for pages in self._pages.values() for page in pages]
            if len(live) >= self.max_pages:
                raise TooManyPages(f"too many live pages ({self.max_pages}, the dashboard's "
                                   "--max-live); try again later")
            if sum(1 for other in live if other.client == client) >= self.max_per_client:
                raise TooManyPages(f"too many live pages from this client ({self.max_per_client}, the "
                                   "dashboard's --max-live-per-client); close some of its tabs")
            self._pages.setdefault(scope, set()).add(page)
        self.changed.set()
        return page

    def unsubscribe(self, page: Page) -> None:
        with self._lock:
            pages = self._pages.get(page.scope)
            if pages is not None:
                pages.discard(page)
                if not pages:
                    del self._pages[page.scope]

    def scopes(self) -> set[str]:
        with self._lock:
            return set(self._pages)

    def pages(self, scope: str | None = None) -> list[Page]:
        with self._lock:
            if scope is not None:
                return list(self._pages.get(scope, ()))
            return [page for pages in self._pages.values() for page in pages]

    def publish(self, scope: str, process_id: str, doc: Doc) -> None:
        for page in self.pages(scope):
            page.offer(process_id, doc)

    def resync(self, scope: str | None = None) -> None:
        """Every page (of the scope) gets a full snapshot next."""
        for page in self.pages(scope):
            page.resync()
