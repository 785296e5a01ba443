"""The CLI's own commands: the embedded server and live status."""

from __future__ import annotations

import json
from pathlib import Path

from pymongo import MongoClient
from shards.states import State
from shards_store.embedded import free_port
from tooling.harness import Child, shards_command, spawn

from integration.harness import ShardsHarness, wait_until


def _start_mongo(port: int, data: Path) -> Child:
    """`shards mongo` itself (the command under test), its output beside its data directory."""
    return spawn(shards_command("mongo", "--port", str(port), "--data", str(data)),
                 data.parent / f"shards-mongo-{port}.log", append=True, grace=30)


def _ping(port: int) -> bool:
    with MongoClient(f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=300) as client:
        try:
            return bool(client.admin.command("ping")["ok"])
        except Exception:
            return False


def test_shards_mongo_keeps_data_across_a_crash(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "mongo"
    server = _start_mongo(port, data)
    try:
        wait_until(lambda: _ping(port), what="the embedded server")
        with MongoClient(f"mongodb://127.0.0.1:{port}") as client:
            client["keep"]["things"].insert_one({"_id": "sheep", "n": 3})
    finally:
        server.kill()  # a crash: the pid file stays behind
    assert (data / "nx-27017.pid").exists()
    server = _start_mongo(port, data)
    try:
        wait_until(lambda: _ping(port), what="the restarted embedded server")
        with MongoClient(f"mongodb://127.0.0.1:{port}") as client:
            assert client["keep"]["things"].find_one({"_id": "sheep"}) == {"_id": "sheep", "n": 3}
    finally:
        server.terminate()


def test_status_watch_follows_a_run_to_its_end(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm")
    shards_env.ok("launch", "quick", "--scope", "farm", "--args", '{"pause": 1.0}')
    watched = shards_env.ok("status", "quick", "--scope", "farm", "--watch", "--timeout", "60")
    assert "Done" in watched.stdout
    assert shards_env.record("farm", "quick").state is State.DONE


def test_launch_wait_exits_non_zero_when_the_run_fails(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm")
    failed = shards_env.cli("launch", "fail", "--scope", "farm", "--wait")
    assert failed.returncode == 3  # Failed
    assert "farm/fail: ended Failed: boom: no reason" in failed.stdout


def test_a_worker_survives_a_mongo_restart(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "mongo"
    server = _start_mongo(port, data)
    harness: ShardsHarness | None = None
    try:
        # Connecting needs the server listening (a refused loopback URI fails within a second).
        wait_until(lambda: _ping(port), what="the embedded server")
        harness = ShardsHarness(f"mongodb://127.0.0.1:{port}/outage", tmp_path)
        [worker] = harness.start_workers(1)
        harness.define("farm")
        harness.ok("launch", "quick", "--scope", "farm", "--wait", "--wait-timeout", "60")
        server.terminate()
        wait_until(lambda: "MongoDB unreachable" in worker.output(), what="the worker to notice the outage")
        server = _start_mongo(port, data)
        wait_until(lambda: _ping(port), what="the restarted server")
        harness.ok("launch", "quick", "--scope", "farm", "--wait", "--wait-timeout", "60")
        assert worker.popen.poll() is None
        assert len(harness.controller.history("farm", "quick")) == 2
    finally:
        if harness is not None:
            harness.close()
        server.terminate()


def _column(table: str, index: int) -> str:
    """One column of a printed table, top to bottom, without spaces: folded cells break words."""
    rows = [line.split("│") for line in table.splitlines() if line.count("│") > 2]
    return "".join("".join(row[index].split()) for row in rows)


def test_a_failed_runs_error_shows_as_written_in_every_output(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm")
    why = "bad row [red]42[/red] in table [orders]"
    failed = shards_env.cli("launch", "fail", "--scope", "farm", "--args", json.dumps({"why": why}), "--wait")
    assert failed.returncode == 3  # Failed
    assert f"farm/fail: ended Failed: boom: {why}" in failed.stdout
    error = "".join(f"boom: {why}".split())
    for columns in ("80", "200"):
        for command, error_column in (("status", 4), ("history", 7)):  # PROGRESS, ERROR
            result = shards_env.cli(command, "fail", "--scope", "farm", env={"COLUMNS": columns})
            assert result.returncode == 0, result.stderr
            shown = result.stdout
            assert max(map(len, shown.splitlines())) <= int(columns), shown
            assert error in _column(shown, error_column), shown
