"""Schedules fired by real workers on a real wire server: each nominal time launched once, the
overlap policies, pause, trigger, backfill, and the times missed while no worker was alive."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from shards.errors import ShardsError
from shards.records import utcnow
from shards.requests import RequestKind
from shards.schedule_times import Timing
from shards.schedules import Outcome, Overlap, ScheduleSpec, run_id_for
from shards.states import State
from shards_store import firing

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


def test_a_time_launched_by_an_interrupted_fire_counts_as_launched(shards_env: ShardsHarness) -> None:
    """A fire that launched its time and was cut off before it moved the schedule on (its worker
    killed, MongoDB away) is fired again later; by then its time may be past the catch-up window.
    It ran: the schedule counts it launched, and only the times nobody launched as missed (found
    by the chaos run: one launch more in the history than the schedule counted)."""
    harness = shards_env
    worker = harness.start_workers(1)[0]
    harness.define("i")
    worker.terminate()  # nothing fires but the test
    wait_until(lambda: not worker.running, what="the only worker to leave")
    store = harness.store
    created = harness.controller.schedules.create(every(1, "i", catchup_window=2))
    assert created.next is not None
    pending = created.next
    # The first fire gets as far as the launch of its pending time.
    first = firing.fire_once(store, created, pending.label, pending.nominal, utcnow())
    assert first.outcome is Outcome.LAUNCHED
    wait_until(lambda: utcnow() - pending.nominal > timedelta(seconds=5), what="the window to pass")
    fire = wait_until(lambda: store.requests.claim(RequestKind.FIRE, "test-worker"), what="the fire request")
    actions = firing.fire(store, fire)
    after = harness.controller.schedules.get("i", "s")
    launched = run_id_for("i", "s", pending.label)
    assert (actions[0].run_id, actions[0].outcome, actions[0].detail) == (
        launched, Outcome.LAUNCHED, "launched already")
    missed = [a for a in actions if a.outcome is Outcome.MISSED]
    assert after.launched == 1 and len(missed) == 1 and after.missed >= 3, after
    assert missed[0].nominal is not None and missed[0].nominal > pending.nominal
    assert missed[0].detail.startswith(f"{after.missed} nominal times from ")
