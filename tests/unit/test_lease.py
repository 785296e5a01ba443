"""A worker's own lease: when it must stop its runs, and when it must exit."""

from __future__ import annotations

import pytest
from pymongo.errors import ServerSelectionTimeoutError
from shards.errors import ShardsError
from shards_store.collection import describe_outage
from shards_worker.failures import describe_failure
from shards_worker.lease import Lease
from shards_worker.worker import WorkerSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_runs_stop_at_half_the_lease_and_the_process_exits_before_its_end() -> None:
    clock = Clock()
    lease = Lease(10.0, clock)
    clock.now += 4.9
    assert not lease.runs_must_stop()
    clock.now += 0.2
    assert lease.runs_must_stop() and not lease.runs_must_end()
    clock.now += 3.5
    assert lease.runs_must_end()
    assert lease.silence() < 10.0  # before any other worker may declare it lost


def test_a_renewal_counts_from_when_the_heartbeat_was_sent() -> None:
    clock = Clock()
    lease = Lease(10.0, clock)
    sent = clock.now + 6.0
    clock.now += 9.0  # the write was slow: acknowledged 3 s after it was sent
    lease.renewed(sent)
    assert lease.silence() == pytest.approx(3.0)
    lease.renewed(sent - 5.0)  # an older acknowledgement never moves the lease back
    assert lease.silence() == pytest.approx(3.0)


def test_the_heartbeat_must_fit_several_times_in_the_lease() -> None:
    WorkerSettings(heartbeat_interval=0.2, lease=0.6)
    with pytest.raises(ShardsError, match="must be at most a third of the lease"):
        WorkerSettings(heartbeat_interval=6.0, lease=15.0)


def test_failures_and_outages_read_as_one_line() -> None:
    assert describe_failure(SystemExit(3)) == "the process called sys.exit(3)"
    assert describe_failure(SystemExit()) == "the process called sys.exit()"
    assert describe_failure(KeyboardInterrupt()) == "the process raised KeyboardInterrupt"
    dump = ("127.0.0.1:27017: [Errno 111] Connection refused (configured timeouts: socketTimeoutMS: "
            "20000.0ms, connectTimeoutMS: 20000.0ms), Timeout: 5.0s, Topology Description: "
            "<TopologyDescription id: 1, topology_type: Unknown, servers: [...]>")
    assert describe_outage(ServerSelectionTimeoutError(dump)) == (
        "MongoDB unreachable: 127.0.0.1:27017: [Errno 111] Connection refused"
    )


def test_a_runs_own_guard_acts_after_its_worker_and_before_anyone_may_relaunch() -> None:
    """The worker's fence stops its runs at half its lease and exits at 85%; a run's OS process
    holds itself to points just after those (a frozen worker cannot act), and still before a
    whole lease has passed since the last renewal was sent (when others may declare it lost)."""
    now = [100.0]
    lease = Lease(10.0, clock=lambda: now[0])
    lease.renewed(100.0)
    stop_at, exit_at = lease.guard_deadlines()
    assert 100.0 + 5.0 < stop_at < exit_at  # after the worker's own stop point
    assert 100.0 + 8.5 < exit_at < 100.0 + 10.0  # after its exit point, before the lease ends
    lease.renewed(104.0)
    assert lease.guard_deadlines() == (stop_at + 4.0, exit_at + 4.0)
