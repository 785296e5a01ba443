"""A run's log buffer: lines wait here until the heartbeat writes them, a batch per interval.

A process may log as often as it likes: appending is a list append under a lock. The worker
writes what came since the last flush in one update per run per progress interval (and once
more when the run ends), never one write per line. The store keeps a run's last MAX_LINES lines
and at most MAX_BYTES of them; the buffer mirrors the sizes of the lines the store keeps, so each
write says how many to keep (`$push` with `$each` and `$slice`) and how many were dropped before
them (the reader's marker "… N earlier lines dropped"). What waits in memory is bounded the same
way (a store outage or a chatty loop drops the oldest, counted as dropped).

Under process isolation the run's OS process has a buffer of its own: its batches cross the pipe
to the worker (lines and how many were dropped on the way), whose buffer bounds and writes them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shards.runlog import MAX_BYTES, MAX_LINES, clip

if TYPE_CHECKING:
    from shards.records import ProcessRecord
    from shards_store import Store


@dataclass(frozen=True)
class LogBatch:
    """What one flush delivers: the lines to add (oldest first), how many appended lines were
    dropped before reaching this batch, and what the store keeps after it."""

    lines: list[str]
    skipped: int  # appended lines dropped in memory before this batch (not in `lines`)
    keep: int  # lines the store keeps after this batch (the $slice)
    dropped: int  # lines of the run dropped in all, after this batch (the marker's count)


def size_of(line: str) -> int:
    return len(line) if line.isascii() else len(line.encode("utf-8", "replace"))


class LogBuffer:
    def __init__(self, max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._lock = threading.Lock()  # appends and takes
        self._flushing = threading.Lock()  # one flush at a time: batches are delivered in order
        self._pending: deque[tuple[str, int]] = deque()
        self._pending_bytes = 0
        self._skipped = 0  # appended, then dropped before a flush took them
        self._kept: deque[int] = deque()  # sizes of the lines the store keeps, oldest first
        self._kept_bytes = 0
        self.delivered = 0  # appended lines accounted for by delivered batches
        self.appended = 0  # lines appended in all (for metrics and tests)

    def append(self, line: str) -> None:
        line = clip(line)
        size = size_of(line)
        with self._lock:
            self._pending.append((line, size))
            self._pending_bytes += size
            self.appended += 1
            self._bound()

    __call__ = append  # the sink ctx.log writes to

    def extend(self, lines: list[str], skipped: int = 0) -> None:
        """A batch relayed from a run's OS process: its lines, and how many it dropped first."""
        with self._lock:
            self._skipped += skipped
            self.appended += skipped
        for line in lines:
            self.append(line)

    def _bound(self) -> None:
        while self._pending and (len(self._pending) > self.max_lines or self._pending_bytes > self.max_bytes):
            _, size = self._pending.popleft()
            self._pending_bytes -= size
            self._skipped += 1

    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + self._skipped

    def flush(self, deliver: Callable[[LogBatch], None]) -> bool:
        """Deliver what came since the last flush as one batch (nothing if nothing came); the
        lines go back to the buffer if delivering raises. Returns whether a batch was delivered."""
        with self._flushing:
            with self._lock:
                if not self._pending and not self._skipped:
                    return False
                taken, skipped = list(self._pending), self._skipped
                self._pending, self._pending_bytes, self._skipped = deque(), 0, 0
            kept, kept_bytes = deque(self._kept), self._kept_bytes
            for _, size in taken:
                kept.append(size)
                kept_bytes += size
                while len(kept) > self.max_lines or kept_bytes > self.max_bytes:
                    kept_bytes -= kept.popleft()
            keep = len(kept)
            lines = [line for line, _ in taken[-keep:]] if keep else []
            dropped = self.delivered + skipped + len(taken) - keep
            try:
                deliver(LogBatch(lines, skipped, keep, dropped))
            except BaseException:
                self._put_back(taken, skipped)
                raise
            self._kept, self._kept_bytes = kept, kept_bytes
            self.delivered += skipped + len(taken)
            return True

    def _put_back(self, taken: list[tuple[str, int]], skipped: int) -> None:
        with self._lock:
            self._pending.extendleft(reversed(taken))
            self._pending_bytes += sum(size for _, size in taken)
            self._skipped += skipped
            self._bound()


def write_log(store: Store, record: ProcessRecord, buffer: LogBuffer) -> bool:
    """Write the run's new lines in one update (nothing if none came); whether it wrote."""
    def deliver(batch: LogBatch) -> None:
        store.runlogs.append(record.run_id, record.scope_id, record.process_id, batch.lines,
                             keep=batch.keep, dropped=batch.dropped)

    return buffer.flush(deliver)
