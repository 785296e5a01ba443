"""Prometheus metrics of the operator, served on --metrics-port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RESOURCES = Gauge("shards_operator_resources", "ShardProcess resources by state", ["state"])
LAUNCHES = Counter("shards_operator_launches", "Runs launched for ShardProcess resources")
STATUS_PATCHES = Counter("shards_operator_status_patches", "Status patches sent to the API server")
STREAM_ERRORS = Counter("shards_operator_stream_errors", "Change stream failures (followed by a sweep)")
