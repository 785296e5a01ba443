"""Prometheus metrics of a worker, served on --metrics-port when asked for."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, start_http_server

CLAIMS = Counter("shards_requests_claimed", "Requests this worker claimed", ["kind"])
RUNS_ENDED = Counter("shards_runs_ended", "Runs that ended on this worker", ["state"])
RUNS_ACTIVE = Gauge("shards_runs_active", "Runs executing on this worker (children included)")
PROGRESS_WRITES = Counter("shards_progress_writes", "Coalesced progress writes to the store")
SETTLED = Counter("shards_settled", "Lost workers and ownerless runs this worker's reconciler settled")
STREAM_ERRORS = Counter("shards_change_stream_errors", "Change stream failures (followed by a sweep)")


def serve(port: int, address: str) -> None:
    start_http_server(port, addr=address)
