"""Retries with backoff, the attempts a launch keeps, and the hand-off of runs by a worker that
shuts down: real workers, the real CLI, a real wire-protocol server."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from shards.states import State

from integration.harness import ShardsHarness, WorkerProcess, wait_until

FLAKY = "tests/integration/apps/flaky.py:app"


def _worker(shards_env: ShardsHarness, *flags: str) -> WorkerProcess:
    count = len(shards_env.store.workers.alive())
    worker = shards_env.start_worker(FLAKY, *flags, concurrency=2)
    wait_until(lambda: len(shards_env.store.workers.alive()) > count, what="a new live worker")
    return worker


def _journal(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_failed_attempt_is_retried_after_a_backoff_and_the_launch_keeps_its_attempts(
    shards_env: ShardsHarness, tmp_path: Path
) -> None:
    _worker(shards_env)
    shards_env.define("farm")
    journal = tmp_path / "flaky.journal"
    args = json.dumps({"journal": str(journal), "fail": 2})
    shards_env.ok("launch", "flaky", "--scope", "farm", "--args", args, "--retries", "3",
                  "--retry-backoff", "0.6", "--wait", "--wait-timeout", "60")
    record = shards_env.record("farm", "flaky")
    assert (record.state, record.attempt, record.retried) == (State.DONE, 3, 2)
    assert [(a.attempt, a.state, a.error) for a in record.attempts] == [
        (1, State.FAILED, "flaky failure 1"), (2, State.FAILED, "flaky failure 2")]
    runs = sorted(shards_env.controller.history("farm", "flaky"), key=lambda run: run.attempt)
    assert [(run.attempt, run.state) for run in runs] == [
        (1, State.FAILED), (2, State.FAILED), (3, State.DONE)]
    assert {run.launch_id for run in runs} == {runs[0].run_id}
    # Exponential backoff with equal jitter: retry n waits between half of and all of 0.6 * 2**(n-1).
    for retry, (ended, started) in enumerate(itertools.pairwise(runs), start=1):
        assert ended.ended_at is not None and started.started_at is not None
        waited = (started.started_at - ended.ended_at).total_seconds()
        assert waited >= 0.3 * 2 ** (retry - 1) - 0.01, f"retry {retry} came after {waited:.3f}s"
        assert waited < 0.6 * 2 ** (retry - 1) + 10, f"retry {retry} came after {waited:.3f}s"
    assert "ATTEMPT" in shards_env.ok("history", "flaky", "--scope", "farm").stdout
    listed = shards_env.ok("history", "flaky", "--scope", "farm", "-o", "json").json()
    assert sorted((run["attempt"], run["error"]) for run in listed) == [
        (1, "flaky failure 1"), (2, "flaky failure 2"), (3, "")]
    status = shards_env.ok("status", "flaky", "--scope", "farm", "-o", "json").json()
    assert (status["attempt"], status["retries"]) == (3, 3)
    assert [a["error"] for a in status["attempts"]] == ["flaky failure 1", "flaky failure 2"]


def test_retries_end_when_the_process_default_is_spent(shards_env: ShardsHarness, tmp_path: Path) -> None:
    _worker(shards_env)
    shards_env.define("farm")
    journal = tmp_path / "hopeless.journal"
    shards_env.ok("launch", "hopeless", "--scope", "farm", "--args", json.dumps({"journal": str(journal)}))
    record = wait_until(lambda: (r := shards_env.record("farm", "hopeless")).state is State.FAILED
                        and r.attempt == 3 and r, what="the third attempt to fail")
    assert record.status.error == "hopeless attempt 3"
    assert [a.error for a in record.attempts] == ["hopeless attempt 1", "hopeless attempt 2"]
    assert len([line for line in _journal(journal) if line.startswith("start")]) == 3


def test_a_permanent_error_is_not_retried(shards_env: ShardsHarness, tmp_path: Path) -> None:
    worker = _worker(shards_env)
    shards_env.define("farm")
    journal = tmp_path / "invalid.journal"
    shards_env.ok("launch", "invalid", "--scope", "farm", "--args", json.dumps({"journal": str(journal)}))
    record = shards_env.wait_state("farm", "invalid", State.FAILED, State.DONE)
    assert (record.status.error, record.attempt, record.attempts) == ("the input is invalid", 1, [])
    # Nothing is queued behind it: a launch of another process runs, and this one stays ended.
    shards_env.ok("launch", "flaky", "--scope", "farm", "--args",
                  json.dumps({"journal": str(tmp_path / "other"), "fail": 0}), "--wait")
    assert shards_env.record("farm", "invalid").attempt == 1
    assert len(_journal(journal)) == 1 and worker.popen.poll() is None


def test_a_stop_during_the_backoff_ends_the_retrying(shards_env: ShardsHarness, tmp_path: Path) -> None:
    _worker(shards_env)
    shards_env.define("farm")
    journal = tmp_path / "hopeless.journal"
    shards_env.ok("launch", "hopeless", "--scope", "farm", "--retry-backoff", "120",
                  "--args", json.dumps({"journal": str(journal)}))
    waiting = wait_until(lambda: (r := shards_env.record("farm", "hopeless")).attempt == 2 and r,
                         what="the second attempt to be scheduled")
    assert waiting.state is State.SCHEDULED and waiting.status.retry_at is not None
    assert "retry 1 of 2" in waiting.progress.message
    shards_env.ok("stop", "hopeless", "--scope", "farm")
    stopped = shards_env.wait_state("farm", "hopeless", State.STOPPED, State.FAILED, State.DONE)
    assert (stopped.state, stopped.attempt) == (State.STOPPED, 2)
    assert shards_env.store.requests.for_runs([stopped.run_id]) == []
    assert len(_journal(journal)) == 1  # the second attempt never ran
    runs = sorted(shards_env.controller.history("farm", "hopeless"), key=lambda run: run.attempt)
    assert [(run.attempt, run.state, run.launch_id) for run in runs] == [
        (1, State.FAILED, runs[0].run_id), (2, State.STOPPED, runs[0].run_id)]


def test_a_run_whose_worker_is_lost_is_handed_off_to_another_spending_no_retry(
    shards_env: ShardsHarness, tmp_path: Path
) -> None:
    first = _worker(shards_env)
    shards_env.define("farm")
    journal = tmp_path / "work.journal"
    # No retries: a lost worker is not the run's own failure (issue 22). Long enough that the
    # second worker is up (a loaded machine) before the first attempt could end.
    shards_env.ok("launch", "handed-off", "--scope", "farm",
                  "--args", json.dumps({"journal": str(journal), "seconds": 8}))
    shards_env.wait_state("farm", "handed-off", State.RUNNING)
    wait_until(lambda: _journal(journal), what="the first attempt to start")
    second = _worker(shards_env)
    first.kill()
    done = shards_env.wait_state("farm", "handed-off", State.DONE, State.FAILED, State.STOPPED)
    assert (done.state, done.attempt, done.retried, done.handoffs) == (State.DONE, 2, 0, 1)
    assert "lost" in done.attempts[0].error
    assert _journal(journal)[-1] == "done" and _journal(journal).count("done") == 1
    assert second.popen.poll() is None


def _run_on_first_worker_then_terminate(shards_env: ShardsHarness, process_id: str, journal: Path,
                                        *flags: str) -> tuple[WorkerProcess, WorkerProcess]:
    first = _worker(shards_env, "--isolation", "thread", *flags)
    shards_env.define("farm")
    shards_env.ok("launch", process_id, "--scope", "farm",
                  "--args", json.dumps({"journal": str(journal), "seconds": 4}))
    shards_env.wait_state("farm", process_id, State.RUNNING)
    wait_until(lambda: _journal(journal), what="the first attempt to start")
    second = _worker(shards_env)
    assert first.terminate() == 0
    return first, second


def test_a_worker_shutting_down_hands_its_run_off_to_another(
    shards_env: ShardsHarness, tmp_path: Path
) -> None:
    journal = tmp_path / "work.journal"
    first, second = _run_on_first_worker_then_terminate(shards_env, "handed-off", journal)
    done = shards_env.wait_state("farm", "handed-off", State.DONE, State.FAILED, State.STOPPED)
    assert (done.state, done.attempt) == (State.DONE, 2)
    assert done.attempts[0].state is State.STOPPED and "handed off" in done.attempts[0].error
    lines = _journal(journal)
    assert lines[0].startswith(f"start {first.pid} ") and lines[1] == "stopped"
    assert lines.count("done") == 1 and lines[-1] == "done"  # exactly one completion
    [second_run] = [run for run in shards_env.controller.history("farm", "handed-off") if run.attempt == 2]
    assert second_run.worker_id == shards_env.store.workers.alive()[0].worker_id
    assert second.popen.poll() is None


def test_a_worker_shutting_down_stops_a_run_whose_policy_says_stop(
    shards_env: ShardsHarness, tmp_path: Path
) -> None:
    journal = tmp_path / "work.journal"
    _run_on_first_worker_then_terminate(shards_env, "stops-on-shutdown", journal)
    stopped = shards_env.wait_state("farm", "stops-on-shutdown", State.STOPPED, State.FAILED, State.DONE)
    assert (stopped.state, stopped.attempt) == (State.STOPPED, 1)
    assert _journal(journal)[-1] == "stopped" and "done" not in _journal(journal)


def test_a_run_that_outlives_its_workers_shutdown_is_handed_off_by_another_worker(
    shards_env: ShardsHarness, tmp_path: Path
) -> None:
    """In a thread nothing can be killed: the run ends with its worker's process, and another
    worker's reconciler hands it off once the leaving worker has left the registry."""
    journal = tmp_path / "work.journal"
    first, _ = _run_on_first_worker_then_terminate(shards_env, "oblivious", journal, "--shutdown-grace", "1")
    done = shards_env.wait_state("farm", "oblivious", State.DONE, State.FAILED, State.STOPPED)
    assert (done.state, done.attempt, done.attempts[0].state) == (State.DONE, 2, State.FAILED)
    assert "shut down before the process stopped" in done.attempts[0].error
    lines = _journal(journal)
    assert lines[0].startswith(f"start {first.pid} ") and lines.count("done") == 1
