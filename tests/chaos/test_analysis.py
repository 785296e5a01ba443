"""The analysis finds what it claims to find: checked on hand-written logs and histories (fast)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from shards.records import ProcessRecord, ProcessStatus, RunRecord
from shards.states import State

from chaos import analysis, outcomes
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


def _entry(run_id: str, process_id: str, state: State, started: float, ended: float, error: str = "",
           **args: float) -> RunRecord:
    return RunRecord(run_id, "s", process_id, state, args=dict(args), error=error,
                     started_at=datetime.fromtimestamp(started, UTC),
                     ended_at=datetime.fromtimestamp(ended, UTC))


def _outcomes(tmp_path: Path, lines: list[str], runs: list[RunRecord], injected: Sequence[FaultEvent] = (),
              pid_deaths: dict[int, float] | None = None) -> outcomes.Outcomes:
    log, history = _log(tmp_path, *lines), {run.run_id: run for run in runs}
    analysis.close_unended(log, history, {}, pid_deaths or {})
    return outcomes.check_outcomes(log, history, {}, list(injected), pid_deaths or {}, grace=1.0, lease=3.0)


def test_a_killed_execution_ends_at_its_runs_end_so_a_relaunch_is_no_duplicate(tmp_path: Path) -> None:
    log = _log(tmp_path, "start a s runaway 10 100.0",  # killed: no end line
               "start b s runaway 10 104.0", "end b 10 104.5",
               "start c t runaway 11 100.0")  # its worker 11 died at 101, before c's end was recorded
    history = {"a": _entry("a", "runaway", State.FAILED, 100.0, 103.5, "deadline exceeded after 2.5 s"),
               "c": _entry("c", "runaway", State.FAILED, 100.0, 108.0, "worker w1 was lost")}
    assert analysis.find_duplicates(log, {}, now=200.0) != []  # a seems to run on: b overlaps it
    analysis.close_unended(log, history, {}, {11: 101.0})
    assert [e.ended for e in log.executions] == [103.5, 104.5, 101.0]
    assert analysis.find_duplicates(log, {11: 101.0}, now=200.0) == []


def test_a_crash_ends_failed_with_its_reason_and_its_neighbours_end_as_alone(tmp_path: Path) -> None:
    lines = ["start x s crash-segv 10 100.0",
             "start q s quick 10 99.9", "end q 10 100.3",
             "start f s failing 10 100.1", "end f 10 100.2",
             "start fenced s slow 10 100.1", "end fenced 10 100.15",
             "start later s quick 10 101.0", "end later 10 101.1"]
    runs = [_entry("x", "crash-segv", State.FAILED, 100.0, 100.2, "killed by signal 11 (SIGSEGV)"),
            _entry("q", "quick", State.DONE, 99.9, 100.3),
            _entry("f", "failing", State.FAILED, 100.1, 100.2, "chaos failure on purpose"),
            _entry("fenced", "slow", State.STOPPED, 100.1, 100.2,  # Mongo's doing, not the crash's
                   "stopped: worker w0-1a2b3c lost contact with MongoDB for 2s, so it could not keep its"),
            _entry("later", "quick", State.DONE, 101.0, 101.1)]
    found = _outcomes(tmp_path, lines, runs)
    assert found.defects == []
    assert found.checked == {"crash": 1, "beside a crash": 3}  # `later` started after the crash


def test_a_crash_with_the_wrong_reason_or_that_takes_others_down_is_a_defect(tmp_path: Path) -> None:
    lines = ["start x s crash-exit 10 100.0", "start q s slow 10 99.0"]  # neither wrote an end
    runs = [_entry("x", "crash-exit", State.FAILED, 100.0, 100.2, "worker w0 was lost"),
            _entry("q", "slow", State.FAILED, 99.0, 104.0, "worker w0 was lost")]
    found = _outcomes(tmp_path, lines, runs, pid_deaths={10: 100.1})  # the worker died with the crash
    assert len(found.defects) == 3
    assert "ended Failed 'worker w0 was lost', not Failed 'exited with code 3'" in found.defects[0]
    assert "its worker (pid 10) left" in found.defects[1]
    assert "beside crashed s/crash-exit run x" in found.defects[2]


def test_a_worker_killed_on_purpose_after_a_crash_excuses_it(tmp_path: Path) -> None:
    lines = ["start x s crash-oom 10 100.0", "end x 10 100.1", "start q s slow 10 99.0"]
    runs = [_entry("x", "crash-oom", State.FAILED, 100.0, 100.1, "MemoryError"),
            _entry("q", "slow", State.FAILED, 99.0, 104.0, "worker w0 was lost")]
    kill = FaultEvent("worker-kill", at=100.5, pids=[10])
    found = _outcomes(tmp_path, lines, runs, [kill], pid_deaths={10: 100.6})  # noticed just after
    assert found.defects == [] and found.checked == {"crash": 1, "beside a crash": 1}


def test_a_runaway_ends_by_its_deadline_a_forced_stop_or_the_grace_in_bounded_time(tmp_path: Path) -> None:
    lines = ["start d s runaway 10 100.0", "start f s runaway 10 100.0", "start g s runaway 10 100.0"]
    runs = [_entry("d", "runaway", State.FAILED, 100.0, 103.6, "deadline exceeded after 2.5 s", timeout=2.5),
            _entry("f", "runaway", State.STOPPED, 100.0, 101.2, "killed by a forced stop", timeout=3.0),
            _entry("g", "runaway", State.STOPPED, 100.0, 102.3, "killed after 1 s grace", timeout=3.0)]
    stops = [FaultEvent("force-stop", at=101.0, run_ids=["f"]), FaultEvent("stop", at=101.0, run_ids=["g"])]
    found = _outcomes(tmp_path, lines, runs, stops)
    assert found.defects == []
    assert found.checked == {"runaway, deadline": 1, "runaway, forced stop": 1,
                             "runaway, stop after grace": 1}


def test_a_runaway_that_ends_late_early_or_with_the_wrong_reason_is_a_defect(tmp_path: Path) -> None:
    lines = ["start late s runaway 10 100.0", "start early s runaway 10 100.0",
             "start wrong s runaway 10 100.0", "start race s runaway 10 100.0"]
    after_2_5, after_3 = "deadline exceeded after 2.5 s", "deadline exceeded after 3 s"
    runs = [_entry("late", "runaway", State.FAILED, 100.0, 110.0, after_2_5, timeout=2.5),
            _entry("early", "runaway", State.FAILED, 100.0, 101.0, after_2_5, timeout=2.5),
            _entry("wrong", "runaway", State.FAILED, 100.0, 101.2, after_3, timeout=3.0),
            _entry("race", "runaway", State.FAILED, 100.0, 103.5, after_3, timeout=3.0)]
    stops = [FaultEvent("force-stop", at=101.0, run_ids=["wrong"]),
             FaultEvent("force-stop", at=102.8, run_ids=["race"])]  # at the deadline: either ending
    found = _outcomes(tmp_path, lines, runs, stops)
    assert len(found.defects) == 3, found.defects
    assert "late" in found.defects[0] and "(bound 4s)" in found.defects[0]
    assert "early" in found.defects[1] and "before its 2.5 s deadline" in found.defects[1]
    assert "wrong" in found.defects[2] and "not Stopped 'killed by a forced stop'" in found.defects[2]


def test_a_runaway_started_just_after_an_outage_is_the_outages_story(tmp_path: Path) -> None:
    lines = ["start r s runaway 10 106.0", "start late s runaway 10 110.0"]
    fenced = "killed after 1 s grace"  # its worker fenced it: no stop of the suite's named it
    runs = [_entry("r", "runaway", State.STOPPED, 106.0, 107.1, fenced, timeout=3.0),
            _entry("late", "runaway", State.STOPPED, 110.0, 111.1, fenced, timeout=3.0)]
    outage = FaultEvent("mongo-short", at=104.0, pids=[10], until=105.0)  # a lease (3 s) covers r only
    found = _outcomes(tmp_path, lines, runs, [outage])
    assert found.checked == {"runaway, deadline": 1} and len(found.defects) == 2
    assert all("run late" in defect for defect in found.defects)
