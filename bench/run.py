"""Benchmarks (`make bench`): claim latency and throughput with competing workers, and stop
latency across workers, on the embedded server. Bounded: fixed job counts and timeouts."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shards.states import State
from shards_controller import Controller
from shards_store import connect
from shards_store.embedded import free_port, start_embedded

REPO = Path(__file__).resolve().parents[1]
WORKERS, CONCURRENCY = 4, 4


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        server = start_embedded(port, Path(data))
        uri = f"mongodb://127.0.0.1:{port}/bench"
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "shards_cli", "worker", "bench/app.py:app", "--mongo", uri,
                 "--concurrency", str(CONCURRENCY)],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for _ in range(WORKERS)
        ]
        try:
            run(Controller(connect(uri)))
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=60)
            server.terminate()
            server.wait(timeout=30)


def run(controller: Controller) -> None:
    store = controller.store
    deadline = time.monotonic() + 60
    while len(store.workers.alive()) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.1)
    controller.wait_defined(controller.define("bench"), timeout=60)
    jobs = [f"noop-{n}" for n in range(200)]
    started = time.monotonic()
    for job in jobs:
        controller.launch("bench", job)
    for job in jobs:
        controller.wait("bench", job, lambda r: r.state is State.DONE, 120)
    elapsed = time.monotonic() - started
    histories = [store.runs.of_process("bench", job, 5) for job in jobs]
    once = all(len(history) == 1 for history in histories)
    runs = [history[0] for history in histories]
    queued = [(r.started_at - r.requested_at).total_seconds() * 1000 for r in runs
              if r.started_at and r.requested_at]
    workers_used = len({r.worker_id for r in runs})
    print(f"launch->start latency over {len(jobs)} runs, {WORKERS} workers x {CONCURRENCY}: "
          f"p50 {statistics.median(queued):.1f} ms, p99 {percentile(queued, 99):.1f} ms")
    print(f"throughput: {len(jobs) / elapsed:.1f} runs/s ({elapsed:.2f} s for {len(jobs)}), "
          f"{workers_used} workers used, one run per launch: {once}")

    waits = [f"wait-{n}" for n in range(12)]
    for job in waits:
        controller.launch("bench", job)
    for job in waits:
        controller.wait("bench", job, lambda r: r.state is State.RUNNING, 60)
    stop_latency = []
    for job in waits:
        asked = time.monotonic()
        controller.stop("bench", job)
        controller.wait("bench", job, lambda r: r.state is State.STOPPED, 60)
        stop_latency.append((time.monotonic() - asked) * 1000)
    print(f"stop->Stopped latency across workers over {len(waits)} stops: "
          f"p50 {statistics.median(stop_latency):.1f} ms, max {max(stop_latency):.1f} ms")


if __name__ == "__main__":
    main()
