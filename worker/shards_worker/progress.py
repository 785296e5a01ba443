"""Coalesced progress: a process may report as often as it likes; the worker writes the latest
value at most once per flush interval, and always writes the last one."""

from __future__ import annotations

import threading

from shards.records import Progress


class ProgressBuffer:
    def __init__(self, initial: Progress | None = None) -> None:
        self._lock = threading.Lock()
        self._latest = initial or Progress()
        self._dirty = False
        self.reports = 0  # how many times the process reported (for metrics and tests)

    def report(self, message: str, rate: float) -> None:
        with self._lock:
            self._latest = Progress(message, rate)
            self._dirty = True
            self.reports += 1

    def take(self) -> Progress | None:
        """The latest value if it changed since the last take, else None."""
        with self._lock:
            if not self._dirty:
                return None
            self._dirty = False
            return self._latest

    def latest(self) -> Progress:
        with self._lock:
            return self._latest
