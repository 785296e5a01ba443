"""Prometheus metrics of the operator, served on --metrics-port."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from shards.errors import ShardsError
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
    scale a pool's workers on) and its live workers. Two queries per scrape, none otherwise."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> list[GaugeMetricFamily]:
        """The series, without reading MongoDB (at registration, and for docs/metrics.md)."""
        return list(_census_families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pending, workers, free = _census_families()
        try:
            waiting = self.store.requests.pending_launches()
            alive = self.store.workers.alive()
        except ShardsError as error:  # MongoDB away: the scrape shows no pools, and says why here
            log.warning("shards.operator: pool metrics unavailable: %s", error)
            return
        for pool, counts in pool_summary(alive, waiting).items():
            pending.add_metric([pool], counts["pending"])
            workers.add_metric([pool], counts["workers"])
            free.add_metric([pool], counts["freeSlots"])
        yield pending
        yield workers
        yield free


def _census_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (GaugeMetricFamily("shards_pending_launches", "Launches waiting for a worker of their pool",
                              labels=["pool"]),
            GaugeMetricFamily("shards_live_workers", "Live workers per pool", labels=["pool"]),
            GaugeMetricFamily("shards_free_slots", "Free run slots of the live workers per pool "
                              "(their concurrency less the runs they hold)", labels=["pool"]))


def register_pool_census(store: Store) -> None:
    REGISTRY.register(PoolCensus(store))
