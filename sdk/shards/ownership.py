"""Ownership: who keeps an active record alive, and how a record nobody owns is ended.

The invariant: every active record has a live owner, or it is settled. A launch not yet started
(Scheduled, or StopRequested before any worker took it) is owned by its launch request, pending
or taken by a live worker; a run that executes (Running, StopRequested, Stopping) is owned by the
live worker incarnation named in its workerId. Liveness is judged without comparing clocks of
different hosts: an observer watches a worker's heartbeat counter on its own monotonic clock.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from shards.records import ProcessRecord
from shards.states import State

NEVER_QUEUED = "the launch was never queued (its client went away before queuing it)"


@dataclass(frozen=True)
class Verdict:
    """How to end an active record that has no owner."""

    state: State
    error: str


def is_owned(record: ProcessRecord, *, live_workers: set[str], queued_runs: set[str]) -> bool:
    """True when a live worker runs the record, or a live request will start it."""
    if record.worker_id:
        return record.worker_id in live_workers
    return record.run_id in queued_runs


def orphan_verdict(record: ProcessRecord, worker_end: str = "") -> Verdict:
    """The end of an active record nobody owns; worker_end says why its worker went away."""
    if record.worker_id:
        return Verdict(State.FAILED, worker_end or f"worker {record.worker_id} is gone")
    if record.state is State.STOP_REQUESTED:
        return Verdict(State.STOPPED, "")  # stopped before any worker started it
    return Verdict(State.FAILED, NEVER_QUEUED)


class SilenceWatch:
    """How long each watched value has stayed the same, on this observer's monotonic clock.

    A worker is lost when its heartbeat counter stays put for a whole lease; a record is an
    orphan when it stays without an owner for a grace period. Observations made before this
    observer was itself cut off from MongoDB prove nothing, so they are forgotten then.
    """

    def __init__(self) -> None:
        self._seen: dict[Hashable, tuple[Hashable, float]] = {}

    def unchanged_for(self, key: Hashable, value: Hashable, now: float) -> float:
        seen = self._seen.get(key)
        if seen is None or seen[0] != value:
            self._seen[key] = (value, now)
            return 0.0
        return now - seen[1]

    def keep_only(self, keys: Iterable[Hashable]) -> None:
        wanted = set(keys)
        for key in [key for key in self._seen if key not in wanted]:
            del self._seen[key]

    def forget(self) -> None:
        self._seen.clear()
