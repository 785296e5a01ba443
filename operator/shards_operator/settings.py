"""The operator's settings (flags and environment of `shards operator`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OperatorSettings:
    mongo_uri: str | None = None  # default: $SHARDS_MONGO_URI
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    grants: dict[str, set[str]] = field(default_factory=dict)  # namespace -> other scopes allowed
    status_interval: float = 1.0  # at most one status patch per resource per interval
    delete_timeout: float = 30.0  # how long a delete waits for the run to stop
    liveness: str = "http://127.0.0.1:8080/healthz"
    metrics_port: int = 0
    metrics_address: str = "127.0.0.1"
