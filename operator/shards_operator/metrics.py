"""Prometheus metrics of the operator, served on --metrics-port."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from shards.errors import ShardsError
from shards.ownership import SilenceWatch
from shards.records import WorkerRecord
from shards_controller import pool_summary
from shards_store import Store

log = logging.getLogger("shards.operator")

RESOURCES = Gauge("shards_operator_resources", "ShardProcess resources by state", ["state"])
LAUNCHES = Counter("shards_operator_launches", "Runs launched for ShardProcess resources")
STATUS_PATCHES = Counter("shards_operator_status_patches", "Status patches sent to the API server")
STATUS_LAG = Histogram(
    "shards_operator_status_lag_seconds", "From a status change reaching the operator (a record's "
    "change on its stream, a read, a handler's decision) to the patch that shows it on the resource",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0))
LEADER = Gauge("shards_operator_leader",
               "1 while this replica holds the leader Lease (or runs without leader election)")
STREAM_ERRORS = Counter("shards_operator_stream_errors", "Change stream failures (followed by a sweep)")


class PoolCensus(Collector):
    """Per pool, read from MongoDB when scraped: launches no worker has taken yet (what to
    scale a pool's workers on), its live workers, and the runs that execute on no live worker.
    Three round trips per scrape (a fourth only while some run has no live owner), none otherwise.

    A run executes (Running, StopRequested, Stopping) on the worker its record names. That worker
    is live while the registry says Alive and its heartbeat counter has not stood still for a
    whole lease of its own, as this census sees it from one scrape to the next (the reconcilers'
    rule, shards.ownership): a killed worker nobody has reaped yet still reads Alive. A reconciler
    settles a run without a live owner within its grace; one that stays ownerless is stuck."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._clock = clock
        self._beats = SilenceWatch()  # each Alive worker's heartbeat counter, between scrapes
        self._lock = threading.Lock()  # scrapes may come on several threads at once

    def describe(self) -> list[GaugeMetricFamily]:
        """The series, without reading MongoDB (at registration, and for docs/metrics.md)."""
        return list(_census_families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pending, workers, free, ownerless = _census_families()
        try:
            waiting = self.store.requests.pending_launches()
            # The runs before the registry: a worker that registers and starts a run between the
            # two reads would otherwise look like the owner of a run that no live worker names.
            executing = self.store.processes.executing_per_worker()
            alive = self.store.workers.alive()
            owners = ownerless_owners(executing, self._live(alive))
            unowned = self.store.processes.executing_per_pool(owners) if owners else {}
        except ShardsError as error:  # MongoDB away: the scrape shows no pools, and says why here
            with self._lock:
                self._beats.forget()  # no worker could beat meanwhile: its silence proves nothing
            log.warning("shards.operator: pool metrics unavailable: %s", error)
            return
        summary = pool_summary(alive, waiting)
        for pool, counts in summary.items():
            pending.add_metric([pool], counts["pending"])
            workers.add_metric([pool], counts["workers"])
            free.add_metric([pool], counts["freeSlots"])
        for pool in sorted(set(summary) | set(unowned)):
            ownerless.add_metric([pool], unowned.get(pool, 0))
        yield pending
        yield workers
        yield free
        yield ownerless

    def _live(self, alive: list[WorkerRecord]) -> set[str]:
        """The Alive workers whose heartbeat this census has not seen stand still for their lease."""
        with self._lock:
            now = self._clock()
            live = {worker.worker_id for worker in alive
                    if self._beats.unchanged_for(worker.worker_id, worker.beat, now) < worker.lease}
            self._beats.keep_only(worker.worker_id for worker in alive)
        return live


def ownerless_owners(executing: dict[str, int], live: set[str]) -> list[str]:
    """The workers that executing runs name (runs per worker id) and that are not live. No
    worker ("") is a run stopped before any worker started it: its launch owns it, as a
    Scheduled run's does, and it is not counted."""
    return sorted(worker for worker, runs in executing.items() if worker and runs and worker not in live)


def _census_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (GaugeMetricFamily("shards_pending_launches", "Launches waiting for a worker of their pool",
                              labels=["pool"]),
            GaugeMetricFamily("shards_live_workers", "Live workers per pool", labels=["pool"]),
            GaugeMetricFamily("shards_free_slots", "Free run slots of the live workers per pool "
                              "(their concurrency less the runs they hold)", labels=["pool"]),
            GaugeMetricFamily("shards_ownerless_runs", "Runs executing (Running, StopRequested, "
                              "Stopping) on no live worker, per pool of their process: their worker "
                              "left, was lost, or its heartbeat stood still for its lease; a reconciler "
                              "settles each within its grace", labels=["pool"]))


def register_pool_census(store: Store) -> None:
    REGISTRY.register(PoolCensus(store))
