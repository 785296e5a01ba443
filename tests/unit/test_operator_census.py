"""The operator's pool census counts the runs that execute on no live worker: a worker that left
(not Alive) at once, a worker still Alive in the registry once this census has seen its heartbeat
stand still for a whole lease of its own. Over a stand-in store (the real one:
tests/integration/test_pools.py)."""

from __future__ import annotations

from typing import Any, cast

from shards.errors import StoreUnavailable
from shards.records import WorkerRecord
from shards_operator.metrics import PoolCensus, ownerless_owners
from shards_store import Store


class FakeStore:
    """What the census reads: pending launches per pool, the Alive workers, and the executing
    runs (per worker, and per pool of those of some workers)."""

    def __init__(self) -> None:
        self.workers_alive: list[WorkerRecord] = []
        self.runs: list[tuple[str, str]] = []  # (worker id, pool) of each executing run
        self.pending: dict[str, int] = {}
        self.down = False
        self.reads: list[str] = []
        self.requests = self.workers = self.processes = self

    def _read(self, what: str) -> None:
        if self.down:
            raise StoreUnavailable("MongoDB unreachable: test")
        self.reads.append(what)

    def pending_launches(self) -> dict[str, int]:
        self._read("pending_launches")
        return dict(self.pending)

    def alive(self) -> list[WorkerRecord]:
        self._read("alive")
        return list(self.workers_alive)

    def executing_per_worker(self) -> dict[str, int]:
        self._read("executing_per_worker")
        counts: dict[str, int] = {}
        for worker, _ in self.runs:
            counts[worker] = counts.get(worker, 0) + 1
        return counts

    def executing_per_pool(self, worker_ids: list[str]) -> dict[str, int]:
        self._read("executing_per_pool")
        counts: dict[str, int] = {}
        for worker, pool in self.runs:
            if worker in worker_ids:
                counts[pool] = counts.get(pool, 0) + 1
        return counts


def worker(worker_id: str, beat: int, *, pool: str = "default", lease: float = 10.0) -> WorkerRecord:
    return WorkerRecord(worker_id=worker_id, host="h", pid=1, concurrency=2, beat=beat, lease=lease,
                        pool=pool)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def census_of(store: FakeStore, clock: Clock) -> PoolCensus:
    return PoolCensus(cast(Store, store), clock=clock)


def scrape(census: PoolCensus) -> dict[str, dict[str, float]]:
    return {family.name: {sample.labels["pool"]: sample.value for sample in family.samples}
            for family in census.collect()}


def ownerless(census: PoolCensus) -> dict[str, float]:
    return scrape(census)["shards_ownerless_runs"]


def test_only_runs_of_workers_that_are_not_live_count() -> None:
    assert ownerless_owners({"w1": 2, "w2": 1, "": 3, "w3": 0}, live={"w1"}) == ["w2"]
    assert ownerless_owners({}, live=set()) == []


def test_a_healthy_census_costs_three_reads_and_counts_zero_per_pool() -> None:
    store, clock = FakeStore(), Clock()
    store.workers_alive = [worker("w1", 5), worker("g1", 7, pool="gpu")]
    store.runs = [("w1", "default"), ("w1", "default"), ("g1", "gpu")]
    store.pending = {"heavy": 1}
    census = census_of(store, clock)
    for beat in range(6, 10):  # the workers beat between scrapes, a lease apart
        assert ownerless(census) == {"default": 0, "gpu": 0, "heavy": 0}
        clock.now += 30.0
        store.workers_alive = [worker("w1", beat), worker("g1", beat + 2, pool="gpu")]
    assert set(store.reads) == {"pending_launches", "executing_per_worker", "alive"}
    assert len(store.reads) == 3 * 4


def test_a_worker_that_left_leaves_its_runs_ownerless_at_once() -> None:
    store, clock = FakeStore(), Clock()
    store.workers_alive = [worker("w1", 5)]
    # "": a stop asked before any worker started the run (its launch owns it)
    store.runs = [("w1", "default"), ("gone", "gpu"), ("gone", "gpu"), ("", "default")]
    assert ownerless(census_of(store, clock)) == {"default": 0, "gpu": 2}
    assert store.reads[-1] == "executing_per_pool"


def test_a_silent_worker_owns_its_runs_until_its_lease_has_passed_unmoved() -> None:
    store, clock = FakeStore(), Clock()
    store.workers_alive = [worker("w1", 5, lease=10.0), worker("w2", 3, lease=10.0)]
    store.runs = [("w1", "default"), ("w2", "default")]
    census = census_of(store, clock)
    assert ownerless(census) == {"default": 0}  # the first look proves nothing
    clock.now += 9.0
    store.workers_alive = [worker("w1", 6, lease=10.0), worker("w2", 3, lease=10.0)]
    assert ownerless(census) == {"default": 0}  # w2 silent for 9 s of its 10
    clock.now += 1.0
    store.workers_alive = [worker("w1", 7, lease=10.0), worker("w2", 3, lease=10.0)]
    assert ownerless(census) == {"default": 1}  # w2 silent for its whole lease; w1 beats
    assert scrape(census)["shards_live_workers"] == {"default": 2}  # the registry's view, as before
    clock.now += 5.0
    store.workers_alive = [worker("w1", 8, lease=10.0)]  # a reconciler reaped w2 ...
    store.runs = [("w1", "default")]  # ... and settled its run
    assert ownerless(census) == {"default": 0}


def one_run_seen_once() -> tuple[FakeStore, Clock, PoolCensus]:
    """A census that has scraped once: worker w1 (beat 5, lease 10 s) runs one run of `default`."""
    store, clock = FakeStore(), Clock()
    store.workers_alive = [worker("w1", 5, lease=10.0)]
    store.runs = [("w1", "default")]
    census = census_of(store, clock)
    ownerless(census)
    return store, clock, census


def test_a_worker_that_beats_again_owns_its_runs_again() -> None:
    store, clock, census = one_run_seen_once()
    clock.now += 20.0
    assert ownerless(census) == {"default": 1}
    store.workers_alive = [worker("w1", 6, lease=10.0)]  # back (a long pause, not a death)
    assert ownerless(census) == {"default": 0}


def test_an_outage_forgets_what_the_census_saw() -> None:
    """No worker can beat while MongoDB is away: a scrape that failed starts the watch afresh, so
    the first scrape after it counts no worker as silent."""
    store, clock, census = one_run_seen_once()
    clock.now += 30.0
    store.down = True
    assert scrape(census) == {}  # no series at all while MongoDB is away
    store.down = False
    clock.now += 30.0
    assert ownerless(census) == {"default": 0}
    clock.now += 30.0
    assert ownerless(census) == {"default": 1}  # silent for a whole lease since


def test_the_census_describes_four_gauges_without_reading() -> None:
    families = PoolCensus(cast(Any, None)).describe()
    assert [family.name for family in families] == [
        "shards_pending_launches", "shards_live_workers", "shards_free_slots", "shards_ownerless_runs"]
    assert all(family.type == "gauge" for family in families)
