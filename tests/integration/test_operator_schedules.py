"""The operator's ShardSchedule decisions on a real wire server with real workers, no cluster:
a resource's spec becomes the schedule record (created paused when asked), the mirror turns the
record into status and Events, a refused spec says why, a delete ends the fires."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shards.schedules import Outcome
from shards_operator.resource import Resource
from shards_operator.schedules import apply_schedule, forget_schedule, mirror_schedule

from integration.harness import ShardsHarness, wait_until


def resource(namespace: str, name: str = "tick", generation: int = 1,
             status: dict[str, Any] | None = None, **spec: Any) -> Resource:
    return Resource(namespace, name, f"uid-{name}", generation, {"process": "quick", **spec}, status or {})


def test_a_resource_becomes_a_schedule_that_fires_and_its_status_follows(shards_env: ShardsHarness,
                                                                        tmp_path: Path) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("ops")
    log = tmp_path / "runs.log"
    tick = resource("ops", every="1s", args={"log": str(log), "pause": 0.01})
    outcome = apply_schedule(harness.controller, tick, {}, sync_pause=True)
    assert outcome.retry_after is None and outcome.events == []
    ready = outcome.status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Applied")
    assert (outcome.status["scheduleName"], outcome.status["phase"]) == ("tick", "Active")
    # Applied again (a resume, a replayed event): the same record, no new generation.
    generation = harness.controller.schedules.get("ops", "tick").generation
    apply_schedule(harness.controller, tick, {}, sync_pause=False)
    assert harness.controller.schedules.get("ops", "tick").generation == generation

    wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 2, what="two fires", timeout=30)
    mirrored = mirror_schedule(harness.controller, tick)
    assert mirrored.status["launched"] >= 2 and mirrored.status["lastFireTime"]
    assert {a["outcome"] for a in mirrored.status["lastActions"]} <= {Outcome.LAUNCHED.value,
                                                                     Outcome.SKIPPED.value}
    # Once the resource shows it, only what moves since is patched.
    shown = resource("ops", status={**tick.status, **mirrored.status}, every="1s",
                     args={"log": str(log), "pause": 0.01})
    assert set(mirror_schedule(harness.controller, shown).status) <= {"launched", "fired", "skipped",
                                                                      "lastActions", "lastFireTime",
                                                                      "nextFireTime", "active"}

    removed, message = forget_schedule(harness.controller, tick, {}, timeout=5)
    assert removed and "removed" in message
    assert harness.controller.schedules.list("ops") == []
    assert mirror_schedule(harness.controller, tick).status == {}


def test_paused_from_the_start_and_a_pause_made_elsewhere_holds_on_resume(
        shards_env: ShardsHarness) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("ops")
    paused = resource("ops", every="1s", paused=True, note="not yet")
    status = apply_schedule(harness.controller, paused, {}, sync_pause=True).status
    assert (status["phase"], status["note"]) == ("Paused", "not yet")
    record = harness.controller.schedules.get("ops", "tick")
    assert record.paused and record.generation == 1  # created paused: never armed unpaused

    running = resource("ops", every="1s")
    apply_schedule(harness.controller, running, {}, sync_pause=True)  # spec.paused edited to false
    assert not harness.controller.schedules.get("ops", "tick").paused
    harness.controller.schedules.pause("ops", "tick", note="by the CLI")
    apply_schedule(harness.controller, running, {}, sync_pause=False)  # an operator restart
    assert harness.controller.schedules.get("ops", "tick").note == "by the CLI"


def test_a_spec_the_api_server_could_not_check_is_refused_with_a_warning(
        shards_env: ShardsHarness) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("ops")
    bad = resource("ops", schedule="0 3 * * *", timeZone="Mars/Olympus_Mons", generation=2)
    outcome = apply_schedule(harness.controller, bad, {}, sync_pause=True)
    ready = outcome.status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "Mars/Olympus_Mons" in ready["message"] and outcome.retry_after is None
    assert [(kind, reason) for kind, reason, _, _ in outcome.events] == [("Warning", "InvalidSpec")]
    assert harness.controller.schedules.list("ops") == []

    unknown = apply_schedule(harness.controller, resource("ops", process="no-such", every="1m"), {},
                             sync_pause=True)
    assert unknown.status["conditions"][0]["reason"] == "UnknownProcess" and unknown.retry_after

    other = apply_schedule(harness.controller, resource("team-a", scope="ops", every="1m"), {},
                           sync_pause=True)
    assert other.status["conditions"][0]["reason"] == "ScopeNotAllowed"
    granted = apply_schedule(harness.controller, resource("team-a", scope="ops", every="1m"),
                             {"team-a": {"ops"}}, sync_pause=True)
    assert granted.status["scheduleName"] == "team-a_tick"
    assert [r.spec.name for r in harness.controller.schedules.list("ops")] == ["team-a_tick"]
