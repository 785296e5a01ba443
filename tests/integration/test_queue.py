"""Launches that wait: behind the active run (`launch --queue`, a schedule's buffer), and until a
time (`launch --at/--in`). Real worker processes on a real wire server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from shards.errors import ProcessActive, ShardsError
from shards.records import utcnow
from shards.states import FINAL, State

from integration.harness import ShardsHarness, wait_until


def executions(log: Path) -> list[str]:
    return log.read_text().split("\n")[:-1] if log.exists() else []


def test_queued_launches_run_one_after_another_in_order(shards_env: ShardsHarness, tmp_path: Path) -> None:
    harness = shards_env
    harness.start_workers(2, concurrency=2)
    harness.define("q")
    log = tmp_path / "runs.log"
    first = harness.controller.launch("q", "quick", args={"log": str(log), "pause": 1.0}, run_id="first")
    queued = [
        harness.controller.launch(
            "q", "quick", args={"log": str(log), "pause": 0.2}, run_id=f"next-{n}", queue=True
        )
        for n in range(3)
    ]
    assert first.state is State.SCHEDULED
    assert [q.run_id for q in harness.record("q", "quick").queue] == ["next-0", "next-1", "next-2"]
    assert queued[-1].run_id == "first"  # the record still names the active run
    with pytest.raises(ProcessActive):  # without --queue an active process refuses, as before
        harness.controller.launch("q", "quick")
    wait_until(
        lambda: len(executions(log)) == 4 and harness.record("q", "quick").state is State.DONE,
        what="the queued runs",
        timeout=60,
    )
    assert [line.split()[0] for line in executions(log)] == ["first", "next-0", "next-1", "next-2"]
    record = harness.record("q", "quick")
    assert record.queue == [] and record.run_id == "next-2"
    # The same run id queued again adds nothing (idempotent, as launches are).
    harness.controller.launch("q", "quick", args={"log": str(log)}, run_id="next-1", queue=True)
    assert len(executions(log)) == 4


def test_a_stopped_run_hands_over_to_its_queue(shards_env: ShardsHarness) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("q2")
    harness.controller.launch("q2", "wait-for-stop")
    harness.wait_state("q2", "wait-for-stop", State.RUNNING)
    harness.controller.launch("q2", "wait-for-stop", args={"limit": 0.1}, run_id="after-stop", queue=True)
    harness.controller.stop("q2", "wait-for-stop")
    def queued_run_ended() -> bool:
        record = harness.record("q2", "wait-for-stop")
        return record.run_id == "after-stop" and record.state in FINAL

    wait_until(queued_run_ended, what="the queued run to end", timeout=60)
    done = harness.record("q2", "wait-for-stop")
    assert done.state is State.DONE, done
    history = harness.controller.history("q2", "wait-for-stop")
    assert [run.state for run in reversed(history)] == [State.STOPPED, State.DONE]


def test_a_delayed_launch_waits_for_its_time(shards_env: ShardsHarness, tmp_path: Path) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("d")
    log = tmp_path / "runs.log"
    at = utcnow() + timedelta(seconds=3)
    record = harness.controller.launch("d", "quick", args={"log": str(log)}, at=at)
    assert record.state is State.SCHEDULED and record.status.start_at is not None
    assert abs((record.status.start_at - at).total_seconds()) < 0.002
    assert "Starts at" in record.progress.message
    done = harness.wait_state("d", "quick", State.DONE, timeout=30)
    assert done.status.running_since is not None and done.status.running_since >= at
    assert len(executions(log)) == 1


def test_a_delayed_launch_can_be_stopped_before_its_time(shards_env: ShardsHarness) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("d2")
    harness.controller.launch("d2", "quick", at=utcnow() + timedelta(seconds=30))
    stopped = harness.controller.stop("d2", "quick")
    assert stopped.state is State.STOPPED
    with pytest.raises(ShardsError, match="not both"):
        harness.controller.launch("d2", "quick", at=utcnow() + timedelta(seconds=30), queue=True)
    with pytest.raises(ShardsError, match="time zone"):
        harness.controller.launch("d2", "quick", at=utcnow().replace(tzinfo=None))
