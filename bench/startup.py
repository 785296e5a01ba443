"""Figure 8: how long a `shards` command takes, start to exit, as a person at a terminal waits
for it (issue 12's targets: `shards --help` <= 150 ms, a `status` against a local server
<= 300 ms). Each command runs `runs` times as a fresh OS process, like hyperfine would; the
first run of each is a warm-up and is not counted. The server is a local embedded one with a
defined scope of 1,000 processes (bench/app.py) and one idle worker."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

from cluster import SCOPE, Cluster
from stats import latency
from tooling.harness import shards_command

TARGETS_MS = {"help": 150.0, "status": 300.0}


def timed(command: list[str], env: dict[str, str], runs: int) -> dict[str, Any]:
    samples = []
    for i in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       timeout=60)
        if i:  # the first run warms the page cache
            samples.append((time.perf_counter() - started) * 1000)
    return latency(samples)


def measure(runs: int) -> Callable[[int], dict[str, Any]]:
    def one(rep: int) -> dict[str, Any]:
        with Cluster("startup") as cluster:
            cluster.start_workers(1)
            cluster.ready()
            shards = shards_command()
            env = {**os.environ, "SHARDS_MONGO_URI": cluster.uri, "COLUMNS": "120"}
            return {
                "help_ms": timed([*shards, "--help"], env, runs),
                "status_ms": timed([*shards, "status", "noop-0", "--scope", SCOPE], env, runs),
                "list_json_ms": timed([*shards, "list", "--scope", SCOPE, "-o", "json"], env, runs),
            }
    return one


def figure8(plan: Any, repeat: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    notes = [f"each command {plan.f8_runs} times as a fresh OS process (after one warm-up), wall time "
             "from start to exit; status of one process and list -o json of the scope's 1,000, "
             "against a local embedded server"]
    return {"configs": repeat(plan.repeats, {"startup": measure(plan.f8_runs)}), "notes": notes}
