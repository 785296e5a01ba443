"""The schedule analysis finds what it claims to find: checked on hand-written records, histories
and logs (fast). Times are on a 1 s interval; the pause is at 110.5, the slack 3 s."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from shards.records import ProcessRecord, ProcessStatus, QueuedLaunch, RunRecord
from shards.schedule_times import Timing, times_between
from shards.schedules import Action, Outcome, Overlap, ScheduleRecord, ScheduleSpec, run_id_for
from shards.states import State

from chaos import analysis
from chaos.schedules import ScheduleCheck, check_schedule, label_of, stopping_runs, totals

SPEC = ScheduleSpec(name="tick", scope_id="s", process_id="scheduled", timing=Timing(every=1.0),
                    overlap=Overlap.BUFFER_ALL, buffer_limit=3)
CREATED, PAUSED = 100.3, 110.5


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# The nominal times 101, 102, ... 110 (due in the window), and 111, 112 (after the pause).
TIMES = times_between(SPEC.timing, _at(CREATED), _at(112.0), 100)
LAUNCH = [run_id_for("s", "tick", nominal.label) for nominal in TIMES]


def _records(launched: int, skipped: int, missed: int, actions: list[Action] | None = None,
             failed: int = 0) -> tuple[ScheduleRecord, ScheduleRecord, ScheduleRecord]:
    created = ScheduleRecord(SPEC, created_at=_at(CREATED), updated_at=_at(CREATED))
    paused = replace(created, generation=2, paused=True, updated_at=_at(PAUSED))
    final = replace(paused, fired=launched + skipped + failed, launched=launched, skipped=skipped,
                    missed=missed, actions=actions or [])
    return created, paused, final


def _run(index: int, attempt: int = 1, started: float | None = None) -> RunRecord:
    run_id = LAUNCH[index] if attempt == 1 else f"{LAUNCH[index]}.{attempt}"
    return RunRecord(run_id, "s", "scheduled", State.DONE, launch_id=LAUNCH[index], attempt=attempt,
                     started_at=_at(started or 101.0 + index))


def _action(index: int, outcome: Outcome) -> Action:
    nominal = TIMES[index]
    return Action(nominal.label, nominal.at, nominal.at, LAUNCH[index], outcome)


def _check(tmp_path: Path, records: tuple[ScheduleRecord, ScheduleRecord, ScheduleRecord],
           runs: list[RunRecord], lines: list[str], queue: tuple[str, ...] = ()) -> ScheduleCheck:
    path = tmp_path / "executions.log"
    path.write_text("".join(line + "\n" for line in lines))
    log = analysis.read_execution_log(path)
    history = {run.run_id: run for run in runs}
    analysis.close_unended(log, history, {}, {})
    target = ProcessRecord("s", "scheduled", "Scheduled", status=ProcessStatus(State.DONE),
                           queue=[QueuedLaunch(run_id) for run_id in queue])
    created, paused, final = records
    return check_schedule(created, paused, final, target, history, log, slack=3.0)


def _ran(run_id: str, started: float, ended: float, pid: int = 10) -> list[str]:
    return [f"start {run_id} s scheduled {pid} {started}", f"end {run_id} {pid} {ended}"]


def test_every_time_once_with_one_in_flight_at_the_pause_and_a_handed_off_attempt(tmp_path: Path) -> None:
    # 101-104 launched, 105-106 skipped, 107 missed, 108-109 launched, 110 launched as the pause
    # came (its run exists, its count was refused by the pause's generation). 101 was handed off.
    launched = [0, 1, 2, 3, 7, 8]
    runs = [_run(i) for i in [*launched, 9]] + [_run(0, attempt=2, started=101.6)]
    lines = [line for i in [*launched, 9] for line in _ran(LAUNCH[i], 101.0 + i, 101.4 + i)]
    lines[1] = f"end {LAUNCH[0]} 10 101.5"
    lines += _ran(f"{LAUNCH[0]}.2", 101.6, 101.9, pid=11)
    actions = [_action(0, Outcome.LAUNCHED), _action(4, Outcome.SKIPPED), _action(8, Outcome.QUEUED)]
    found = _check(tmp_path, _records(launched=6, skipped=2, missed=1, actions=actions), runs, lines)
    assert found.defects == []
    assert (found.due, found.allowed, found.cut_off, found.launches, found.executions) == (10, 3, 1, 7, 8)
    assert label_of(LAUNCH[0], "tick") == TIMES[0].label


def test_a_time_run_twice_or_counted_twice_or_after_the_pause_is_a_duplicate(tmp_path: Path) -> None:
    runs = [_run(0), _run(0, attempt=2, started=101.2), _run(1), _run(2), _run(11)]
    lines = [*_ran(LAUNCH[0], 101.0, 101.5), *_ran(f"{LAUNCH[0]}.2", 101.2, 101.8, pid=11),  # at once
             *_ran(LAUNCH[1], 102.0, 102.2), *_ran(LAUNCH[1], 102.3, 102.4, pid=11),  # started twice
             *_ran(LAUNCH[2], 103.0, 103.1)]
    actions = [_action(2, Outcome.SKIPPED)]  # skipped, yet its run is in the history
    found = _check(tmp_path, _records(launched=3, skipped=9, missed=0, actions=actions), runs, lines)
    assert found.unaccounted == [] and found.stuck == []
    assert any("launched, outside its window" in d and TIMES[11].label in d for d in found.twice)
    assert any("executed by two attempts at once" in d for d in found.twice)
    assert any(f"run {LAUNCH[1]} executed 2 times" in d for d in found.twice)
    assert any("12 nominal times counted, only 10 came due" in d for d in found.twice)
    assert any("Skipped" in d and "and launched" in d for d in found.twice)


def test_uncounted_times_and_counted_launches_without_a_run_are_unaccounted(tmp_path: Path) -> None:
    # Only 101-104 counted: 105-107 came due more than 3 s before the pause and went nowhere.
    runs = [_run(0), _run(1), _run(2)]
    lines = [line for i in range(3) for line in _ran(LAUNCH[i], 101.0 + i, 101.2 + i)]
    actions = [_action(3, Outcome.LAUNCHED)]  # counted launched, never in the history
    found = _check(tmp_path, _records(launched=4, skipped=0, missed=0, actions=actions), runs, lines)
    assert found.twice == [] and found.stuck == []
    assert len(found.unaccounted) == 3, found.unaccounted
    assert "6 of 10 due times neither launched" in found.unaccounted[0]
    assert "4 times counted launched, only 3 launches" in found.unaccounted[1]
    assert TIMES[3].label in found.unaccounted[2]


def test_a_launch_left_in_the_queue_after_quiescence_is_stuck(tmp_path: Path) -> None:
    runs = [_run(i) for i in range(7)]
    lines = [line for i in range(7) for line in _ran(LAUNCH[i], 101.0 + i, 101.2 + i)]
    found = _check(tmp_path, _records(launched=8, skipped=0, missed=0), runs, lines, queue=(LAUNCH[7],))
    assert found.twice == [] and found.unaccounted == []
    assert found.stuck == [f"s/tick: 1 launches still queued after quiescence: {LAUNCH[7]}"]
    assert totals([found]).stuck == 1 and totals([found]).launched == 8


def test_the_runs_a_cancelling_schedule_may_stop_are_excused_from_the_hand_off_rule() -> None:
    cancelling = replace(SPEC, scope_id="c", overlap=Overlap.CANCEL_OTHER)
    runs = [_run(0), replace(_run(1), scope_id="c"), replace(_run(2), scope_id="c", process_id="slow")]
    history = {run.run_id + run.scope_id + run.process_id: run for run in runs}
    assert stopping_runs([SPEC, cancelling], history) == {LAUNCH[1]}
