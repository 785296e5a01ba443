"""Prometheus metrics of a worker, served on --metrics-port when asked for."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from shards.requests import Request

CLAIMS = Counter("shards_requests_claimed", "Requests this worker claimed", ["kind"])
CLAIM_ATTEMPTS = Counter("shards_claim_attempts", "Claim writes this worker issued, by outcome "
                         "(won, lost: another worker took it, empty: a sweep found nothing)",
                         ["kind", "outcome"])
PICKUP = Histogram("shards_pickup_seconds", "From a launch's change event reaching this worker "
                   "to its record written Running",
                   buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0))
RUNS_ENDED = Counter("shards_runs_ended", "Runs that ended on this worker", ["state"])
STANDBYS = Gauge("shards_standby_processes", "OS processes forked ahead of demand, waiting for a run "
                 "(process isolation: at most the free slots)")
RUNS_ACTIVE = Gauge("shards_runs_active", "Runs executing on this worker (children included)")
PROGRESS_WRITES = Counter("shards_progress_writes", "Coalesced progress writes to the store")
LOG_WRITES = Counter("shards_log_writes", "Batched run log writes to the store (one per run per interval)")
FIRES = Counter("shards_schedule_fires", "Nominal times of schedules this worker acted on, by outcome "
                "(Launched, Queued, Skipped, Missed: an action for all the missed times of one catch-up, "
                "Failed)", ["outcome"])
SCHEDULE_LAG = Histogram("shards_schedule_lag_seconds", "From a schedule's fire time (its nominal time "
                         "plus jitter) to its run written Running on this worker",
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0))
SETTLED = Counter("shards_settled", "Lost workers and ownerless runs this worker's reconciler settled")
STREAM_ERRORS = Counter("shards_change_stream_errors", "Change stream failures (followed by a sweep)")


def serve(port: int, address: str) -> None:
    start_http_server(port, addr=address)


def counted(kind: str, request: Request | None, miss: str) -> Request | None:
    """Count a claim attempt: won, or `miss` ("lost", "empty")."""
    CLAIM_ATTEMPTS.labels(kind, "won" if request else miss).inc()
    if request is not None:
        CLAIMS.labels(kind).inc()
    return request
