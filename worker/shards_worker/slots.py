"""The worker's concurrency slots: a launch takes one from its claim until its thread ends (its
inline children run inside it)."""

from __future__ import annotations

import threading


class Slots:
    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._taken = 0

    def take(self) -> bool:
        """Take a slot (the caller saw one free); returns whether none is left."""
        with self._lock:
            self._taken += 1
            return self._taken >= self.size

    def release(self) -> None:
        with self._lock:
            self._taken -= 1

    def free(self) -> int:
        with self._lock:
            return self.size - self._taken
