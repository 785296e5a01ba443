"""Pickup: sequential launches through the Controller (launch, wait until the run is Running,
then until it has ended, next: each launch finds an idle worker), each timed from the insert of
its launch request to the record's Running timestamp.

The clock: the request's own `createdAt` is whole milliseconds, too coarse for a few-ms figure.
So the bench wraps `store.requests.submit` in its own process and takes time.time() right before
the insert; when a launch inserts its request some other way, the time taken right before
`Controller.launch` is used instead (the JSON says which). The Running side is the record's
`status.runningSince` (epoch ms, written by the worker); the baselines use the same ms truncation.
"""

from __future__ import annotations

import time
from typing import Any

from cluster import SCOPE, Cluster
from shards.errors import ShardsError
from shards.states import FINAL, State
from shards_controller import Controller
from stats import bucket_delta, buckets, by_label, has_metric, histogram_quantile, latency, total

JOBS = 1000  # bench/app.py: noop-0 .. noop-999
LAUNCH_TIMEOUT = 60.0  # per launch: the bench never hangs on one
SLOT_FREED = 0.05  # seconds after a run's end is recorded by when its worker has freed the slot
STARTED = (State.RUNNING, State.DONE, State.STOP_REQUESTED, State.STOPPING, State.STOPPED)


class InsertClock:
    """Takes time.time() right before each launch request is inserted (in this process)."""

    def __init__(self, controller: Controller) -> None:
        self.last: float | None = None
        requests = controller.store.requests
        submit = getattr(requests, "submit", None)
        if submit is None:
            return

        def timed(request: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(request, "kind", "") == "launch":
                self.last = time.time()
            return submit(request, *args, **kwargs)

        requests.submit = timed  # type: ignore[method-assign]


def launch_retrying(controller: Controller, process_id: str, timeout: float = LAUNCH_TIMEOUT,
                    timed: list[float] | None = None) -> Any:
    """Launch; while the id is still active from its previous run, retry (bounded). `timed`
    gets the seconds the successful launch call took."""
    deadline = time.monotonic() + timeout
    while True:
        began = time.perf_counter()
        try:
            record = controller.launch(SCOPE, process_id)
            if timed is not None:
                timed.append(time.perf_counter() - began)
            return record
        except ShardsError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def wait_started(controller: Controller, process_id: str, run_id: str, timeout: float) -> Any:
    """The record once it shows this run Running (or past it); polls fast, then backs off."""
    store = controller.store
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        record = store.processes.get(SCOPE, process_id)
        if record is not None and record.run_id == run_id and record.state in STARTED \
                and record.status.running_since is not None:
            return record
        if time.monotonic() >= deadline:
            state = record.state.value if record else "missing"
            raise TimeoutError(f"{process_id} run {run_id} not Running within {timeout:.0f}s ({state})")
        time.sleep(pause)
        pause = min(pause * 1.25, 0.01)


def wait_ended(controller: Controller, process_id: str, run_id: str, timeout: float) -> None:
    """Until the run has ended, and its worker has let go of its slot (a moment after)."""
    deadline = time.monotonic() + timeout
    while (record := controller.store.processes.get(SCOPE, process_id)) is not None \
            and record.run_id == run_id and record.state not in FINAL:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{process_id} run {run_id} did not end within {timeout:.0f}s")
        time.sleep(0.005)
    time.sleep(SLOT_FREED)


def sequential(cluster: Cluster, launches: int, warmup: int = 5) -> dict[str, Any]:
    """Pickup latency over `launches` sequential launches, plus the workers' own figures
    (claim attempts per launch, the worker-side pickup histogram) when they serve them.
    Each launch waits for the run before it to end: a launch queued behind a run still going
    (an isolated no-op takes ~10 ms) would measure that run's rest, and, when polling, be
    claimed as that run frees its slot instead of by the poll."""
    controller = cluster.ctl
    clock = InsertClock(controller)
    for n in range(warmup):  # connections, imports, first stream batches: not measured
        record = launch_retrying(controller, f"noop-{JOBS - 1 - n}")
        wait_started(controller, record.process_id, record.run_id, LAUNCH_TIMEOUT)
    time.sleep(0.2)
    before = cluster.metrics()
    insert_ms: list[float] = []
    call_ms: list[float] = []
    clocks = {"insert": 0, "launch-call": 0}
    for n in range(launches):
        process_id = f"noop-{n % (JOBS - warmup)}"
        clock.last = None
        called = time.time()
        record = launch_retrying(controller, process_id)
        inserted = clock.last
        started = wait_started(controller, process_id, record.run_id, LAUNCH_TIMEOUT)
        running = started.status.running_since.timestamp()
        call_ms.append((running - called) * 1000)
        clocks["insert" if inserted is not None else "launch-call"] += 1
        insert_ms.append((running - (inserted if inserted is not None else called)) * 1000)
        wait_ended(controller, process_id, record.run_id, LAUNCH_TIMEOUT)
    time.sleep(0.3)  # the last claims and histogram observations are in
    after = cluster.metrics()
    return {
        "launches": launches,
        "insert_to_running_ms": latency(insert_ms),
        "launch_call_to_running_ms": latency(call_ms),
        "clock": clocks,
        "samples_ms": [round(v, 2) for v in insert_ms],
        **worker_figures(before, after, launches),
    }


def worker_figures(before: list[Any], after: list[Any], launches: int) -> dict[str, Any]:
    """Claim attempts per launch and the workers' pickup histogram, or None (n/a) when absent."""
    found: dict[str, Any] = {"claims_per_launch": None, "claim_outcomes": None,
                             "worker_pickup_p50_ms": None, "worker_pickup_p99_ms": None}
    if has_metric(after, "shards_claim_attempts"):
        name = "shards_claim_attempts_total"
        attempts = total(after, name, kind="launch") - total(before, name, kind="launch")
        found["claims_per_launch"] = attempts / launches if launches else None
        outcomes = by_label(after, name, "outcome", kind="launch")
        earlier = by_label(before, name, "outcome", kind="launch")
        found["claim_outcomes"] = {k: v - earlier.get(k, 0.0) for k, v in outcomes.items()}
    if has_metric(after, "shards_pickup_seconds"):
        name = "shards_pickup_seconds"
        delta = bucket_delta(buckets(after, name), buckets(before, name))
        p50, p99 = histogram_quantile(delta, 0.5), histogram_quantile(delta, 0.99)
        found["worker_pickup_p50_ms"] = None if p50 is None else p50 * 1000
        found["worker_pickup_p99_ms"] = None if p99 is None else p99 * 1000
    claimed = "shards_requests_claimed_total"
    found["successful_claims_per_launch"] = (
        (total(after, claimed, kind="launch") - total(before, claimed, kind="launch")) / launches
        if launches and has_metric(after, "shards_requests_claimed") else None
    )
    return found
