"""Schedules fired by real workers on a real wire server: each nominal time launched once, the
overlap policies, pause, trigger, backfill, and the times missed while no worker was alive."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from shards.errors import ShardsError
from shards.records import utcnow
from shards.schedule_times import Timing
from shards.schedules import Outcome, Overlap, ScheduleSpec, run_id_for
from shards.states import State

from integration.harness import ShardsHarness, wait_until


def executions(log: Path) -> list[str]:
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def every(seconds: float, scope: str, process: str = "quick", **fields: object) -> ScheduleSpec:
    return ScheduleSpec(name="s", scope_id=scope, process_id=process, timing=Timing(every=seconds), **fields)  # type: ignore[arg-type]


def test_each_nominal_time_launches_once_whichever_worker_fires_it(
    shards_env: ShardsHarness, tmp_path: Path
) -> None:
    harness = shards_env
    harness.start_workers(3)
    harness.define("e")
    log = tmp_path / "runs.log"
    schedule = harness.controller.schedules.create(every(1, "e", args={"log": str(log), "pause": 0.01}))
    wait_until(lambda: len(executions(log)) >= 5, what="five fires", timeout=30)
    harness.controller.schedules.pause("e", "s", note="enough")
    time.sleep(1.5)  # a fire already claimed may still land
    ran = executions(log)
    assert len(ran) == len(set(ran)), ran  # no nominal time twice
    record = harness.controller.schedules.get("e", "s")
    assert record.paused and record.note == "enough" and record.next is not None
    launched = [a.run_id for a in record.actions if a.outcome is Outcome.LAUNCHED]
    assert set(ran) <= set(launched)
    assert all(run_id.startswith("s:") for run_id in ran)
    assert record.created_at == schedule.created_at
    count = len(executions(log))
    time.sleep(2.5)
    assert len(executions(log)) == count  # paused: nothing fires


def test_skip_leaves_out_the_times_that_come_while_the_run_is_active(shards_env: ShardsHarness) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("k")
    harness.controller.schedules.create(every(1, "k", "wait-for-stop", args={"limit": 3.5}))
    wait_until(lambda: harness.controller.schedules.get("k", "s").skipped >= 2, what="skips", timeout=30)
    record = harness.controller.schedules.get("k", "s")
    skipped = record.last(Outcome.SKIPPED)
    assert skipped is not None and "Skip" in skipped.detail
    assert record.launched >= 1


def test_buffer_one_runs_one_more_after_the_active_run(shards_env: ShardsHarness, tmp_path: Path) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("b")
    log = tmp_path / "runs.log"
    harness.controller.schedules.create(
        every(1, "b", args={"log": str(log), "pause": 2.5}, overlap=Overlap.BUFFER_ONE)
    )
    wait_until(lambda: len(executions(log)) >= 3, what="three runs", timeout=40)
    harness.controller.schedules.pause("b", "s")
    record = harness.controller.schedules.get("b", "s")
    assert record.skipped >= 1  # a second fire while one waits is skipped
    assert any(a.outcome is Outcome.QUEUED for a in record.actions)
    assert len(harness.record("b", "quick").queue) <= 1


def test_cancel_other_stops_the_active_run_for_the_next(shards_env: ShardsHarness) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("t")
    harness.controller.schedules.create(
        every(2, "t", "wait-for-stop", args={"limit": 60}, overlap=Overlap.CANCEL_OTHER)
    )
    wait_until(
        lambda: (
            len([r for r in harness.controller.history("t", "wait-for-stop") if r.state is State.STOPPED])
            >= 1
        ),
        what="a run stopped for the next",
        timeout=40,
    )
    harness.controller.schedules.pause("t", "s")


def test_trigger_and_backfill_fire_once_per_time(shards_env: ShardsHarness, tmp_path: Path) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("tb")
    log = tmp_path / "runs.log"
    spec = every(
        3600, "tb", args={"log": str(log), "pause": 0.01}, overlap=Overlap.BUFFER_ALL, buffer_limit=10
    )
    harness.controller.schedules.create(spec, paused=True)
    action = harness.controller.schedules.trigger("tb", "s")
    assert action.outcome is Outcome.LAUNCHED
    now = utcnow()
    actions = harness.controller.schedules.backfill("tb", "s", now - timedelta(hours=3), now)
    assert len(actions) == 3
    wait_until(lambda: len(executions(log)) == 4, what="the trigger and three backfilled times", timeout=30)
    again = harness.controller.schedules.backfill("tb", "s", now - timedelta(hours=3), now)
    assert all("already" in a.detail for a in again), again
    time.sleep(1)
    assert len(executions(log)) == 4
    with pytest.raises(ShardsError, match="more than 1000"):
        harness.controller.schedules.backfill("tb", "s", now - timedelta(days=3650), now)
    assert harness.controller.schedules.get("tb", "s").paused  # a trigger does not unpause


def test_times_missed_with_no_worker_are_counted_and_the_schedule_goes_on(
    shards_env: ShardsHarness, tmp_path: Path
) -> None:
    harness = shards_env
    first = harness.start_workers(1)[0]
    harness.define("m")
    first.terminate()
    wait_until(lambda: not first.running, what="the only worker to leave")
    log = tmp_path / "runs.log"
    harness.controller.schedules.create(
        every(1, "m", args={"log": str(log), "pause": 0.01}, catchup_window=2)
    )
    time.sleep(6)  # no worker: every time passes unfired
    harness.start_workers(1)
    wait_until(lambda: len(executions(log)) >= 3, what="the schedule to go on", timeout=30)
    record = harness.controller.schedules.get("m", "s")
    assert record.missed >= 2, record
    missed = record.last(Outcome.MISSED)
    assert missed is not None and "missed" in missed.detail
    ran = executions(log)
    assert len(ran) == len(set(ran))
    assert run_id_for("m", "s", record.actions[0].label) in [a.run_id for a in record.actions]
