"""A large define and a launch during it (issue 22, point 4): a fresh embedded server, one
worker (concurrency 4) of tests/integration/apps/large.py, `define --scope big-N`; once the
define has started writing, `quick` is launched in another scope and the time until it is
claimed (its record leaves Scheduled) is the claim latency during the define.

    .venv/bin/python bench/define_scale.py --size 20000 [--limit 300]

Prints one JSON object: the define's wall time (request to scope defined), its records per
second, and the launch's claim latency. --limit bounds the whole wait (a slow define is
reported as not finished, with how many records it had written)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cluster import Cluster
from shards.states import State

APP = "tests/integration/apps/large.py:app"


def run(size: int, limit: float) -> dict[str, object]:
    with Cluster("define") as cluster:
        cluster.processes.start_worker(APP, "--mongo", cluster.uri, "--concurrency", "4")
        ctl, store = cluster.ctl, cluster.ctl.store
        deadline = time.monotonic() + 120
        while not store.workers.alive():
            cluster.check_workers()
            assert time.monotonic() < deadline, "no live worker"
            time.sleep(0.1)
        ctl.wait_defined(ctl.define("big-0"), timeout=60)  # `quick` in a small scope
        scope = f"big-{size}"
        started = time.monotonic()
        ctl.define(scope)
        written = lambda: store.processes.collection.count({"scopeId": scope})  # noqa: E731
        while written() == 0 and time.monotonic() < started + limit:
            time.sleep(0.05)
        launched = time.monotonic()
        ctl.launch("big-0", "quick")
        claim_s = None
        while time.monotonic() < started + limit:
            if ctl.get("big-0", "quick").state is not State.SCHEDULED:
                claim_s = time.monotonic() - launched
                break
            time.sleep(0.01)
        defined_s = None
        while time.monotonic() < started + limit:
            found = store.scopes.get(scope)
            if found is not None and found.state == "Defined":
                defined_s = time.monotonic() - started
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        count = written()
        return {
            "processes": size + 1,
            "define_s": None if defined_s is None else round(defined_s, 2),
            "written": count,
            "records_per_s": round(count / (defined_s or elapsed)),
            "launch_claim_s": None if claim_s is None else round(claim_s, 3),
            "limit_s": limit,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--limit", type=float, default=300.0)
    options = parser.parse_args()
    print(json.dumps(run(options.size, options.limit)))


if __name__ == "__main__":
    main()
