"""Throughput: many no-op runs launched by concurrent client threads; runs/s from the first
launch to the last run's end (its `endedAt` in the run history, written by whoever ran it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from cluster import Cluster
from pickup import JOBS, launch_retrying
from pymongo.database import Database
from tooling.harness import wait_until

DONE_TIMEOUT = 300.0


def fan_launch(launch: Callable[[int, str], float], runs: int, clients: int) -> dict[str, float]:
    """Launch run i as process noop-(i % JOBS) from `clients` threads (thread k takes i = k mod
    clients). `launch` retries while the id's previous run is active and returns the seconds its
    successful attempt took. Returns the wall times of the first launch call and of the last
    launch's return, and the launchers' capacity: clients / mean successful launch time (the
    rate they could sustain if no id were still active; above runs/s, they were not the limit)."""
    took: list[float] = []
    first: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        try:
            for i in range(k, runs, clients):
                with lock:
                    if not first:
                        first.append(time.time())
                took.append(launch(i, f"noop-{i % JOBS}"))
        except BaseException as error:  # reported below, after every thread has ended
            errors.append(error)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DONE_TIMEOUT)
    if errors:
        raise errors[0]
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"launching {runs} runs took more than {DONE_TIMEOUT:.0f}s")
    mean = sum(took) / len(took) if took else 0.0
    return {"first_launch": first[0], "launched": time.time(),
            "capacity": clients / mean if mean > 0 else 0.0}


def finished(db: Database[Any], runs: int, since_ms: int, timeout: float = DONE_TIMEOUT) -> int:
    """Wait until `runs` runs requested since `since_ms` ended Done; the last `endedAt` (ms)."""
    def all_done() -> bool:
        return db["runs"].count_documents({"state": "Done", "endedAt": {"$gte": since_ms}}) >= runs

    wait_until(all_done, timeout, f"{runs} runs Done", pause=0.1)
    last = db["runs"].find({"state": "Done"}, {"endedAt": 1}).sort("endedAt", -1).limit(1)
    return int(next(iter(last))["endedAt"])


def summary(runs: int, clients: int, times: dict[str, float], last_end_ms: int) -> dict[str, Any]:
    elapsed = last_end_ms / 1000 - times["first_launch"]
    launching = times["launched"] - times["first_launch"]
    return {
        "runs": runs,
        "clients": clients,
        "seconds": round(elapsed, 3),
        "runs_per_s": runs / elapsed if elapsed > 0 else None,
        "launches_per_s": runs / launching if launching > 0 else None,
        "launcher_capacity_per_s": round(times["capacity"], 1),
    }


def shards(cluster: Cluster, runs: int, clients: int, warmup: int = 4) -> dict[str, Any]:
    """Shards: Controller.launch from `clients` threads, the cluster's workers run them."""
    controller = cluster.ctl
    for n in range(warmup):
        launch_retrying(controller, f"noop-{JOBS - 1 - n}")
    db = controller.store.database
    wait_until(lambda: db["runs"].count_documents({"state": "Done"}) >= warmup, 60, "warm-up runs Done")
    since = time.time_ns() // 1_000_000

    def launch(_: int, process_id: str) -> float:
        timed: list[float] = []
        launch_retrying(controller, process_id, timed=timed)
        return timed[0]

    times = fan_launch(launch, runs, clients)
    last = finished(db, runs, since)
    cluster.check_workers()
    return summary(runs, clients, times, last)
