"""Shards workers: claim requests exactly once, execute processes, report to the store."""

from shards_worker.loader import load_app
from shards_worker.worker import Worker, WorkerSettings

__all__ = ["Worker", "WorkerSettings", "load_app"]
