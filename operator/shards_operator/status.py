"""A ShardProcess's status, made from what Shards knows of its run. Plain Python: no kopf, no
Kubernetes client; unit-tested without a cluster."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shards.records import ProcessRecord, RunRecord, from_ms, iso, to_ms, utcnow
from shards.retries import KEPT_ATTEMPTS, Attempt
from shards.states import State

Status = dict[str, Any]

# Condition types a Job user recognises, and the reasons of Waiting.
COMPLETE, FAILED, WAITING = "Complete", "Failed", "Waiting"

# The store's outage text names the server ("MongoDB unreachable: 10.0.0.7:27017: ..."): what a
# tenant reads keeps the fact, the operator's and workers' logs keep the detail.
STORE_DETAIL = re.compile(r"(MongoDB unreachable): [^;\n]*")


def for_tenant(text: str) -> str:
    """`text` as a tenant may read it: without a store server's address or its error's detail."""
    return STORE_DETAIL.sub(r"\1", text)


@dataclass(frozen=True)
class RunView:
    """The facts of one launch's current (or last) attempt, from the process record (while it
    is the record's launch) or from the run history (once the record has moved on)."""

    run_id: str
    state: State
    message: str = ""
    rate: float = 0.0
    error: str = ""
    worker: str = ""
    running_since: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    waiting: str = ""  # why a Scheduled run has not started (no live worker of its pool)
    attempt: int = 1
    attempts: tuple[Attempt, ...] = ()  # how the launch's earlier attempts ended
    retry_at: datetime | None = None  # a retry waits for this time to start
    start_at: datetime | None = None  # a delayed launch (spec.startAt) waits for this time to start
    queued: int = 0  # launches waiting behind this run (spec.queue, a schedule's buffer)

    @classmethod
    def of_record(cls, record: ProcessRecord, waiting: str = "") -> RunView:
        status = record.status
        message = f"waiting: {waiting}" if waiting else record.progress.message
        return cls(
            run_id=record.run_id, state=status.state, message=message, waiting=waiting,
            rate=record.progress.rate, error=status.error, worker=record.worker_id,
            running_since=status.running_since, finished_at=status.ended_at, duration=status.duration,
            attempt=max(1, record.attempt), attempts=tuple(record.attempts), retry_at=status.retry_at,
            start_at=status.start_at if status.state is State.SCHEDULED else None, queued=len(record.queue),
        )

    @classmethod
    def of_history(cls, attempts: list[RunRecord]) -> RunView:
        """A launch the record has moved on from, by the history entries of its attempts in
        order (see resource.launch_history). Numbers come from their order: an entry first
        written by the end of an attempt that never started does not carry its number."""
        run, earlier = attempts[-1], attempts[:-1]
        return cls(
            run_id=run.run_id, state=run.state, message=run.error or run.state.value,
            rate=1.0 if run.state is State.DONE else 0.0, error=run.error, worker=run.worker_id,
            running_since=run.started_at, finished_at=run.ended_at, duration=run.duration,
            attempt=len(attempts),
            attempts=tuple(Attempt(number, entry.run_id, entry.state, entry.error, to_ms(entry.ended_at))
                           for number, entry in enumerate(earlier, start=1))[-KEPT_ATTEMPTS:],
        )


def run_status(run: RunView) -> Status:
    """The status fields that describe a run (conditions are merged separately)."""
    status = {
        "state": run.state.value,
        "runId": run.run_id,
        "progress": {"message": for_tenant(run.message)[:1024], "rate": run.rate,
                     "percent": int(run.rate * 100)},
        "error": for_tenant(run.error),
        "runningSince": iso(run.running_since),
        "finishedAt": iso(run.finished_at),
        "duration": run.duration,
        "attempt": run.attempt,
        "attempts": [attempt_status(attempt) for attempt in run.attempts],
        "retryAt": iso(run.retry_at),  # null once the retry has started: a merge patch drops it
        "startAt": iso(run.start_at),  # likewise once the delayed launch has started
        "queued": run.queued,
    }
    if run.worker:  # a record lets go of its worker when the run ends: keep showing who ran it
        status["worker"] = run.worker
    return status


def attempt_status(attempt: Attempt) -> Status:
    status: Status = {"attempt": attempt.attempt, "runId": attempt.run_id, "state": attempt.state.value,
                      "error": for_tenant(attempt.error)[:1024]}
    if attempt.ended_at is not None:  # a list is patched whole: a null in it would be kept, and refused
        status["endedAt"] = iso(from_ms(attempt.ended_at))
    return status


def run_conditions(state: State, error: str, waiting: str = "") -> list[tuple[str, bool, str, str]]:
    """(type, holds, reason, message) for the run's end; Waiting holds while no live worker of
    its pool can take it, and is over once a worker could."""
    return [
        (COMPLETE, state is State.DONE, state.value, "the run ended Done" if state is State.DONE else ""),
        (FAILED, state is State.FAILED, state.value, error if state is State.FAILED else ""),
        (WAITING, True, "NoWorker", waiting) if waiting else (WAITING, False, "Launched", ""),
    ]


def waiting_conditions(reason: str, message: str) -> list[tuple[str, bool, str, str]]:
    return [(WAITING, True, reason, message)]


def merge_conditions(
    previous: list[dict[str, Any]] | None,
    updates: list[tuple[str, bool, str, str]],
    generation: int,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Standard conditions: lastTransitionTime moves only when a condition's status changes."""
    stamp = iso(now or utcnow())
    merged = {condition["type"]: dict(condition) for condition in previous or []}
    for kind, holds, reason, message in updates:
        status = "True" if holds else "False"
        old = merged.get(kind)
        merged[kind] = {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": for_tenant(message)[:1024],
            "lastTransitionTime": old["lastTransitionTime"] if old and old["status"] == status else stamp,
            "observedGeneration": generation,
        }
    return [merged[kind] for kind in sorted(merged)]
