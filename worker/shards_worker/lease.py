"""This worker's own lease, judged as the others will judge it.

Others declare a worker lost once its heartbeat counter stood still for a whole lease on their
clocks, counted at the earliest from when its last successful heartbeat was sent. Before that
moment the worker must have stopped executing, or another worker could start the same process
while this one's code still runs. So: at half the lease without a renewal it asks its runs to
stop and claims nothing; near the end of the lease it kills the OS processes of those that still
execute (and exits only if some execute in its own threads: shards_worker.fencing).
"""

from __future__ import annotations

import time
from collections.abc import Callable

STOP_RUNS_AT = 0.5  # of the lease without a renewal: runs are asked to stop
END_AT = 0.85  # of the lease: still executing runs are killed (or end with the process)
# A run's own OS process is the backstop for a worker that cannot act at all (frozen): it asks its
# runs to stop, and exits, a little after the worker would have, and still before others may
# declare the worker lost (a whole lease after its last renewal was sent, on their clocks).
GUARD_STOP_AT = 0.6
GUARD_EXIT_AT = 0.95


class Lease:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._renewed_at = clock()

    def renewed(self, sent_at: float) -> None:
        """A heartbeat sent at `sent_at` (this clock) was acknowledged."""
        self._renewed_at = max(self._renewed_at, sent_at)

    def silence(self) -> float:
        return self._clock() - self._renewed_at

    def runs_must_stop(self) -> bool:
        return self.silence() >= STOP_RUNS_AT * self.seconds

    def runs_must_end(self) -> bool:
        return self.silence() >= END_AT * self.seconds

    def guard_deadlines(self) -> tuple[float, float]:
        """When a run's OS process asks itself to stop and when it exits, on the monotonic clock
        this machine's processes share, if its worker has not renewed the lease by then."""
        renewed = self._renewed_at
        return renewed + GUARD_STOP_AT * self.seconds, renewed + GUARD_EXIT_AT * self.seconds
