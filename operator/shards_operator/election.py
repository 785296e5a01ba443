"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules (plain Python: the
Lease is read and written through a `LeaseApi`, see shards_operator.leases for the real one).

- A candidate takes a Lease whose holder is empty (released), or whose record it has seen
  unchanged for the record's own leaseDurationSeconds, measured on ITS clock from the moment it
  saw the record change (so clock skew between replicas does not matter).
- Every write carries the resourceVersion it read: of two candidates, one wins, the other gets a
  conflict and stays a standby.
- The leader renews every retry period. When no renewal has succeeded for the renew deadline
  (counted from the moment the last good renewal was SENT) it must stop acting at once; the
  others cannot take over before the lease duration has passed since they saw that renewal, which
  is later. So two leaders never act at once, as long as renew deadline < lease duration.
- On a graceful stop the leader releases the Lease (empty holder, leaseDurationSeconds 1, as
  client-go's ReleaseOnCancel does): a standby takes over at its next try.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

log = logging.getLogger("shards.operator")

JITTER = 1.2  # client-go's JitterFactor: the renew deadline must exceed JITTER * retry period


@dataclass(frozen=True)
class Timings:
    """client-go's defaults (kube-controller-manager's too)."""

    lease_duration: float = 15.0  # how long the others wait on a record that stopped changing
    renew_deadline: float = 10.0  # how long the leader keeps trying to renew before it stops
    retry_period: float = 2.0  # between the leader's renewals (and its retries of one)
    # Between a standby's reads: a GET, and a write only once the Lease is free or expired.
    # client-go reads every retry period; reading more often lets a released Lease pass in
    # well under a second, for one cheap GET per interval and standby.
    standby_poll: float = 0.5

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > JITTER * self.retry_period > 0:
            raise ValueError("leader election needs lease duration > renew deadline > 1.2 x retry period > 0")
        if not 0 < self.standby_poll <= self.retry_period:
            raise ValueError("leader election needs 0 < standby poll <= retry period")


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease's spec says, and the resourceVersion it was read at ("" before it exists)."""

    holder: str  # holderIdentity; "" when released
    duration_seconds: int  # leaseDurationSeconds
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int  # leaseTransitions: how many times the holder changed
    version: str = ""


class LeaseError(Exception):
    """The Lease could not be read or written (API server away, timeout, forbidden, ...)."""


class LeaseConflict(LeaseError):
    """Another writer changed (or created) the Lease first: this write did not happen."""


class LeaseApi(Protocol):
    def get(self, timeout: float) -> LeaseRecord | None:
        """The Lease, or None when there is none. Raises LeaseError."""

    def create(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        """Create it as `record` says. Raises LeaseConflict when it exists, LeaseError."""

    def update(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        """Replace it if its resourceVersion is still record.version. Raises LeaseConflict, LeaseError."""


class Stop(Protocol):
    """threading.Event in production; a fake clock's in tests."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Elector:
    """One candidate. `clock` is monotonic seconds; `wall` gives the MicroTimes written to the Lease."""

    def __init__(self, api: LeaseApi, identity: str, timings: Timings = Timings(), *,
                 clock: Callable[[], float], wall: Callable[[], datetime] = wall_clock,
                 jitter: Callable[[], float] = random.random) -> None:
        if not identity:
            raise ValueError("leader election needs an identity")
        self.api, self.identity, self.timings = api, identity, timings
        self.clock, self.wall, self.jitter = clock, wall, jitter
        self.observed: LeaseRecord | None = None
        self.observed_at = 0.0  # clock() when the observed record last changed
        self.renewed_at = 0.0  # clock() just before the request of the last successful write
        self.leading = False

    # -- one try --------------------------------------------------------------------------------
    def try_acquire_or_renew(self, timeout: float | None = None) -> bool:
        """One read and at most one write: True when this candidate holds the Lease afterwards."""
        timeout = self.timings.retry_period if timeout is None else timeout
        sent_at, now = self.clock(), self.wall()
        try:
            current = self.api.get(timeout)
            if current is None:
                return self._wrote(self.api.create(self._record(now, None), timeout), sent_at)
            if current != self.observed:
                self.observed, self.observed_at = current, self.clock()
            if current.holder != self.identity and self.held_by_another(current):
                self.leading = False
                return False
            return self._wrote(self.api.update(self._record(now, current), timeout), sent_at)
        except LeaseConflict:
            log.info("shards.operator: the lease was written by another candidate first")
            return False
        except LeaseError as error:
            log.warning("shards.operator: lease not %s: %s", "renewed" if self.leading else "acquired", error)
            return False

    def held_by_another(self, record: LeaseRecord) -> bool:
        """A holder, and its record seen unchanged for less than its own lease duration."""
        return bool(record.holder) and self.clock() < self.observed_at + record.duration_seconds

    def _record(self, now: datetime, current: LeaseRecord | None) -> LeaseRecord:
        duration = int(self.timings.lease_duration)
        if current is None:
            return LeaseRecord(self.identity, duration, now, now, 0)
        if current.holder == self.identity:  # a renewal keeps the acquire time and the count
            return replace(current, duration_seconds=duration, renew_time=now)
        return replace(current, holder=self.identity, duration_seconds=duration, acquire_time=now,
                       renew_time=now, transitions=current.transitions + 1)

    def _wrote(self, record: LeaseRecord, sent_at: float) -> bool:
        if not self.leading:
            log.info("shards.operator: %s now leads (lease transitions: %d)", self.identity,
                     record.transitions)
        self.observed, self.observed_at, self.renewed_at = record, self.clock(), sent_at
        self.leading = True
        return True

    # -- the loops ------------------------------------------------------------------------------
    def acquire(self, stop: Stop) -> bool:
        """Stand by until this candidate leads (True) or `stop` is set (False)."""
        log.info("shards.operator: %s stands by for the lease", self.identity)
        while not stop.is_set():
            if self.try_acquire_or_renew():
                return True
            if stop.wait(self.timings.standby_poll * (1 + 0.2 * self.jitter())):
                break
        return False

    def must_stop(self) -> bool:
        """True once no renewal has succeeded for the renew deadline: stop acting now."""
        return self.clock() >= self.renewed_at + self.timings.renew_deadline

    def keep_leading(self, stop: Stop) -> bool:
        """Renew every retry period until `stop` is set (True) or leadership is lost (False: the
        renew deadline passed without a successful renewal, or another candidate holds the Lease;
        the caller must stop acting at once)."""
        while not stop.wait(self.timings.retry_period):
            if not self._renew(stop):
                self.leading = False
                log.error("shards.operator: %s lost the lease (no renewal within %.0f s): it stops leading",
                          self.identity, self.timings.renew_deadline)
                return False
        return True

    def _renew(self, stop: Stop) -> bool:
        """Retry one renewal until it lands (True), `stop` is set (True: the caller sees it), or the
        deadline passes or another candidate holds the Lease (False)."""
        retry = self.timings.retry_period
        while not self.must_stop():
            left = self.renewed_at + self.timings.renew_deadline - self.clock()
            if self.try_acquire_or_renew(timeout=max(0.1, min(retry, left))):
                return True
            if not self.leading:
                return False
            left = self.renewed_at + self.timings.renew_deadline - self.clock()
            if stop.wait(max(0.0, min(retry, left))):
                return True
        return False

    def release(self, timeout: float | None = None) -> bool:
        """Give the Lease up (empty holder, 1 s), so a standby takes it at its next try. Only a leader
        releases; True when the write landed."""
        if not self.leading or self.observed is None:
            return False
        self.leading = False
        now = self.wall()
        released = replace(self.observed, holder="", duration_seconds=1, acquire_time=now, renew_time=now)
        try:
            timeout = self.timings.retry_period if timeout is None else timeout
            self.observed = self.api.update(released, timeout)
        except LeaseError as error:  # the others take over when it expires instead
            log.warning("shards.operator: lease not released: %s", error)
            return False
        log.info("shards.operator: %s released the lease", self.identity)
        return True


class Leadership:
    """While leading: the renewals on one thread, and a watchdog on another that calls `on_lost`
    once the elector must stop acting, even while a renewal request hangs past the deadline.
    `on_lost` is called at most once, from one of these threads; it should end the process."""

    def __init__(self, elector: Elector, on_lost: Callable[[], None], poll: float = 0.25) -> None:
        import threading

        self.elector, self.on_lost, self.poll = elector, on_lost, poll
        self._stop = threading.Event()
        self._lost = threading.Lock()
        self._threads = [threading.Thread(target=self._renew, name="shards-lease-renew", daemon=True),
                         threading.Thread(target=self._watch, name="shards-lease-watchdog", daemon=True)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """No more renewals and no more watching (then release the Lease)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _renew(self) -> None:
        if not self.elector.keep_leading(self._stop):
            self._lose()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            if self.elector.must_stop():
                self._lose()
                return

    def _lose(self) -> None:
        if self._lost.acquire(blocking=False) and not self._stop.is_set():
            self.on_lost()
