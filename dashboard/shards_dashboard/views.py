"""What the page reads, as JSON: process records, run history, workers and pools, schedules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shards.records import ProcessRecord, RunRecord, iso, utcnow
from shards.schedules import Action
from shards_controller import Controller
from shards_controller.controller import pool_summary, unknown_scope

RUNS_WINDOW = 60  # minutes of runs the timeline reads by default
MAX_WINDOW = 24 * 60
RUNS_LIMIT = 500  # runs of one window read by default
MAX_RUNS = 2000
MAX_RUN_ERROR = 300  # characters of a run's error in the timeline (its history has it whole)


def now_iso() -> str:
    """Now on the server's clock, as the times of records and runs are."""
    return iso(utcnow()) or ""


def truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


def filters(params: Any) -> dict[str, Any]:
    """The seed's filters from query parameters: search, active, hideDetails, hideSpecial."""
    return {
        "search": params.get("search", ""),
        "active_only": truthy(params.get("active")),
        "max_detail_level": 1 if truthy(params.get("hideDetails")) else 4,
        "include_special": not truthy(params.get("hideSpecial")),
    }


def process_docs(records: list[ProcessRecord]) -> list[dict[str, Any]]:
    return [record.to_json() for record in records]


def snapshot(controller: Controller, scope: str) -> dict[str, Any]:
    """Every record of the scope (the page filters them itself) and the server's clock."""
    return {"scope": scope, "now": now_iso(), "records": process_docs(controller.list(scope))}


def history(controller: Controller, scope: str, process_id: str, limit: int) -> dict[str, Any]:
    runs = controller.history(scope, process_id, limit)
    return {"scope": scope, "id": process_id, "runs": [run.to_json() for run in runs]}


def bounded(value: str | None, default: int, highest: int) -> int:
    """A query parameter as an int in 1..highest; the default when it is not a number."""
    try:
        return max(1, min(int(value or default), highest))
    except ValueError:
        return default


def timeline_run(run: RunRecord) -> dict[str, Any]:
    """What the timeline draws of a run: its times, outcome and worker; no args (they may be big)."""
    error = run.error.splitlines()[0] if run.error else ""
    return {"runId": run.run_id, "id": run.process_id, "state": run.state.value, "workerId": run.worker_id,
            "attempt": run.attempt, "requestedAt": iso(run.requested_at), "startedAt": iso(run.started_at),
            "endedAt": iso(run.ended_at), "duration": run.duration,
            "error": error[:MAX_RUN_ERROR] + ("…" if len(error) > MAX_RUN_ERROR else "")}


def runs_window(controller: Controller, scope: str, minutes: int, limit: int) -> dict[str, Any]:
    """The runs of a scope requested in the last `minutes`, newest first, at most `limit`
    (`truncated` when there may be more: the oldest are left out)."""
    now = utcnow()
    since = now - timedelta(minutes=minutes)
    runs = controller.runs_since(scope, since, limit)
    return {"scope": scope, "now": iso(now), "since": iso(since), "minutes": minutes, "limit": limit,
            "truncated": len(runs) >= limit, "runs": [timeline_run(run) for run in runs]}


def workers(controller: Controller) -> dict[str, Any]:
    """Live workers (with their heartbeats and running counts) and, per pool, workers, free slots
    and pending launches."""
    alive = controller.store.workers.alive()
    pending = controller.store.requests.pending_launches()
    return {
        "now": now_iso(),
        "workers": [{**w.to_json(), "beat": w.beat, "lease": w.lease} for w in alive],
        "pools": [{"pool": pool, **counts} for pool, counts in pool_summary(alive, pending).items()],
    }


def run_log(controller: Controller, scope: str, process_id: str, run_id: str) -> dict[str, Any]:
    log = controller.run_logs(scope, process_id, run_id)
    note = "" if log.lines or log.dropped else ("no lines yet" if log.active else "the run logged nothing")
    return {"scope": scope, "id": process_id, "runId": log.run_id, "state": log.state, "active": log.active,
            "dropped": log.dropped, "lines": log.text_lines(), "note": note}


def schedules(controller: Controller, scope: str | None) -> dict[str, Any]:
    """The schedules of a scope (of every scope: None), as `shards schedule list -o json` has
    them; an unknown scope says so, as the process list does."""
    records = controller.schedules.list(scope)
    if scope is not None and not records:
        known = controller.scope_ids()
        if scope not in known:
            raise unknown_scope(scope, known)
    return {"scope": scope, "now": now_iso(), "schedules": [record.to_json() for record in records]}


def action_doc(action: Action) -> dict[str, Any]:
    """One action of a schedule, as ScheduleRecord.to_json() lists them."""
    return {**action.to_doc(), "nominal": iso(action.nominal), "at": iso(action.at)}
