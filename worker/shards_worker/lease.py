"""This worker's own lease, judged as the others will judge it.

Others declare a worker lost once its heartbeat counter stood still for a whole lease on their
clocks, counted at the earliest from when its last successful heartbeat was sent. Before that
moment the worker must have stopped executing, or another worker could start the same process
while this one's code still runs. So: at half the lease without a renewal it asks its runs to
stop and claims nothing; if some still execute near the end of the lease, the process exits.
"""

from __future__ import annotations

import time
from collections.abc import Callable

STOP_RUNS_AT = 0.5  # of the lease without a renewal: runs are asked to stop
EXIT_AT = 0.85  # of the lease: still executing runs end with the process


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

    def process_must_exit(self) -> bool:
        return self.silence() >= EXIT_AT * self.seconds

    def deadlines(self) -> tuple[float, float]:
        """When runs must be asked to stop and when they must have ended, on the monotonic clock
        this machine's processes share: a run's OS process holds itself to them (a frozen worker
        cannot)."""
        return self._renewed_at + STOP_RUNS_AT * self.seconds, self._renewed_at + EXIT_AT * self.seconds
