"""Figure 7: what process isolation costs. One worker (concurrency 4) per configuration: runs
in threads, and in OS processes forked from the worker's fork server (the default). Two numbers
each:

- a no-op run's time from Running to its end, as its worker records them (sequential launches,
  nothing else running): the start of its OS process, the pipe, and the end's write;
- no-op throughput (runs/s), launched by 8 client threads (as figure 2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import throughput
from cluster import SCOPE, Cluster
from pickup import JOBS, launch_retrying
from shards.states import FINAL
from stats import latency

MODES = ("thread", "process")  # --isolation
WAIT = 120.0


def run_times(cluster: Cluster, runs: int) -> dict[str, Any]:
    """Sequential no-op runs; Running -> end (ms, as the run history has them)."""
    controller = cluster.ctl
    run_ids = []
    for i in range(runs):
        process_id = f"noop-{(JOBS // 2 + i) % JOBS}"
        record = launch_retrying(controller, process_id)
        controller.wait(SCOPE, process_id, lambda r, run=record.run_id: r.run_id == run and r.state in FINAL,
                        WAIT)
        run_ids.append(record.run_id)
    docs = cluster.ctl.store.database["runs"].find({"_id": {"$in": run_ids}}, {"startedAt": 1, "endedAt": 1})
    samples = [float(doc["endedAt"] - doc["startedAt"]) for doc in docs if doc.get("startedAt")]
    return latency(samples)


def measure(mode: str, runs: int, throughput_runs: int) -> Callable[[int], dict[str, Any]]:
    def one(rep: int) -> dict[str, Any]:
        with Cluster(f"isolation-{mode}") as cluster:
            cluster.start_workers(1, concurrency=4, extra=("--isolation", mode))
            cluster.ready()
            return {"mode": mode, "run_ms": run_times(cluster, runs),
                    **throughput.shards(cluster, throughput_runs, clients=8)}
    return one


def figure7(plan: Any, repeat: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    modes = [mode for mode in MODES if mode in plan.f7_modes]
    configs = {mode: measure(mode, plan.f7_runs, plan.f7_throughput_runs) for mode in modes}
    notes = [f"one worker, --concurrency 4; run time: {plan.f7_runs} sequential no-op runs, Running -> end "
             "from the run history (whole ms); throughput: "
             f"{plan.f7_throughput_runs} no-op runs from 8 client threads"]
    return {"configs": repeat(plan.repeats, configs), "notes": notes}
