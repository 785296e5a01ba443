"""The attempts rules find what they claim to find: hand-written histories, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from shards.records import RunRecord
from shards.states import State

from chaos import analysis, attempts, outcomes
from chaos.app import FLAKY_ERROR
from chaos.faults import FaultEvent


def _attempt(launch: str, attempt: int, state: State, started: float, ended: float, error: str = "",
             process_id: str = "flaky") -> RunRecord:
    run_id = launch if attempt == 1 else f"{launch}.{attempt}"
    return RunRecord(run_id, "s", process_id, state, error=error, launch_id=launch, attempt=attempt,
                     started_at=datetime.fromtimestamp(started, UTC),
                     ended_at=datetime.fromtimestamp(ended, UTC))


def _check(tmp_path: Path, runs: list[RunRecord], injected: list[FaultEvent] | None = None,
           lines: tuple[str, ...] = ()) -> outcomes.Outcomes:
    path = tmp_path / "executions.log"
    path.write_text("".join(line + "\n" for line in lines))
    found = outcomes.Outcomes()
    attempts.check_attempts(analysis.read_execution_log(path), {run.run_id: run for run in runs},
                            injected or [], found)
    return found


def test_a_flaky_launch_fails_once_and_is_done_on_its_retry_after_its_backoff(tmp_path: Path) -> None:
    good = [_attempt("a", 1, State.FAILED, 100.0, 100.1, FLAKY_ERROR),
            _attempt("a", 2, State.DONE, 100.25, 100.3)]
    found = _check(tmp_path, good)
    assert found.defects == [] and found.checked["flaky, retried"] == 1
    early = [_attempt("b", 1, State.FAILED, 100.0, 100.1, FLAKY_ERROR),
             _attempt("b", 2, State.DONE, 100.12, 100.2)]
    assert "sooner than half" in _check(tmp_path, early).defects[0]
    never = [_attempt("c", 1, State.FAILED, 100.0, 100.1, FLAKY_ERROR)]
    assert "not Failed then Done" in _check(tmp_path, never).defects[0]


def test_attempts_are_numbered_without_gaps_and_nothing_follows_a_done(tmp_path: Path) -> None:
    gap = [_attempt("a", 1, State.FAILED, 1, 2, "x", "slow"), _attempt("a", 3, State.DONE, 3, 4, "", "slow")]
    assert "attempts [1, 3]" in _check(tmp_path, gap).defects[0]
    twice = [_attempt("b", 1, State.DONE, 1, 2, "", "slow"), _attempt("b", 2, State.DONE, 3, 4, "", "slow")]
    assert "after a Done" in _check(tmp_path, twice).defects[0]


def test_a_run_stopped_by_a_worker_shutting_down_is_handed_off(tmp_path: Path) -> None:
    lines = ("start h s slow 10 100.0", "end h 10 101.0", "start k s slow 10 100.0", "end k 10 101.0")
    term = FaultEvent(kind="worker-term", at=100.5, worker_id="w1", pids=[10])
    handed = [_attempt("h", 1, State.STOPPED, 100.0, 101.0, "handed off: worker w1 shut down", "slow"),
              _attempt("h", 2, State.DONE, 101.1, 102.0, "", "slow"),
              _attempt("k", 1, State.STOPPED, 100.0, 101.0, "killed after 1 s grace", "slow")]
    found = _check(tmp_path, handed, [term], lines)
    assert found.checked["handed off"] == 2
    assert len(found.defects) == 1 and "run k" in found.defects[0] and "not handed off" in found.defects[0]
