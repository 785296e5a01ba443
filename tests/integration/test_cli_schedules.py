"""The `shards schedule` commands and `launch --at/--in/--queue`, driven through the real CLI with
real workers on a real wire server: what they print, what they change, and one line with exit 1
for each bad input (nothing changed)."""

from __future__ import annotations

import itertools
import json
import re
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from shards.records import iso, utcnow
from shards.states import State

from integration.harness import ShardsHarness, wait_until

ERROR = 1  # docs/cli.md: bad input, a refused action


def executions(log: Path) -> list[str]:
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def listed(harness: ShardsHarness, scope: str) -> dict[str, dict[str, object]]:
    """`schedule list -o json`, by name."""
    return {s["name"]: s for s in harness.ok("schedule", "list", "--scope", scope, "-o", "json").json()}


def refused(harness: ShardsHarness, *args: str) -> str:
    """The one line a refused command prints (exit 1, nothing on stdout)."""
    result = harness.cli(*args)
    assert result.returncode == ERROR, (args, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shards: error: "), result.stderr
    return lines[0]


def test_an_every_second_schedule_fires_pauses_triggers_and_is_deleted(shards_env: ShardsHarness,
                                                                       tmp_path: Path) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("c")
    log = tmp_path / "runs.log"
    created = harness.ok("schedule", "create", "tick", "--scope", "c", "--process", "quick", "--every", "1s",
                         "--args", json.dumps({"log": str(log), "pause": 0.01}))
    assert "schedule c/tick: created (Active), launches quick; next times:" in created.stdout
    assert len([line for line in created.stdout.splitlines() if line.startswith("  20")]) == 3

    wait_until(lambda: len(executions(log)) >= 3, what="three fires", timeout=30)
    counts = listed(harness, "c")["tick"]
    assert counts["fired"] >= 3 and counts["launched"] >= 3 and counts["phase"] == "Active"
    assert counts["process"] == "quick" and counts["everySeconds"] == 1.0
    table = harness.cli("schedule", "list", env={"COLUMNS": "200"}).stdout  # every scope
    # (under load a fire may find the last run still active: skipped, or late: missed)
    row = r"^c +tick +quick +every 1s +- +no +\d+s ago +(in \ds|now|\ds ago) .* \d+ +\d+ +\d+ *$"
    assert re.search(row, table, re.M), table

    paused = harness.ok("schedule", "pause", "tick", "--scope", "c", "--note", "maintenance")
    assert "schedule c/tick: paused (maintenance)" in paused.stdout
    time.sleep(1.5)  # a fire already claimed may still land
    fired = listed(harness, "c")["tick"]["fired"]
    time.sleep(2.5)
    assert listed(harness, "c")["tick"]["fired"] == fired  # paused: nothing fires
    shown = harness.cli("schedule", "get", "tick", "--scope", "c", env={"COLUMNS": "200"}).stdout
    assert "Paused: maintenance" in shown and "Launched" in shown

    triggered = harness.ok("schedule", "trigger", "tick", "--scope", "c", "-o", "json").json()
    assert triggered["outcome"] == "Launched" and triggered["runId"]
    wait_until(lambda: triggered["runId"] in executions(log), what="the triggered run")

    unpaused = harness.ok("schedule", "unpause", "tick", "--scope", "c")
    assert "schedule c/tick: unpaused (Active), next in" in unpaused.stdout
    before = len(executions(log))
    wait_until(lambda: len(executions(log)) >= before + 2, what="fires after unpause", timeout=30)

    deleted = harness.ok("schedule", "delete", "tick", "--scope", "c", "-o", "json").json()
    assert deleted["name"] == "tick"
    assert listed(harness, "c") == {}
    gone = refused(harness, "schedule", "get", "tick", "--scope", "c")
    assert "unknown schedule 'tick' in scope 'c'" in gone
    time.sleep(1.5)
    after = len(executions(log))
    time.sleep(2.0)
    assert len(executions(log)) == after  # deleted: nothing fires
    ran = executions(log)
    assert len(ran) == len(set(ran))  # no time twice


def test_backfill_fires_each_past_time_once(shards_env: ShardsHarness, tmp_path: Path) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("b")
    log = tmp_path / "runs.log"
    harness.ok("schedule", "create", "nightly", "--scope", "b", "--process", "quick", "--every", "1h",
               "--overlap", "BufferAll", "--paused", "--note", "backfill only",
               "--args", json.dumps({"log": str(log), "pause": 0.01}))
    refused(harness, "schedule", "create", "nightly", "--scope", "b", "--process", "quick", "--every", "1m")
    assert listed(harness, "b")["nightly"]["everySeconds"] == 3600  # the name taken: nothing changed
    end = utcnow().replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=3)
    span = ("--from", iso(start) or "", "--to", iso(end) or "")
    backfilled = harness.ok("schedule", "backfill", "nightly", "--scope", "b", *span)
    assert "schedule b/nightly: backfilled 3 times:" in backfilled.stdout
    wait_until(lambda: len(executions(log)) == 3, what="three backfilled runs", timeout=30)
    again = harness.ok("schedule", "backfill", "nightly", "--scope", "b", *span, "-o", "json").json()
    assert len(again) == 3
    time.sleep(1.0)
    assert len(executions(log)) == 3  # a time fired before launches nothing again
    assert "covers more than 1000" in refused(
        harness, "schedule", "backfill", "nightly", "--scope", "b", "--from", "2016-01-01T00:00:00Z",
        "--to", "2026-01-01T00:00:00Z")
    assert "no time zone" in refused(harness, "schedule", "backfill", "nightly", "--scope", "b",
                                     "--from", "2026-01-01T00:00:00", "--to", "2026-01-02T00:00:00Z")
    assert len(executions(log)) == 3


def test_preview_prints_times_and_creates_nothing(shards_env: ShardsHarness) -> None:
    harness = shards_env
    shown = harness.ok("schedule", "preview", "--every", "15m", "--count", "4").stdout.splitlines()
    assert len(shown) == 4
    times = [datetime.fromisoformat(line.split()[0]) for line in shown]
    assert all(t.minute % 15 == 0 and t.second == 0 for t in times)
    assert all(later - earlier == timedelta(minutes=15) for earlier, later in itertools.pairwise(times))
    fires = harness.ok("schedule", "preview", "--every", "1h", "--offset", "5m", "-o", "json").json()
    assert len(fires) == 5 and all(f["fireAt"].endswith(":05:00Z") for f in fires)
    assert harness.store.schedules.all() == []


def test_preview_of_a_cron_schedule_in_a_time_zone(shards_env: ShardsHarness) -> None:
    fires = shards_env.ok("schedule", "preview", "--cron", "30 9 * * *", "--tz", "Asia/Kolkata",
                          "--count", "2", "-o", "json").json()
    assert [f["nominal"][11:] for f in fires] == ["04:00:00Z", "04:00:00Z"]  # 09:30 at +05:30


@pytest.mark.parametrize(("args", "says"), [
    (("--cron", "0 99 * * *"), "invalid cron expression"),
    (("--cron", "@daily", "--tz", "Mars/Base"), "unknown time zone"),
    (("--every", "0"), "interval must be at least 1s"),
    (("--every", "soon"), "invalid duration"),
    (("--every", "1m", "--cron", "@daily"), "either --cron EXPR or --every"),
    ((), "either --cron EXPR or --every"),
    (("--every", "1m", "--overlap", "Sometimes"), "--overlap must be one of"),
    (("--every", "1m", "--process", "nosuch"), "unknown process 'nosuch'"),
    (("--every", "1m", "--note", "why"), "--note goes with --paused"),
])
def test_a_bad_schedule_is_one_line_and_creates_nothing(shards_env: ShardsHarness, args: tuple[str, ...],
                                                        says: str) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("x")
    process = () if "--process" in args else ("--process", "quick")
    assert says in refused(harness, "schedule", "create", "bad", "--scope", "x", *process, *args)
    assert harness.store.schedules.all() == []


def test_launch_in_shows_when_it_starts_then_runs(shards_env: ShardsHarness) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("d")
    launched = harness.ok("launch", "quick", "--scope", "d", "--in", "3s")
    said = r"d/quick: launched \(Scheduled\), starts at \S+Z \(in [23]s\), run \w+"
    assert re.search(said, launched.stdout), launched.stdout
    shown = harness.cli("status", "quick", "--scope", "d", env={"COLUMNS": "200"}).stdout
    assert re.search(r"Scheduled .* starts in [123]s", shown), shown
    start_at = harness.ok("status", "quick", "--scope", "d", "-o", "json").json()["startAt"]
    harness.wait_state("d", "quick", State.DONE, timeout=20)
    [run] = harness.ok("history", "quick", "--scope", "d", "-o", "json").json()
    assert datetime.fromisoformat(run["startedAt"]) >= datetime.fromisoformat(start_at)  # not before its time
    at = iso(utcnow() + timedelta(seconds=1))
    waited = harness.ok("launch", "quick", "--scope", "d", "--at", at or "", "--wait")
    assert "d/quick: ended Done" in waited.stdout


def test_launch_queue_waits_behind_the_active_run_then_both_run_in_order(shards_env: ShardsHarness) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("q")
    first = harness.ok("launch", "wait-for-stop", "--scope", "q", "--args", '{"limit": 4}',
                       "-o", "json").json()
    harness.wait_state("q", "wait-for-stop", State.RUNNING)
    assert "already active" in refused(harness, "launch", "wait-for-stop", "--scope", "q")
    queued = harness.ok("launch", "wait-for-stop", "--scope", "q", "--queue", "--args", '{"limit": 0.5}')
    assert f"q/wait-for-stop: queued behind run {first['runId']} (1 waiting), run " in queued.stdout
    second = queued.stdout.split(", run ")[-1].strip()
    shown = harness.cli("status", "wait-for-stop", "--scope", "q", env={"COLUMNS": "200"}).stdout
    assert re.search(r"Running .* 00:0\d \+1 queued", shown), shown
    ended = harness.ok("launch", "wait-for-stop", "--scope", "q", "--queue", "--args", '{"limit": 0.5}',
                       "--wait", "--wait-timeout", "60")
    assert "(2 waiting)" in ended.stdout and "q/wait-for-stop: ended Done" in ended.stdout
    runs = harness.ok("history", "wait-for-stop", "--scope", "q", "-o", "json").json()
    assert [run["runId"] for run in runs][::-1][:2] == [first["runId"], second]  # oldest first
    assert len(runs) == 3 and all(run["state"] == "Done" for run in runs)


@pytest.mark.parametrize(("args", "says"), [
    (("--at", "2026-12-05T10:00:00"), "has no time zone"),
    (("--at", "tomorrow"), "is not an ISO 8601 time"),
    (("--in", "10 parsecs"), "invalid duration"),
    (("--in", "10m", "--queue"), "--in and --queue exclude each other"),
    (("--at", "2030-01-01T00:00:00Z", "--in", "1m"), "--at and --in exclude each other"),
])
def test_a_bad_launch_time_is_one_line_and_launches_nothing(shards_env: ShardsHarness, args: tuple[str, ...],
                                                            says: str) -> None:
    harness = shards_env
    harness.start_workers(1)
    harness.define("t")
    assert says in refused(harness, "launch", "quick", "--scope", "t", *args)
    assert harness.record("t", "quick").state is State.IDLE
