"""How a worker runs: its slots, its lease, and how it waits for work."""

from __future__ import annotations

from dataclasses import dataclass

from shards.app import check_pool
from shards.errors import InvalidDefinition, ShardsError
from shards.records import DEFAULT_POOL

ISOLATIONS = ("process", "thread")


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = 1
    pool: str = DEFAULT_POOL  # this worker claims launches of this pool's processes only
    heartbeat_interval: float = 2.0  # seconds between lease renewals
    # A worker whose heartbeat stands still this long is declared lost. Long enough that an
    # outage of MongoDB as long as a replica-set election (10-15 s, plus a heartbeat) stays under
    # half of it, where runs are asked to stop (shards_worker.lease); a crashed worker restarted
    # under its name is settled at once, so only a lost machine waits the whole lease.
    lease: float = 45.0
    progress_interval: float = 0.5  # at most one progress write per run per interval
    poll_interval: float = 1.0  # without change streams: seconds between sweeps
    sweep_interval: float = 5.0  # with change streams: the backstop sweep, for anything missed
    claim_stagger: float = 0.02  # seconds per place in line before a backup worker claims
    stream_poll_min: float = 0.002  # on a server that does not wait: pause when busy...
    stream_poll_max: float = 0.25  # ...doubling to this when idle
    poll_only: bool = False  # never open a change stream (a baseline, or a server without them)
    shutdown_grace: float = 20.0  # how long running processes get to stop cooperatively
    orphan_grace: float = 5.0  # how long an active record may lack an owner before it is settled
    isolation: str = "process"  # each top-level run in an OS process of its own, or a thread
    stop_grace: float = 10.0  # seconds after a stop request before an isolated run is killed

    def __post_init__(self) -> None:
        try:
            check_pool(self.pool)
        except InvalidDefinition as error:
            raise ShardsError(f"--pool: {error}") from None
        # Others judge this worker on its lease; it renews several times per lease, and stops
        # its runs at half of it, so a missed beat or two is never mistaken for a loss.
        if self.heartbeat_interval * 3 > self.lease * 1.000001:  # (float rounding)
            raise ShardsError(f"the heartbeat interval ({self.heartbeat_interval:g}s) must be at most "
                              f"a third of the lease ({self.lease:g}s)")
        if self.isolation not in ISOLATIONS:
            raise ShardsError(f"--isolation must be one of {', '.join(ISOLATIONS)}, got {self.isolation!r}")
        if self.stop_grace < 0:
            raise ShardsError(f"--stop-grace must not be negative, got {self.stop_grace:g}")
        if self.stream_poll_min > self.stream_poll_max:
            raise ShardsError(f"--stream-poll-min ({self.stream_poll_min:g}s) must not exceed "
                              f"--stream-poll-max ({self.stream_poll_max:g}s)")
