"""The operator's leader election (shards_operator.election) on an in-memory Lease and a fake
clock: who leads, when a standby takes over, and that a leader stops before anyone else starts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from shards_operator.election import Elector, Leadership, LeaseConflict, LeaseError, LeaseRecord, Timings
from shards_operator.settings import leader_election_default


class Clock:
    """Monotonic seconds and the matching wall time; `wait` advances it (nothing sleeps)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.stop_at = float("inf")  # a Stop that becomes set at this time

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.now)

    def is_set(self) -> bool:
        return self.now >= self.stop_at

    def wait(self, timeout: float | None = None) -> bool:
        self.now = min(self.now + (timeout or 0.0), max(self.now, self.stop_at))
        return self.is_set()


class FakeLeases:
    """One Lease in memory, with the API server's optimistic concurrency; `down` fails every call."""

    def __init__(self) -> None:
        self.lease: LeaseRecord | None = None
        self.version = 0
        self.down = False
        self.writes: list[LeaseRecord] = []

    def get(self, timeout: float) -> LeaseRecord | None:
        if self.down:
            raise LeaseError("connection refused")
        return self.lease

    def create(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        if self.down:
            raise LeaseError("connection refused")
        if self.lease is not None:
            raise LeaseConflict("exists")
        return self._store(record)

    def update(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        if self.down:
            raise LeaseError("connection refused")
        if self.lease is None or record.version != self.lease.version:
            raise LeaseConflict("stale resourceVersion")
        return self._store(record)

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.lease = replace(record, version=str(self.version))
        self.writes.append(self.lease)
        return self.lease


class Partitioned:
    """One candidate's view of the shared Lease, cut off from it when `cut` is set."""

    def __init__(self, leases: FakeLeases) -> None:
        self.leases, self.cut = leases, False

    def get(self, timeout: float) -> LeaseRecord | None:
        self._check()
        return self.leases.get(timeout)

    def create(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        self._check()
        return self.leases.create(record, timeout)

    def update(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        self._check()
        return self.leases.update(record, timeout)

    def _check(self) -> None:
        if self.cut:
            raise LeaseError("timed out")


def elector(api: object, identity: str, clock: Clock) -> Elector:
    return Elector(api, identity, Timings(), clock=clock, wall=clock.wall, jitter=lambda: 0.0)  # type: ignore[arg-type]


def test_the_first_candidate_creates_the_lease_with_client_gos_fields() -> None:
    clock, leases = Clock(), FakeLeases()
    a = elector(leases, "pod-a", clock)
    assert a.try_acquire_or_renew() and a.leading
    assert leases.lease == LeaseRecord("pod-a", 15, clock.wall(), clock.wall(), 0, "1")
    clock.now += 2
    assert a.try_acquire_or_renew()
    lease = leases.lease
    assert lease is not None
    assert (lease.holder, lease.acquire_time, lease.renew_time, lease.transitions) == (
        "pod-a", clock.wall() - timedelta(seconds=2), clock.wall(), 0)


def test_no_takeover_before_the_lease_expires_and_takeover_after() -> None:
    clock, leases = Clock(), FakeLeases()
    a, b = elector(leases, "pod-a", clock), elector(leases, "pod-b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew() and not b.leading  # b sees the record now
    clock.now += 14.9  # a is gone (SIGKILL): the record stops changing
    assert not b.try_acquire_or_renew()
    clock.now += 0.1  # 15 s since b saw it change
    assert b.try_acquire_or_renew() and b.leading
    lease = leases.lease
    assert lease is not None and (lease.holder, lease.transitions) == ("pod-b", 1)
    assert lease.acquire_time == clock.wall()


def test_a_renewing_leader_is_never_taken_over() -> None:
    clock, leases = Clock(), FakeLeases()
    a, b = elector(leases, "pod-a", clock), elector(leases, "pod-b", clock)
    assert a.try_acquire_or_renew()
    for _ in range(30):  # a minute: b tries every 2 s, a renews every 2 s
        clock.now += 2
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    assert {write.holder for write in leases.writes} == {"pod-a"}


def test_expiry_is_measured_on_the_standbys_clock_not_the_leaders_renew_time() -> None:
    clock, leases = Clock(), FakeLeases()
    a = elector(leases, "pod-a", clock)
    assert a.try_acquire_or_renew()
    # The leader's wall clock runs an hour behind: its renewTime looks long expired.
    assert leases.lease is not None
    leases.lease = replace(leases.lease, renew_time=clock.wall() - timedelta(hours=1))
    b = elector(leases, "pod-b", clock)
    assert not b.try_acquire_or_renew()


class WriterInBetween(FakeLeases):
    """b's view: between b's read and b's write, `first` writes."""

    def __init__(self, leases: FakeLeases, first: Elector) -> None:
        self.leases, self.first = leases, first

    def get(self, timeout: float) -> LeaseRecord | None:
        record = self.leases.get(timeout)
        assert self.first.try_acquire_or_renew()
        return record

    def update(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        return self.leases.update(record, timeout)


def test_of_two_candidates_racing_for_a_free_lease_one_wins() -> None:
    clock, leases = Clock(), FakeLeases()
    a = elector(leases, "pod-a", clock)
    assert a.try_acquire_or_renew() and a.release()
    b = elector(WriterInBetween(leases, a), "pod-b", clock)
    assert not b.try_acquire_or_renew() and not b.leading  # its write carried a stale resourceVersion
    assert leases.lease is not None and (leases.lease.holder, leases.lease.transitions) == ("pod-a", 1)


def test_release_on_stop_lets_the_standby_take_over_at_its_next_try() -> None:
    clock, leases = Clock(), FakeLeases()
    a, b = elector(leases, "pod-a", clock), elector(leases, "pod-b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert a.release() and not a.leading
    lease = leases.lease
    assert lease is not None and (lease.holder, lease.duration_seconds, lease.transitions) == ("", 1, 0)
    clock.now += 2  # b's next try, long before the 15 s
    assert b.try_acquire_or_renew()
    assert leases.lease is not None and (leases.lease.holder, leases.lease.transitions) == ("pod-b", 1)


def test_only_a_leader_releases() -> None:
    clock, leases = Clock(), FakeLeases()
    a, b = elector(leases, "pod-a", clock), elector(leases, "pod-b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert not b.release()
    assert leases.lease is not None and leases.lease.holder == "pod-a"


def test_standby_acquires_when_the_leader_stops_renewing() -> None:
    clock, leases = Clock(), FakeLeases()
    a, b = elector(leases, "pod-a", clock), elector(leases, "pod-b", clock)
    assert a.try_acquire_or_renew()
    started = clock.now
    assert b.acquire(clock)  # nobody renews: b waits out the lease, trying every 2 s
    assert 15 <= clock.now - started <= 15 + 0.5
    clock.stop_at = clock.now  # a stopped standby gives up at once
    assert not elector(leases, "pod-c", clock).acquire(clock)


def test_a_leader_cut_off_stops_before_its_lease_can_expire() -> None:
    clock, leases = Clock(), FakeLeases()
    a_view, b_view = Partitioned(leases), Partitioned(leases)
    a, b = elector(a_view, "pod-a", clock), elector(b_view, "pod-b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock.now += 2
    assert a.try_acquire_or_renew()  # the last renewal that lands
    last_renewal = a.renewed_at
    a_view.cut = True
    # Interleave: a keeps trying to renew; b keeps trying to take over, every 0.5 s.
    stopped_at = taken_at = None
    while taken_at is None:
        clock.now += 0.5
        if stopped_at is None and a.must_stop():
            stopped_at = clock.now
        if b.try_acquire_or_renew():
            taken_at = clock.now
        if not a.must_stop():
            a.try_acquire_or_renew(timeout=0.5)
    assert stopped_at is not None and stopped_at - last_renewal <= 10.5
    assert taken_at >= last_renewal + 15 > stopped_at


def test_keep_leading_returns_false_at_the_renew_deadline() -> None:
    clock, leases = Clock(), FakeLeases()
    a = elector(leases, "pod-a", clock)
    assert a.try_acquire_or_renew()
    acquired = clock.now
    leases.down = True
    assert not a.keep_leading(clock)
    assert not a.leading
    assert 10 <= clock.now - acquired < 15  # stopped past the deadline, before others may take over


def test_keep_leading_renews_until_stopped() -> None:
    clock, leases = Clock(), FakeLeases()
    a = elector(leases, "pod-a", clock)
    assert a.try_acquire_or_renew()
    clock.stop_at = clock.now + 60
    assert a.keep_leading(clock) and a.leading
    assert len(leases.writes) == 1 + 29  # the creation, then one renewal per retry period until 60 s
    assert a.release()


def test_a_leader_that_sees_another_holder_stops_at_once() -> None:
    clock, leases = Clock(), FakeLeases()
    a = elector(leases, "pod-a", clock)
    assert a.try_acquire_or_renew()
    assert leases.lease is not None
    leases.lease = replace(leases.lease, holder="pod-z", version="99")  # e.g. an admin's edit
    leases.version = 99
    started = clock.now
    assert not a.keep_leading(clock)
    assert clock.now - started == 2  # the first renewal saw it


def test_leadership_calls_on_lost_from_the_watchdog_when_a_renewal_hangs() -> None:
    clock, leases = Clock(), FakeLeases()
    a = elector(leases, "pod-a", clock)
    assert a.try_acquire_or_renew()
    lost: list[bool] = []
    leadership = Leadership(a, lambda: lost.append(True), poll=0.01)
    leadership._threads.pop(0)  # no renewals: as if the request hung
    leadership.start()
    clock.now += 10
    import time
    for _ in range(500):
        if lost:
            break
        time.sleep(0.01)
    leadership.stop()
    assert lost == [True]


def test_timings_are_checked() -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        Timings(lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match="retry period"):
        Timings(renew_deadline=2, retry_period=2)


def test_leader_election_is_on_by_default_in_a_pod_only(tmp_path: Path) -> None:
    mounted = tmp_path / "namespace"
    assert leader_election_default({"POD_NAMESPACE": "shards-system"}, tmp_path / "none")
    assert not leader_election_default({}, tmp_path / "none")  # a local run acts alone
    mounted.write_text("shards-system")
    assert leader_election_default({}, mounted)  # a pod with a ServiceAccount mounted
