"""From the execution log, the store's final story and the injected faults to a Report.

The execution log (written by the processes themselves, outside MongoDB) says what really ran
and when; the run history and the records say what the store believes. Defects are where the two
disagree, or where the store never settles.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shards.records import ProcessRecord, RunRecord
from shards.states import ACTIVE, FINAL

from chaos.faults import FaultEvent
from chaos.report import SettleStats

CLIENT_WINDOW = 0.5  # seconds of slack around a killed client's life when matching its runs


@dataclass
class Execution:
    """One execution of a process body, as the execution log tells it."""

    run_id: str
    scope_id: str
    process_id: str
    pid: int
    started: float
    ended: float | None = None  # from its `end` line; None if it never wrote one


@dataclass
class ExecutionLog:
    executions: list[Execution]
    double_starts: dict[str, int]  # run id -> start lines, for run ids started more than once

    @property
    def run_ids(self) -> set[str]:
        return {execution.run_id for execution in self.executions}


def read_execution_log(path: Path) -> ExecutionLog:
    executions: list[Execution] = []
    open_by_run_pid: dict[tuple[str, int], list[Execution]] = defaultdict(list)
    starts: Counter[str] = Counter()
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0] == "start":
            _, run_id, scope_id, process_id, pid, at = fields
            execution = Execution(run_id, scope_id, process_id, int(pid), float(at))
            executions.append(execution)
            open_by_run_pid[(run_id, int(pid))].append(execution)
            starts[run_id] += 1
        elif len(fields) == 4 and fields[0] == "end":
            _, run_id, pid, at = fields
            pending = open_by_run_pid.get((run_id, int(pid)))
            if pending:
                pending.pop(0).ended = float(at)
        # anything else is a torn line of a killed process: it cannot be attributed
    return ExecutionLog(executions, {run: count for run, count in starts.items() if count > 1})


def interval_end(execution: Execution, pid_deaths: dict[int, float], now: float) -> float:
    """An execution ends at its end line, else when its worker died, else it is still going."""
    if execution.ended is not None:
        return execution.ended
    return pid_deaths.get(execution.pid, now)


def find_duplicates(log: ExecutionLog, pid_deaths: dict[int, float], now: float) -> list[str]:
    found = [f"run {run} started {count} times" for run, count in sorted(log.double_starts.items())]
    by_process: dict[tuple[str, str], list[Execution]] = defaultdict(list)
    for execution in log.executions:
        by_process[(execution.scope_id, execution.process_id)].append(execution)
    for (scope_id, process_id), executions in sorted(by_process.items()):
        executions.sort(key=lambda e: e.started)
        for index, first in enumerate(executions):
            first_end = interval_end(first, pid_deaths, now)
            for second in executions[index + 1:]:
                if second.started >= first_end:
                    break  # sorted by start: no later one overlaps `first` either
                if second.run_id == first.run_id:
                    continue  # already counted as a double start
                found.append(
                    f"{scope_id}/{process_id}: run {second.run_id[:8]} (pid {second.pid}) started "
                    f"{first_end - second.started:.2f}s before run {first.run_id[:8]} (pid {first.pid}) ended"
                )
    return found


def final_time(run_id: str, history: dict[str, RunRecord], records: dict[str, ProcessRecord]) -> float | None:
    """Wall time the run reached a final state, per the history or else the record; None if never."""
    run = history.get(run_id)
    if run is not None and run.state in FINAL and run.ended_at is not None:
        return run.ended_at.timestamp()
    record = records.get(run_id)
    if record is not None and record.state in FINAL and record.status.ended_at is not None:
        return record.status.ended_at.timestamp()
    return None


def close_unended(log: ExecutionLog, history: dict[str, RunRecord], records: dict[str, ProcessRecord],
                  pid_deaths: dict[int, float]) -> None:
    """An execution without an `end` line was cut short: its run's OS process crashed or was
    killed, or its worker died. It ended when its worker died, or else at its run's recorded end
    (a worker reaps a run's process before it records the run's end), whichever came first."""
    for execution in log.executions:
        if execution.ended is None:
            ends = [pid_deaths.get(execution.pid), final_time(execution.run_id, history, records)]
            known = [end for end in ends if end is not None]
            execution.ended = min(known) if known else None


def find_lost(
    accepted: list[str], history: dict[str, RunRecord], records: dict[str, ProcessRecord]
) -> list[str]:
    """Accepted launches (and any run the history knows of) that never reached a final state."""
    lost = []
    for run_id in dict.fromkeys([*accepted, *history]):
        if final_time(run_id, history, records) is None:
            run = history.get(run_id)
            where = f"{run.scope_id}/{run.process_id} {run.state.value}" if run else "no history"
            lost.append(f"run {run_id[:8]} ({where})")
    return lost


def find_stuck(records: list[ProcessRecord]) -> list[str]:
    return [
        f"{r.scope_id}/{r.process_id} {r.state.value} run {r.run_id[:8]} worker {r.worker_id or '-'}"
        for r in records
        if r.state in ACTIVE
    ]


def reason_prefix(error: str) -> str:
    """A stable reason: ids and numbers replaced, cut short, so equal causes group together."""
    text = re.sub(r"\b[0-9a-f]{8,}\b", "<id>", error)
    text = re.sub(r"\d+(\.\d+)?", "<n>", text)
    return text[:70]


def final_states(history: dict[str, RunRecord]) -> Counter[tuple[str, str]]:
    return Counter(
        (run.state.value, reason_prefix(run.error)) for run in history.values() if run.state in FINAL
    )


def victims(event: FaultEvent, log: ExecutionLog, history: dict[str, RunRecord]) -> list[str]:
    if event.run_ids:
        return event.run_ids
    if event.pids:  # runs executing on the victim pids when the fault hit
        return sorted({
            e.run_id for e in log.executions
            if e.pid in event.pids and e.started <= event.at and (e.ended is None or e.ended > event.at)
        })
    return [  # a killed client: the runs it managed to request
        run.run_id for run in history.values()
        if run.scope_id == event.scope_id and run.process_id == event.process_id
        and not run.parent_run_id and run.requested_at is not None
        and event.since - CLIENT_WINDOW <= run.requested_at.timestamp() <= event.at + CLIENT_WINDOW
    ]


def settle_times(
    events: list[FaultEvent], log: ExecutionLog, history: dict[str, RunRecord],
    records: dict[str, ProcessRecord], details: list[dict[str, Any]] | None = None,
) -> dict[str, SettleStats]:
    """Per fault kind, how long its victims took to end; `details` gets one entry per fault."""
    stats: dict[str, SettleStats] = defaultdict(SettleStats)
    for event in sorted(events, key=lambda e: e.at):
        kind = stats[event.kind]
        kind.faults += 1
        outcomes: dict[str, float | None] = {}
        for run_id in victims(event, log, history):
            kind.victims += 1
            ended = final_time(run_id, history, records)
            outcomes[run_id] = None if ended is None else round(max(0.0, ended - event.at), 3)
            if ended is None:
                kind.unsettled += 1
            else:
                kind.settled.append(max(0.0, ended - event.at))
        if details is not None:
            details.append({**asdict(event), "settle_seconds": outcomes})
    return dict(stats)
