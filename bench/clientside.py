"""Figure 11: what a client sees. Sequential launches, each timed from the launch call to the moment
the client observes its run Running through a change stream on the process records; beside the
bare-pymongo floor doing the same writes (the launch's guarded Scheduled and request insert, then
bench/rawclient.py floor's six worker writes) with the same reader on both sides.

The reader is the same for both: watch() on `processes` with updateLookup, try_next() and, when
nothing came, the workers' pause (shards_store.PollPace: --stream-poll-min for HOT_FOR seconds after
an event or a launch, then doubling to --stream-poll-max); the floor's worker waits the same way.
A launch waits for the run before it to end (and its slot to free), as in figure 1.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import baselines
from cluster import SCOPE, Cluster
from pickup import JOBS, LAUNCH_TIMEOUT, SLOT_FREED, STARTED, launch_retrying, wait_ended
from shards.requests import Request, RequestKind
from shards.states import LAUNCHABLE, State
from shards_store import PollPace
from stats import latency

RUNNING_OR_LATER = frozenset(s.value for s in STARTED)
HOT_FOR = 1.0  # shards_store.PollPace's default: the workers stay quick this long after an event


class Reader:
    """A change stream on the process records, read as the workers read theirs."""

    def __init__(self, cluster: Cluster, pause_min: float, pause_max: float) -> None:
        processes = cluster.ctl.store.database["processes"]
        changed = {"$match": {"operationType": {"$in": ["insert", "update", "replace"]}}}
        self.stream = processes.watch([changed], full_document="updateLookup", max_await_time_ms=250)
        self.pace = PollPace(pause_min, pause_max, hot_for=HOT_FOR)

    def launching(self) -> None:
        """A launch goes out now: read quickly again (as a worker is quick after an event)."""
        self.pace.busy()

    def until_running(self, run_id: str, timeout: float = LAUNCH_TIMEOUT) -> float:
        """perf_counter() when an event shows this run Running (or past it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            change = self.stream.try_next()
            if change is None:
                time.sleep(self.pace.next_pause())
                continue
            self.pace.busy()
            doc = change.get("fullDocument") or {}
            if doc.get("runId") == run_id and (doc.get("status") or {}).get("state") in RUNNING_OR_LATER:
                return time.perf_counter()
        raise TimeoutError(f"run {run_id} not seen Running within {timeout:.0f}s")

    def close(self) -> None:
        self.stream.close()


def _sequential(cluster: Cluster, launches: int, warmup: int, pause_min: float, pause_max: float,
                launch: Callable[[int], str], ended: Callable[[int, str], None]) -> dict[str, Any]:
    reader = Reader(cluster, pause_min, pause_max)
    samples: list[float] = []
    try:
        for n in range(warmup + launches):
            reader.launching()
            called = time.perf_counter()
            run_id = launch(n)
            seen = reader.until_running(run_id)
            if n >= warmup:
                samples.append((seen - called) * 1000)
            ended(n, run_id)
    finally:
        reader.close()
    return {"launches": launches, "launch_to_seen_running_ms": latency(samples),
            "samples_ms": [round(v, 2) for v in samples]}


def shards(cluster: Cluster, launches: int, pause_min: float, pause_max: float,
           warmup: int = 5) -> dict[str, Any]:
    controller = cluster.ctl

    def launch(n: int) -> str:
        record = launch_retrying(controller, f"noop-{n % JOBS}")
        return str(record.run_id)

    def ended(n: int, run_id: str) -> None:
        wait_ended(controller, f"noop-{n % JOBS}", run_id, LAUNCH_TIMEOUT)

    return _sequential(cluster, launches, warmup, pause_min, pause_max, launch, ended)


def floor(cluster: Cluster, launches: int, pause_min: float, pause_max: float,
          warmup: int = 5) -> dict[str, Any]:
    """One raw worker (bench/rawclient.py floor, slot 0, one thread) and the floor's launch."""
    baselines.seed(cluster)
    baselines.start_raw(cluster, "floor", "floor-0", ["--slot", "0", "--concurrency", "1",
                                                      "--pause-min", str(pause_min), "--pause-max",
                                                      str(pause_max), "--hot-for", str(HOT_FOR)])
    db = cluster.ctl.store.database
    processes, requests = db["processes"], db["requests"]
    launchable = sorted(s.value for s in LAUNCHABLE)

    def launch(n: int) -> str:
        process_id, run_id = f"noop-{n % JOBS}", uuid.uuid4().hex
        scheduled = processes.find_one_and_update(  # the guarded Scheduled
            {"scopeId": SCOPE, "processId": process_id, "status.state": {"$in": launchable}},
            {"$set": {"runId": run_id, "workerId": "", "parentRunId": "", "status.error": "",
                      "status.state": State.SCHEDULED.value,
                      "progress": {"message": "Scheduled", "rate": 0.0}}},
        )
        if scheduled is None:
            raise RuntimeError(f"{process_id} was still active (floor)")
        doc = Request(kind=RequestKind.LAUNCH, scope_id=SCOPE, process_id=process_id, run_id=run_id).to_doc()
        doc["slot"] = 0
        requests.insert_one(doc)
        return run_id

    def ended(n: int, run_id: str) -> None:
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        while (doc := processes.find_one({"scopeId": SCOPE, "processId": f"noop-{n % JOBS}"})) is not None \
                and doc.get("runId") == run_id and doc["status"]["state"] != State.DONE.value:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} did not end within {LAUNCH_TIMEOUT:.0f}s (floor)")
            time.sleep(0.005)
        time.sleep(SLOT_FREED)

    return _sequential(cluster, launches, warmup, pause_min, pause_max, launch, ended)
