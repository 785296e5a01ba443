"""Figures 1-5 of issue 8. Each repeat of each configuration runs on a fresh cluster (a fresh
embedded server and database), so no history leaks from one measurement into the next.
Every function returns {"configs": {name: [one result per repeat]}, "notes": [...]}."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import baselines
import clientside
import isolation
import live_page
import pickup
import startup
import throughput
from cluster import SCOPE, Cluster, flag_default, supports
from shards.states import State
from stats import has_metric, total
from tooling.harness import wait_until


@dataclass
class Plan:
    """Counts for a full run; `smoke()` shrinks them so the harness itself is checked quickly."""

    repeats: int = 3
    f1_launches: int = 1000
    f1_workers: tuple[int, ...] = (1, 4)
    f1_poll_launches: int = 100
    f1_poll_repeats: int = 3
    f2_runs: int = 1000
    f2_workers: tuple[int, ...] = (1, 2, 4)
    f2_concurrency: int = 4
    f2_clients: int = 8
    f3_workers: tuple[int, ...] = (1, 10, 30)
    f3_launches: int = 200
    f3_idle_window: float = 30.0
    f3_idle_repeats: int = 1
    f4_history: int = 100_000
    f4_launches: int = 100
    f5_calls: int = 100_000
    f5_spread_s: float = 3.0
    f7_runs: int = 200
    f7_throughput_runs: int = 400
    f7_modes: tuple[str, ...] = ("thread", "process")
    f8_runs: int = 20
    f9_markers: int = 200
    f9_pages: int = 10
    f9_window: float = 20.0
    f11_launches: int = 300
    notes: list[str] = field(default_factory=list)

    @classmethod
    def smoke(cls) -> Plan:
        return cls(repeats=1, f1_launches=20, f1_poll_launches=3, f1_poll_repeats=1, f2_runs=40,
                   f3_workers=(1, 2, 3), f3_launches=10, f3_idle_window=3.0, f4_history=200,
                   f4_launches=10, f5_calls=1000, f5_spread_s=1.2, f7_runs=10, f7_throughput_runs=20,
                   f8_runs=3, f9_markers=10, f9_pages=2, f9_window=2.0, f11_launches=10)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _repeat(count: int, configs: Mapping[str, Callable[[int], dict[str, Any] | None]]) -> dict[str, Any]:
    """Run each configuration `count` times, interleaved (config A, B, ... then again), so a
    slow spell of the machine does not land on one configuration only."""
    results: dict[str, list[Any]] = {name: [] for name in configs}
    for rep in range(count):
        for name, measure in configs.items():
            started = time.monotonic()
            result = measure(rep)
            if result is None:
                continue
            result["wall_s"] = round(time.monotonic() - started, 1)
            results[name].append(result)
            print(f"    {name} #{rep + 1}: {_brief(result)}", flush=True)
    return {name: runs for name, runs in results.items() if runs}


def _brief(result: dict[str, Any]) -> str:
    pick = result.get("insert_to_running_ms") or result.get("launch_to_seen_running_ms")
    if pick:
        return f"p50 {pick['p50']} ms, p99 {pick['p99']} ms ({result['wall_s']} s)"
    if "runs_per_s" in result:
        return f"{result['runs_per_s']:.1f} runs/s ({result['wall_s']} s)"
    if "per_call_us" in result:
        return f"{result['per_call_us']:.2f} us/call, {result['writes']} writes ({result['wall_s']} s)"
    return f"({result['wall_s']} s)"


def wait_bounds() -> tuple[float, float]:
    """The workers' adaptive wait bounds (their --help defaults), else 0.002 / 0.1 s."""
    return flag_default("--stream-poll-min", 0.002), flag_default("--stream-poll-max", 0.1)


def _shards_pickup(workers: int, launches: int, extra: tuple[str, ...] = (), warmup: int = 5) -> Callable[
        [int], dict[str, Any]]:
    def measure(rep: int) -> dict[str, Any]:
        with Cluster(f"pickup-{workers}w") as cluster:
            cluster.start_workers(workers, extra=extra)
            cluster.ready()
            return {"workers": workers, **pickup.sequential(cluster, launches, warmup=warmup)}
    return measure


# -- 1 ------------------------------------------------------------------------------------------
def figure1(plan: Plan) -> dict[str, Any]:
    low, high = wait_bounds()
    configs: dict[str, Callable[[int], dict[str, Any] | None]] = {
        f"shards_{w}w": _shards_pickup(w, plan.f1_launches) for w in plan.f1_workers
    }
    # The worker's share with threads too (the claim -> Running path is the same; what follows differs).
    configs["shards_1w_thread"] = _shards_pickup(1, plan.f1_launches, ("--isolation", "thread"))

    def raw(mode: str) -> Callable[[int], dict[str, Any]]:
        def measure(rep: int) -> dict[str, Any]:
            with Cluster(f"raw-{mode}") as cluster:
                return baselines.raw_pickup(cluster, mode, plan.f1_launches, low, high)
        return measure

    configs["raw_tight"] = raw("tight")
    configs["raw_adaptive"] = raw("adaptive")
    notes = [f"insert -> Running over {plan.f1_launches} sequential launches per repeat",
             f"raw_adaptive pauses {low:g} s after an event, doubling to {high:g} s when idle"]
    polling = supports("--poll-only") and supports("--poll-interval")
    if polling:
        poll = _shards_pickup(1, plan.f1_poll_launches, ("--poll-only", "--poll-interval", "1"), warmup=2)
        configs["shards_polling_1s"] = lambda rep: poll(rep) if rep < plan.f1_poll_repeats else None
        notes.append(f"polling at 1 s: {plan.f1_poll_launches} launches (slow), "
                     f"{min(plan.f1_poll_repeats, plan.repeats)} repeat(s)")
    else:
        notes.append("polling at 1 s: n/a (this worker has no --poll-only/--poll-interval)")
    return {"configs": _repeat(plan.repeats, configs), "notes": notes, "wait_bounds_s": [low, high]}


# -- 2 ------------------------------------------------------------------------------------------
def figure2(plan: Plan) -> dict[str, Any]:
    low, high = wait_bounds()
    configs: dict[str, Callable[[int], dict[str, Any] | None]] = {}
    for w in plan.f2_workers:
        def shards(rep: int, w: int = w) -> dict[str, Any]:
            with Cluster(f"throughput-{w}w") as cluster:
                cluster.start_workers(w, concurrency=plan.f2_concurrency)
                cluster.ready()
                return {"workers": w, **throughput.shards(cluster, plan.f2_runs, plan.f2_clients)}

        def floor(rep: int, w: int = w) -> dict[str, Any]:
            with Cluster(f"floor-{w}w") as cluster:
                return {"workers": w, **baselines.floor(cluster, w, plan.f2_concurrency, plan.f2_runs,
                                                          plan.f2_clients, low, high)}

        configs[f"shards_{w}w"] = shards
        configs[f"floor_{w}w"] = floor
    notes = [f"{plan.f2_runs} no-op runs per repeat, {plan.f2_clients} launching threads, workers "
             f"--concurrency {plan.f2_concurrency}; runs/s from the first launch to the last endedAt",
             "floor: 8 writes per run, raw workers woken by a change stream filtered to their slot "
             "(round-robin), the same adaptive wait",
             "ids are reused (200 no-ops), so launchers wait on active ids and launches_per_s follows "
             "runs_per_s; launcher_capacity_per_s (clients / mean successful launch time) shows whether "
             "the launchers could have gone faster"]
    return {"configs": _repeat(plan.repeats, configs), "notes": notes}


# -- 3 ------------------------------------------------------------------------------------------
def figure3(plan: Plan) -> dict[str, Any]:
    def fan_out(workers: int) -> Callable[[int], dict[str, Any]]:
        def measure(rep: int) -> dict[str, Any]:
            with Cluster(f"fanout-{workers}w") as cluster:
                cluster.start_workers(workers)
                cluster.ready()
                result: dict[str, Any] = {"workers": workers,
                                          **pickup.sequential(cluster, plan.f3_launches)}
                if rep < plan.f3_idle_repeats:
                    result.update(idle(cluster, plan.f3_idle_window))
                return result
        return measure

    configs = {f"shards_{w}w": fan_out(w) for w in plan.f3_workers}
    notes = [f"{plan.f3_launches} sequential launches per repeat, concurrency 1 per worker",
             f"idle CPU over {plan.f3_idle_window:g} s in the first {plan.f3_idle_repeats} repeat(s), "
             "utime+stime from /proc, % of one core"]
    return {"configs": _repeat(plan.repeats, configs), "notes": notes}


def idle(cluster: Cluster, window: float) -> dict[str, Any]:
    time.sleep(2.0)  # the last run's writes and the workers' catch-up are over
    before = cluster.cpu()
    time.sleep(window)
    after = cluster.cpu()
    cluster.check_workers()
    return {
        "idle_window_s": window,
        "idle_server_pct": (after["server"] - before["server"]) / window * 100,
        "idle_workers_pct": (after["workers"] - before["workers"]) / window * 100,
    }


# -- 4 ------------------------------------------------------------------------------------------
def figure4(plan: Plan) -> dict[str, Any]:
    def history(size: int) -> Callable[[int], dict[str, Any]]:
        def measure(rep: int) -> dict[str, Any]:
            with Cluster(f"history-{size}") as cluster:
                cluster.start_workers(1)
                cluster.ready()
                seeded = seed_history(cluster, size)
                return {"history": size, **seeded, **pickup.sequential(cluster, plan.f4_launches)}
        return measure

    configs = {"empty": history(0), f"history_{plan.f4_history}": history(plan.f4_history)}
    notes = [f"{plan.f4_launches} sequential launches per repeat on 1 worker",
             "history: copies of a run document the store itself wrote (one real run), new run ids"]
    return {"configs": _repeat(plan.repeats, configs), "notes": notes}


def seed_history(cluster: Cluster, size: int, batch: int = 10_000) -> dict[str, Any]:
    """Run one no-op for real, then insert `size` copies of the run document it left in the
    history, each with a run id of its own (as `_id` if the store keys runs so, and/or `runId`)."""
    record = pickup.launch_retrying(cluster.ctl, f"noop-{pickup.JOBS - 1}")
    runs = cluster.ctl.store.database["runs"]
    def done() -> bool:
        current = cluster.ctl.store.processes.get(SCOPE, record.process_id)
        return current is not None and current.state is State.DONE

    wait_until(done, 60, "the template run Done")
    # (two lookups: NX-27017 mishandles some top-level $or filters)
    template = runs.find_one({"_id": record.run_id}) or runs.find_one({"runId": record.run_id}) or {}
    if not size:
        return {"seed_s": 0.0, "run_keyed_by_id": template.get("_id") == record.run_id}
    keyed = template.get("_id") == record.run_id
    started = time.monotonic()
    base = int(time.time() * 1000) - 86_400_000 - size
    for first in range(0, size, batch):
        docs = []
        for n in range(first, min(size, first + batch)):
            doc = {k: v for k, v in template.items() if k != "_id"}
            run_id = uuid.uuid4().hex
            if keyed:
                doc["_id"] = run_id
            if "runId" in doc:
                doc["runId"] = run_id
            doc["processId"] = f"noop-{n % pickup.JOBS}"
            for stamp in ("requestedAt", "startedAt", "endedAt"):
                if isinstance(doc.get(stamp), int):
                    doc[stamp] = base + n
            docs.append(doc)
        runs.insert_many(docs, ordered=False)
    return {"seed_s": round(time.monotonic() - started, 1), "run_keyed_by_id": keyed,
            "history_docs": runs.count_documents({})}


# -- 5 ------------------------------------------------------------------------------------------
def figure5(plan: Plan) -> dict[str, Any]:
    interval = flag_default("--progress-interval", 0.5)

    def measure(rep: int) -> dict[str, Any]:
        with Cluster("progress") as cluster:
            cluster.start_workers(1)
            cluster.ready()
            out = cluster.workdir / "progress.json"
            before = cluster.metrics()
            controller = cluster.ctl
            controller.launch(SCOPE, "progress", args={"n": plan.f5_calls, "out": str(out),
                                                            "spread_s": plan.f5_spread_s})
            record = controller.wait(SCOPE, "progress", lambda r: r.state in (
                State.DONE, State.FAILED, State.STOPPED), 300)
            if record.state is not State.DONE:
                raise RuntimeError(f"the progress run ended {record.state.value}: {record.status.error}")
            time.sleep(interval * 2 + 0.2)  # a flush still due is counted
            after = cluster.metrics()
            timings = json.loads(out.read_text())
            duration = float(record.status.duration or 0.0)
            name = "shards_progress_writes_total"
            writes = total(after, name) - total(before, name) if has_metric(after, "shards_progress_writes") \
                else None
            intervals = max(1, math.ceil(duration / interval))  # flush ticks the run can span
            return {
                "calls": timings["n"],
                "spread_calls": timings.get("spread_calls"),
                "plain_loop_s": timings["plain_s"],
                "with_calls_s": timings["with_calls_s"],
                "per_call_us": (timings["with_calls_s"] - timings["plain_s"]) / timings["n"] * 1e6,
                "plain_per_iteration_us": timings["plain_s"] / timings["n"] * 1e6,
                "log_calls": timings.get("log_n"),
                "log_per_call_us": timings["with_log_s"] / max(1, timings.get("log_n") or 0) * 1e6,
                "run_duration_s": duration,
                "progress_interval_s": interval,
                "writes": writes,
                "intervals": intervals,
                "writes_per_interval": None if writes is None else writes / intervals,
            }

    notes = [f"{plan.f5_calls} report_progress calls in one run (bench/app.py 'progress'), beside the "
             f"same loop without the call, then calls without pause for {plan.f5_spread_s:g} s so the run "
             "spans several intervals; writes from shards_progress_writes_total (heartbeat flushes; "
             "the final progress written with the run's end is not counted); per interval = writes / "
             "ceil(run duration / --progress-interval)",
             "log_per_call_us: one ctx.log.info call (kept in the run's log, written in batches, and a "
             "line in the worker's own log), 20,000 calls after the report_progress loop"]
    return {"configs": _repeat(plan.repeats, {"progress": measure}), "notes": notes}


# -- 11 -----------------------------------------------------------------------------------------
def figure11(plan: Plan) -> dict[str, Any]:
    low, high = wait_bounds()

    def shards(isolation: str) -> Callable[[int], dict[str, Any]]:
        def measure(rep: int) -> dict[str, Any]:
            with Cluster(f"client-{isolation}") as cluster:
                cluster.start_workers(1, extra=("--isolation", isolation))
                cluster.ready()
                return clientside.shards(cluster, plan.f11_launches, low, high)
        return measure

    def floor(rep: int) -> dict[str, Any]:
        with Cluster("client-floor") as cluster:
            return clientside.floor(cluster, plan.f11_launches, low, high)

    configs = {"shards_process": shards("process"), "shards_thread": shards("thread"), "floor": floor}
    notes = [f"{plan.f11_launches} sequential launches per repeat, 1 worker (--concurrency 1); launch call "
             "-> the client sees the run Running on a change stream of the process records (updateLookup), "
             f"read with the workers' adaptive pause ({low:g} s after an event or a launch, doubling to "
             f"{high:g} s); floor: the same two launch writes and a bare-pymongo worker's six "
             "(bench/rawclient.py floor), the same reader"]
    return {"configs": _repeat(plan.repeats, configs), "notes": notes, "wait_bounds_s": [low, high]}


FIGURES: dict[int, tuple[str, Callable[[Plan], dict[str, Any]]]] = {
    1: ("pickup: insert -> Running", figure1),
    2: ("throughput of no-op runs", figure2),
    3: ("fan-out: idle workers", figure3),
    4: ("history: 100k finished runs", figure4),
    5: ("progress: report_progress cost", figure5),
    7: ("isolation: no-op run cost, process vs thread", lambda plan: isolation.figure7(plan, _repeat)),
    8: ("CLI start-up: a command's time to exit", lambda plan: startup.figure8(plan, _repeat)),
    9: ("dashboard: change -> page, CPU with 10 pages", lambda plan: live_page.figure9(plan, _repeat)),
    11: ("client: launch -> Running seen on a change stream", figure11),
}
