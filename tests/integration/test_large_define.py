"""A large define: bulk writes on a thread of their own, so launches are claimed meanwhile; a
SIGTERM stops it between batches and hands it on; a define cut by SIGKILL resumes where it was."""

from __future__ import annotations

import signal
from pathlib import Path

from shards.requests import RequestKind
from shards.states import State

from integration.harness import ShardsHarness, WorkerProcess, wait_until

LARGE_APP = "tests/integration/apps/large.py:app"
SCOPE = "big-3000"
SIZE = 3001  # the catalog of big-3000: 3,000 processes and quick


def _gate(tmp_path: Path) -> Path:
    gate = tmp_path / "gate"
    gate.mkdir()
    return gate


def _hold_define(shards_env: ShardsHarness, gate: Path, where: str) -> None:
    """Request a define of SCOPE and return once it holds at `where` (see apps/large.py)."""
    (gate / "hold").write_text(where)
    shards_env.ok("define", "--scope", SCOPE, "--no-wait")
    wait_until(lambda: (gate / "holding").exists(), what=f"the define to hold at {where}")


def _define_request(shards_env: ShardsHarness) -> dict:
    [doc] = shards_env.store.requests.collection.find({"kind": RequestKind.DEFINE, "scopeId": SCOPE})
    return doc


def _wait_defined(shards_env: ShardsHarness) -> None:
    wait_until(lambda: not list(shards_env.store.requests.collection.find({"kind": RequestKind.DEFINE})),
               what="the define to finish")


def _assert_every_process_defined_once(shards_env: ShardsHarness) -> None:
    ids = [doc["processId"] for doc in shards_env.store.processes.collection.find({"scopeId": SCOPE})]
    assert len(ids) == len(set(ids)) == SIZE
    scope = shards_env.store.scopes.get(SCOPE)
    assert scope is not None and scope.state == "Defined" and sorted(scope.process_ids) == sorted(ids)


def _start(shards_env: ShardsHarness, gate: Path, *extra: str) -> WorkerProcess:
    worker = shards_env.start_worker(LARGE_APP, *extra, env={"SHARDS_TEST_GATE": str(gate)})
    wait_until(lambda: worker.running and shards_env.store.workers.alive(), what="the worker")
    return worker


def test_a_launch_is_claimed_while_a_large_define_is_under_way(
    shards_env: ShardsHarness, tmp_path: Path
) -> None:
    gate = _gate(tmp_path)
    _start(shards_env, gate)
    shards_env.define(SCOPE)  # quick exists: it can be launched during the redefine
    _hold_define(shards_env, gate, "writes")

    shards_env.ok("launch", "quick", "--scope", SCOPE, "--wait", "--wait-timeout", "20")
    assert _define_request(shards_env)["state"] == "Taken"  # the define is still under way
    (gate / "hold").unlink()
    _wait_defined(shards_env)
    [run] = shards_env.controller.history(SCOPE, "quick")
    scope = shards_env.store.scopes.get(SCOPE)
    assert run.state is State.DONE and scope is not None
    assert run.ended_at is not None and scope.defined_at is not None and run.ended_at < scope.defined_at
    _assert_every_process_defined_once(shards_env)


def test_sigterm_stops_a_define_between_batches_and_another_worker_resumes_it(
    shards_env: ShardsHarness, tmp_path: Path
) -> None:
    gate = _gate(tmp_path)
    first = _start(shards_env, gate)
    _hold_define(shards_env, gate, "writes")
    first.send_signal(signal.SIGTERM)
    wait_until(lambda: "stopping" in first.output(), what="the worker to begin its shutdown")
    (gate / "hold").unlink()
    assert first.terminate(timeout=20) == 0
    assert "interrupted" in first.output()
    left = _define_request(shards_env)
    assert left["state"] == "Pending" and 0 < left["progress"]["done"] < SIZE

    second = _start(shards_env, gate)
    _wait_defined(shards_env)
    assert f"resuming the define of scope {SCOPE} at {left['progress']['done']}/{SIZE}" in second.output()
    _assert_every_process_defined_once(shards_env)


def test_a_define_cut_by_sigkill_resumes_after_a_restart(shards_env: ShardsHarness, tmp_path: Path) -> None:
    gate = _gate(tmp_path)
    first = _start(shards_env, gate, "--worker-id", "definer")
    _hold_define(shards_env, gate, "writes")
    done = _define_request(shards_env)["progress"]["done"]
    assert 0 < done < SIZE
    first.kill()
    (gate / "hold").unlink()

    again = _start(shards_env, gate, "--worker-id", "definer")  # a restart: the define is released at once
    _wait_defined(shards_env)
    assert f"resuming the define of scope {SCOPE} at {done}/{SIZE}" in again.output()
    _assert_every_process_defined_once(shards_env)


def test_the_cli_says_a_worker_is_on_a_define_that_outlasts_its_wait(
    shards_env: ShardsHarness, tmp_path: Path
) -> None:
    gate = _gate(tmp_path)
    _start(shards_env, gate)
    (gate / "hold").write_text("writes")
    slow = shards_env.cli("define", "--scope", SCOPE, "--timeout", "2")
    assert slow.returncode == 5, slow.stderr
    assert "is a worker running" not in slow.stderr
    assert f"is defining scope '{SCOPE}'" in slow.stderr and f"of {SIZE:,} processes" in slow.stderr
    (gate / "hold").unlink()
    _wait_defined(shards_env)
