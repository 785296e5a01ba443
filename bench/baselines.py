"""The baselines' bench side, each on the caller's fresh cluster (server, no Shards workers):

- raw pickup: insert a request-shaped document, wait for the raw client's Running marker, next
  (the client, bench/rawclient.py, runs a tight loop or the workers' adaptive wait);
- the throughput floor: the same minimum DB work per run as Shards' design, 8 writes, with the
  same client and worker parallelism: launch = (1) guarded Scheduled, (2) request insert; worker
  = (3)-(8) in rawclient.floor. Each floor worker's stream is filtered to its own slot (requests
  are dealt round-robin), so no write is wasted on a lost claim: the floor.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

import throughput
from bson import ObjectId
from cluster import SCOPE, Cluster
from pickup import JOBS
from shards.records import ProcessRecord, Progress
from shards.requests import Request, RequestKind
from shards.states import LAUNCHABLE, State
from stats import latency
from tooling.harness import wait_until

RAWCLIENT = str(Path(__file__).resolve().with_name("rawclient.py"))
MARK_TIMEOUT = 60.0


def start_raw(cluster: Cluster, role: str, name: str, options: list[str]) -> None:
    ready = cluster.workdir / f"{name}.ready"
    client = cluster.spawn(
        [sys.executable, RAWCLIENT, role, "--uri", cluster.uri, "--ready", str(ready), *options],
        f"{name}.log",
    )

    def up() -> bool:
        if not client.running:
            raise RuntimeError(f"{name} exited with {client.returncode}:\n{client.output()[-2000:]}")
        return ready.exists()

    wait_until(up, 60, f"{name} ready")


def raw_pickup(cluster: Cluster, mode: str, launches: int, pause_min: float, pause_max: float,
               warmup: int = 5) -> dict[str, Any]:
    """insert -> Running marker over sequential inserts, with the raw client in `mode`."""
    start_raw(cluster, "pickup", f"raw-{mode}",
           ["--mode", mode, "--pause-min", str(pause_min), "--pause-max", str(pause_max)])
    requests = cluster.ctl.store.database["raw_requests"]
    samples: list[float] = []
    for n in range(warmup + launches):
        doc = Request(kind=RequestKind.LAUNCH, scope_id=SCOPE, process_id=f"noop-{n % JOBS}",
                      run_id=uuid.uuid4().hex).to_doc()
        doc["_id"] = ObjectId()
        inserted = time.time()
        requests.insert_one(doc)
        deadline = time.monotonic() + MARK_TIMEOUT
        pause = 0.002
        while True:
            found = requests.find_one({"_id": doc["_id"]}, {"runningAt": 1})
            if found is not None and found.get("runningAt") is not None:
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the raw {mode} client marked nothing within {MARK_TIMEOUT:.0f}s")
            time.sleep(pause)
            pause = min(pause * 1.25, 0.01)
        if n >= warmup:
            samples.append(found["runningAt"] - inserted * 1000)
    return {"launches": launches, "insert_to_running_ms": latency(samples),
            "samples_ms": [round(v, 2) for v in samples]}


def seed(cluster: Cluster) -> None:
    """The indexes the store declares, and the scope's process records as the store shapes them."""
    store = cluster.ctl.store
    store.ensure_indexes()
    docs = [ProcessRecord(scope_id=SCOPE, process_id=f"noop-{n}", name=f"noop-{n}").to_doc()
            for n in range(JOBS)]
    store.database["processes"].insert_many(docs)


def floor(cluster: Cluster, workers: int, concurrency: int, runs: int, clients: int,
          pause_min: float, pause_max: float) -> dict[str, Any]:
    """The bare-pymongo floor: `workers` raw worker processes with `concurrency` threads each."""
    seed(cluster)
    for slot in range(workers):
        start_raw(cluster, "floor", f"floor-{slot}",
               ["--slot", str(slot), "--concurrency", str(concurrency),
                "--pause-min", str(pause_min), "--pause-max", str(pause_max)])
    db = cluster.ctl.store.database
    processes, requests = db["processes"], db["requests"]
    launchable = sorted(s.value for s in LAUNCHABLE)
    scheduled_progress = Progress("Scheduled", 0.0).to_doc()

    def launch(i: int, process_id: str) -> float:
        deadline = time.monotonic() + MARK_TIMEOUT
        run_id = uuid.uuid4().hex
        while (began := time.perf_counter()) and processes.find_one_and_update(  # (1) guarded Scheduled
            {"scopeId": SCOPE, "processId": process_id, "status.state": {"$in": launchable}},
            {"$set": {"runId": run_id, "workerId": "", "parentRunId": "", "status.error": "",
                      "status.state": State.SCHEDULED.value, "progress": scheduled_progress}},
        ) is None:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{process_id} stayed active for {MARK_TIMEOUT:.0f}s (floor)")
            time.sleep(0.005)
        doc = Request(kind=RequestKind.LAUNCH, scope_id=SCOPE, process_id=process_id, run_id=run_id).to_doc()
        doc["slot"] = i % workers
        requests.insert_one(doc)  # (2)
        return time.perf_counter() - began

    since = time.time_ns() // 1_000_000
    times = throughput.fan_launch(launch, runs, clients)
    last = throughput.finished(db, runs, since)
    return throughput.summary(runs, clients, times, last)
