"""Leases: a worker that stops heart-beating is declared lost by whichever worker notices first,
and what it held is settled so nothing stays Running forever."""

from __future__ import annotations

import logging
from datetime import timedelta

from shards.records import ProcessStatus, RequestKind, utcnow
from shards.states import EXECUTING, State
from shards_store import Store

log = logging.getLogger("shards.worker")


def reap_lost_workers(store: Store, lease_seconds: float) -> list[str]:
    """Declare silent workers lost; fail their runs and put back what they had not started."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    reaped: list[str] = []
    while (lost := store.workers.claim_lost(cutoff)) is not None:
        reaped.append(lost)
        settle_lost_worker(store, lost, f"worker {lost} was lost (no heartbeat for {lease_seconds:g}s)")
    return reaped


def settle_lost_worker(store: Store, worker_id: str, reason: str) -> None:
    for record in store.processes.executing_on(worker_id, EXECUTING):
        status = ProcessStatus.ended(State.FAILED, error=reason, running_since=record.status.running_since)
        store.end_run(record, status)
        log.warning("shards.worker: %s/%s failed: %s", record.scope_id, record.process_id, reason)
    for request in store.requests.taken_by(worker_id):
        if request.kind == RequestKind.STOP:
            store.requests.complete(request)
            continue
        current = store.processes.get(request.scope_id, request.process_id)
        not_started = (
            current is not None
            and current.run_id == request.run_id
            and current.state in (State.SCHEDULED, State.STOP_REQUESTED)
            and not current.worker_id
        )
        if request.kind == RequestKind.DEFINE or not_started:
            store.requests.release(request)
        else:
            store.requests.complete(request)
    store.requests.drop_addressed_to(worker_id)
