"""A ShardProcess's status, made from what Shards knows of its run. Plain Python: no kopf, no
Kubernetes client; unit-tested without a cluster."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shards.records import ProcessRecord, RunRecord, iso, utcnow
from shards.states import State

Status = dict[str, Any]

# Condition types a Job user recognises, and the reasons of Waiting.
COMPLETE, FAILED, WAITING = "Complete", "Failed", "Waiting"


@dataclass(frozen=True)
class RunView:
    """The facts of one run, from the process record (while it is the record's run) or from
    the run history (once the record has moved on)."""

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

    @classmethod
    def of_record(cls, record: ProcessRecord, waiting: str = "") -> RunView:
        status = record.status
        message = f"waiting: {waiting}" if waiting else record.progress.message
        return cls(
            run_id=record.run_id, state=status.state, message=message, waiting=waiting,
            rate=record.progress.rate, error=status.error, worker=record.worker_id,
            running_since=status.running_since, finished_at=status.ended_at, duration=status.duration,
        )

    @classmethod
    def of_history(cls, run: RunRecord) -> RunView:
        return cls(
            run_id=run.run_id, state=run.state, message=run.error or run.state.value,
            rate=1.0 if run.state is State.DONE else 0.0, error=run.error, worker=run.worker_id,
            running_since=run.started_at, finished_at=run.ended_at, duration=run.duration,
        )


def run_status(run: RunView) -> Status:
    """The status fields that describe a run (conditions are merged separately)."""
    status = {
        "state": run.state.value,
        "runId": run.run_id,
        "progress": {"message": run.message[:1024], "rate": run.rate, "percent": int(run.rate * 100)},
        "error": run.error,
        "runningSince": iso(run.running_since),
        "finishedAt": iso(run.finished_at),
        "duration": run.duration,
    }
    if run.worker:  # a record lets go of its worker when the run ends: keep showing who ran it
        status["worker"] = run.worker
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
            "message": message[:1024],
            "lastTransitionTime": old["lastTransitionTime"] if old and old["status"] == status else stamp,
            "observedGeneration": generation,
        }
    return [merged[kind] for kind in sorted(merged)]
