"""The analysis finds what it claims to find: checked on hand-written logs and histories (fast)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from shards.records import ProcessRecord, ProcessStatus, RunRecord
from shards.states import State

from chaos import analysis
from chaos.faults import FaultEvent


def _log(tmp_path: Path, *lines: str) -> analysis.ExecutionLog:
    path = tmp_path / "executions.log"
    path.write_text("".join(line + "\n" for line in lines))
    return analysis.read_execution_log(path)


def _run(run_id: str, state: State, ended: float | None = None, error: str = "") -> RunRecord:
    ended_at = datetime.fromtimestamp(ended, UTC) if ended is not None else None
    return RunRecord(run_id, "s", "slow", state, error=error, ended_at=ended_at)


def test_overlapping_executions_of_one_process_are_duplicates(tmp_path: Path) -> None:
    log = _log(
        tmp_path,
        "start a s slow 10 100.0", "end a 10 103.0",
        "start b s slow 11 102.0", "end b 11 104.0",  # starts while a still runs
        "start c s slow 11 104.5", "end c 11 105.0",  # after both: fine
        "start d s quick 11 102.5", "end d 11 102.6",  # another process: fine
    )
    found = analysis.find_duplicates(log, {}, now=200.0)
    assert len(found) == 1 and "run b" in found[0] and "run a" in found[0]


def test_a_killed_worker_ends_its_executions_and_a_run_started_twice_is_a_duplicate(tmp_path: Path) -> None:
    log = _log(
        tmp_path,
        "start a s slow 10 100.0",  # no end line: its worker pid 10 died at 101
        "start b s slow 11 101.5", "end b 11 102.0",
        "start b s slow 12 103.0", "end b 12 104.0",  # the same run executed again
    )
    assert analysis.find_duplicates(log, {10: 101.0}, now=200.0) == ["run b started 2 times"]
    assert len(analysis.find_duplicates(log, {10: 102.0}, now=200.0)) == 2  # died too late


def test_lost_stuck_and_settle_times(tmp_path: Path) -> None:
    log = _log(tmp_path, "start a s slow 10 100.0", "start b s slow 10 100.5", "end b 10 100.6",
               "start c s slow 10 101.0")
    history = {"a": _run("a", State.FAILED, 104.0, "worker w1 was lost (no heartbeat for 3s)"),
               "c": _run("c", State.RUNNING)}
    stuck = ProcessRecord("s", "slow", "Slow", status=ProcessStatus(State.RUNNING), run_id="c")
    records = {"c": stuck}
    assert analysis.find_lost(["a", "c", "x"], history, records) == [
        "run c (s/slow Running)", "run x (no history)"
    ]
    assert analysis.find_stuck([stuck]) == ["s/slow Running run c worker -"]
    kill = FaultEvent("worker-kill", at=102.0, pids=[10])
    stats = analysis.settle_times([kill], log, history, records)["worker-kill"]
    assert (stats.victims, stats.settled, stats.unsettled) == (2, [2.0], 1)  # a settled, c never
    assert analysis.final_states(history) == {("Failed", "worker w<n> was lost (no heartbeat for <n>s)"): 1}
