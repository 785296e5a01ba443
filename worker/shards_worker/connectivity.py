"""Whether this worker can reach MongoDB, logged once per change rather than once per failure."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from shards.errors import StoreUnavailable

log = logging.getLogger("shards.worker")


class Connectivity:
    def __init__(self, on_lost: Callable[[], None] = lambda: None) -> None:
        self._on_lost = on_lost  # called on every failure (observations must start afresh)
        self._lock = threading.Lock()
        self._down_since: float | None = None

    def failed(self, error: StoreUnavailable) -> None:
        self._on_lost()
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        log.warning("%s; retrying, unrecorded ends are kept until it is back", error)

    def ok(self) -> None:
        with self._lock:
            if self._down_since is None:
                return
            down, self._down_since = time.monotonic() - self._down_since, None
        log.info("MongoDB reachable again after %.1fs", down)

    @property
    def down(self) -> bool:
        return self._down_since is not None
