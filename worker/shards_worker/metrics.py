"""Prometheus metrics of a worker, served on --metrics-port when asked for.

Label sets are bounded: kinds, states and outcomes are enumerations; a process id is a label value
only for the processes of a worker's declared catalog, up to PROCESS_LABEL_LIMIT of them (a worker
that serves per-scope catalogs, or a larger one, says "other"). Every series is listed in
docs/metrics.md, generated from these definitions (`make docs-metrics`).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from shards.requests import Request

PROCESS_LABEL_LIMIT = 50  # processes of a declared catalog named in labels; beyond it, "other"
OTHER_PROCESS = "other"
_labelled_processes: frozenset[str] = frozenset()

CLAIMS = Counter("shards_requests_claimed", "Requests this worker claimed", ["kind"])
CLAIM_ATTEMPTS = Counter("shards_claim_attempts", "Claim writes this worker issued, by outcome "
                         "(won, lost: another worker took it, empty: a sweep found nothing)",
                         ["kind", "outcome"])
PICKUP = Histogram("shards_pickup_seconds", "From a launch's change event reaching this worker "
                   "to its record written Running",
                   buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0))
LAUNCH_TO_RUNNING = Histogram(
    "shards_launch_to_running_seconds", "From a launch becoming due (its request's creation, or the "
    "start time of a delayed launch or retry, on the server's clock) to its record written Running",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0))
RUNS_ENDED = Counter("shards_runs_ended", "Runs that ended on this worker", ["state"])
RUN_DURATION = Histogram(
    "shards_run_duration_seconds", "From a top-level run written Running to its end, by how it ended "
    "(state) and process (see PROCESS_LABEL_LIMIT)", ["state", "process"],
    buckets=(0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0))
STOP_LATENCY = Histogram(
    "shards_stop_seconds", "From a stop reaching a top-level run on this worker (a user's stop, "
    "its deadline, a shutdown) to its end; forced: a kill was asked at once",
    ["forced"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0))
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


def label_processes(catalog: Iterable[str]) -> None:
    """The processes this worker names in labels: its declared catalog, if small enough."""
    global _labelled_processes
    names = frozenset(catalog)
    _labelled_processes = names if len(names) <= PROCESS_LABEL_LIMIT else frozenset()


def process_label(process_id: str) -> str:
    return process_id if process_id in _labelled_processes else OTHER_PROCESS


def serve(port: int, address: str) -> None:
    start_http_server(port, addr=address)


def counted(kind: str, request: Request | None, miss: str) -> Request | None:
    """Count a claim attempt: won, or `miss` ("lost", "empty")."""
    CLAIM_ATTEMPTS.labels(kind, "won" if request else miss).inc()
    if request is not None:
        CLAIMS.labels(kind).inc()
    return request
