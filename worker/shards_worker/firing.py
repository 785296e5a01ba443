"""Firing: this worker claimed a schedule's fire request (shards_store.firing acts on it). A fire
the store could not finish (an outage) is put back for any worker once MongoDB answers again, so
no schedule waits for this worker to be declared lost."""

from __future__ import annotations

import logging

from shards.errors import StoreUnavailable
from shards.requests import Request
from shards.schedules import Outcome
from shards_store import Store, firing

from shards_worker import metrics

log = logging.getLogger("shards.worker")


class Firing:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._unfinished: list[Request] = []  # taken by this worker, not completed

    def fire(self, request: Request) -> list[str]:
        """Act on a claimed fire request; returns the run ids it launched (to start at once, here
        if this worker can). Raises StoreUnavailable (the request is kept, and released by the
        next sweep)."""
        try:
            actions = firing.fire(self.store, request)
        except StoreUnavailable:
            self._unfinished.append(request)
            raise
        except Exception:  # a bug must not kill the worker, nor keep the schedule from firing again
            log.exception("firing schedule %s failed", request.options.get("schedule"))
            self._unfinished.append(request)
            return []
        for action in actions:
            metrics.FIRES.labels(action.outcome.value).inc()
        return [a.run_id for a in actions if a.outcome is Outcome.LAUNCHED and not a.detail]

    def release_unfinished(self) -> None:
        """Put back the fires this worker took and could not finish. Raises StoreUnavailable."""
        while self._unfinished:
            self.store.requests.release(self._unfinished[0])
            self._unfinished.pop(0)
