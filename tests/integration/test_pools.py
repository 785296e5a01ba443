"""Worker pools: a launch is claimed only by a worker of its process's pool; a launch for a
pool with no live worker waits, says why, and runs once such a worker starts."""

from __future__ import annotations

from shards.states import State

from integration.harness import ShardsHarness, WorkerProcess, wait_until

POOLS_APP = "tests/integration/apps/pools.py:app"


def _worker_id(env: ShardsHarness, worker: WorkerProcess) -> str:
    wait_until(lambda: any(w.pid == worker.pid for w in env.store.workers.alive()),
               what=f"worker pid {worker.pid} registered")
    return next(w.worker_id for w in env.store.workers.alive() if w.pid == worker.pid)


def test_each_launch_lands_on_a_worker_of_its_pool(shards_env: ShardsHarness) -> None:
    heavy = [_worker_id(shards_env, shards_env.start_worker(POOLS_APP, "--pool", "heavy")) for _ in range(2)]
    light = _worker_id(shards_env, shards_env.start_worker(POOLS_APP))
    shards_env.define("farm")
    for _ in range(3):
        for process_id in ("heavy-job", "light-job"):
            shards_env.ok("launch", process_id, "--scope", "farm", "--wait")
    runs = {pid: shards_env.controller.history("farm", pid) for pid in ("heavy-job", "light-job")}
    assert [run.state for run in runs["heavy-job"] + runs["light-job"]] == [State.DONE] * 6
    assert {run.worker_id for run in runs["heavy-job"]} <= set(heavy)
    assert {run.worker_id for run in runs["light-job"]} == {light}
    registry = {w.worker_id: w for w in shards_env.store.workers.alive()}
    assert registry[light].catalog == ["light-job"] and registry[heavy[0]].catalog == ["heavy-job"]


def test_a_launch_for_a_pool_without_workers_waits_says_why_and_then_runs(shards_env: ShardsHarness) -> None:
    shards_env.start_worker(POOLS_APP)
    shards_env.define("farm")
    shards_env.ok("launch", "gpu-job", "--scope", "farm")
    shards_env.ok("launch", "light-job", "--scope", "farm", "--wait")  # the default pool runs on
    shown = shards_env.ok("status", "gpu-job", "--scope", "farm", "-o", "json").json()
    assert shown["state"] == "Scheduled"
    assert shown["pool"] == "gpu"
    assert "no live worker in pool 'gpu' offers process 'gpu-job'" in shown["waiting"]
    table = shards_env.cli("status", "--scope", "farm", env={"COLUMNS": "300"}).stdout
    assert "waiting: no live worker in pool 'gpu'" in table
    pools = shards_env.ok("pools", "-o", "json").json()
    assert pools["gpu"] == {"workers": 0, "freeSlots": 0, "pending": 1}
    assert pools["default"]["workers"] == 1 and pools["default"]["pending"] == 0
    assert "gpu" in shards_env.ok("workers").stdout

    gpu = _worker_id(shards_env, shards_env.start_worker(POOLS_APP, "--pool", "gpu"))
    shards_env.wait_state("farm", "gpu-job", State.DONE)
    assert [run.worker_id for run in shards_env.controller.history("farm", "gpu-job")] == [gpu]
    assert shards_env.ok("pools", "-o", "json").json()["gpu"]["pending"] == 0
    assert shards_env.ok("status", "gpu-job", "--scope", "farm", "-o", "json").json()["waiting"] == ""


def test_a_worker_for_a_pool_the_app_does_not_use_refuses_to_start(shards_env: ShardsHarness) -> None:
    result = shards_env.cli("worker", POOLS_APP, "--pool", "tpu")
    assert result.returncode == 1
    assert result.stderr.strip() == ("shards: error: the app defines no process in pool 'tpu' "
                                     "(its pools: default, heavy, gpu)")
    bad = shards_env.cli("worker", POOLS_APP, "--pool", "Not_A_Label")
    assert bad.returncode == 1
    assert "--pool: invalid pool 'Not_A_Label'" in bad.stderr and bad.stderr.count("\n") == 1


def test_the_operator_metrics_count_pending_launches_and_live_workers_per_pool(
    shards_env: ShardsHarness,
) -> None:
    from shards_operator.metrics import PoolCensus

    shards_env.start_worker(POOLS_APP)
    shards_env.define("farm")
    shards_env.ok("launch", "gpu-job", "--scope", "farm")
    shards_env.ok("launch", "heavy-job", "--scope", "farm")
    families = {family.name: family for family in PoolCensus(shards_env.store).collect()}
    pending = {s.labels["pool"]: s.value for s in families["shards_pending_launches"].samples}
    workers = {s.labels["pool"]: s.value for s in families["shards_live_workers"].samples}
    assert pending == {"default": 0, "gpu": 1, "heavy": 1}
    assert workers == {"default": 1, "gpu": 0, "heavy": 0}
    free = {s.labels["pool"]: s.value for s in families["shards_free_slots"].samples}
    assert free == {"default": 1, "gpu": 0, "heavy": 0}  # its one slot, none elsewhere
    ownerless = {s.labels["pool"]: s.value for s in families["shards_ownerless_runs"].samples}
    assert ownerless == {"default": 0, "gpu": 0, "heavy": 0}
