"""A bench cluster: a fresh NX-27017 server (own data directory, fresh database) and Shards
workers on loopback, started and stopped by pid through tooling.harness. Every wait is bounded."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from shards_controller import Controller
from shards_store import connect
from shards_store.embedded import free_port
from stats import Sample, scrape
from tooling.harness import (
    REPO,
    Child,
    EmbeddedMongo,
    Processes,
    cpu_seconds,
    shards_command,
    shards_env,
    wait_until,
)

APP = "bench/app.py:app"
SCOPE = "bench"
DATABASE = "bench"
STOP_TIMEOUT = 30.0


@functools.cache
def worker_help() -> str:
    """`shards worker --help`, wide, without colour (what this code's worker accepts)."""
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run(
        shards_command("worker", "--help"),
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    return done.stdout


def supports(flag: str) -> bool:
    return re.search(rf"{re.escape(flag)}(?![\w-])", worker_help()) is not None


def flag_default(flag: str, fallback: float) -> float:
    """The default a worker flag shows in --help, or the fallback."""
    for line in worker_help().splitlines():
        if re.search(rf"{re.escape(flag)}(?![\w-])", line):
            found = re.search(r"\[default:\s*([0-9.eE+-]+)\]", line)
            if found:
                return float(found.group(1))
    return fallback


def start_app_workers(processes: Processes, controller: Controller, scopes: Sequence[str], *,
                      workers: int, concurrency: int, timeout: float = 120.0) -> None:
    """`workers` workers of the bench app, alive in the registry, and `scopes` defined (asked all
    at once, then waited for): the operator benches' Shards side."""
    for _ in range(workers):
        processes.start_worker(APP, "--concurrency", str(concurrency))
    store = controller.store
    wait_until(lambda: len(store.workers.alive()) >= workers, timeout, f"{workers} live workers", pause=0.25)
    for request in [controller.define(scope) for scope in scopes]:
        controller.wait_defined(request, timeout=timeout)


class Cluster:
    """`with Cluster("f1") as c: c.start_workers(4); c.ready(); ...`"""

    def __init__(self, name: str) -> None:
        self.name = name
        self.workdir = Path(tempfile.mkdtemp(prefix=f"shards-bench-{name}-"))
        self.mongo = EmbeddedMongo(self.workdir / "mongo", DATABASE, grace=STOP_TIMEOUT)
        self.uri = self.mongo.uri
        self.processes = Processes(self.workdir, shards_env(self.uri), grace=STOP_TIMEOUT, mongo=self.mongo)
        self.metrics_ports: list[int] = []
        self.controller: Controller | None = None
        self.failed = False

    def __enter__(self) -> Cluster:
        self.mongo.start()
        self.controller = Controller(connect(self.uri, timeout=30))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.failed = kind is not None
        self.close()

    @property
    def ctl(self) -> Controller:
        assert self.controller is not None
        return self.controller

    # -- workers ------------------------------------------------------------------------------
    def start_workers(self, count: int, *, concurrency: int = 1, extra: Sequence[str] = ()) -> None:
        for _ in range(count):
            port = free_port()
            self.processes.start_worker(APP, "--mongo", self.uri, "--concurrency", str(concurrency),
                                        "--metrics-port", str(port), *extra)
            self.metrics_ports.append(port)

    def ready(self, timeout: float = 180.0) -> None:
        """Every started worker is alive in the registry and serves metrics; the scope is defined."""
        store = self.ctl.store

        def alive() -> bool:
            self.check_workers()
            return len(store.workers.alive()) >= len(self.processes.workers)

        wait_until(alive, timeout, f"{len(self.processes.workers)} live workers", pause=0.2)
        wait_until(lambda: all(scrape(p, 2) for p in self.metrics_ports), timeout, "the workers' metrics",
                   pause=0.2)
        self.ctl.wait_defined(self.ctl.define(SCOPE), timeout=timeout)

    def check_workers(self) -> None:
        for n, worker in enumerate(self.processes.workers):
            if not worker.running:
                raise RuntimeError(f"worker {n} exited with {worker.returncode}:\n{worker.output()[-2000:]}")

    def metrics(self) -> list[Sample]:
        """Every worker's samples, concatenated (sum them with stats.total)."""
        return [sample for port in self.metrics_ports for sample in scrape(port)]

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far: the server, and the workers summed."""
        return {
            "server": cpu_seconds(self.mongo.pid) if self.mongo.up else 0.0,
            "workers": sum(cpu_seconds(worker.pid) for worker in self.processes.workers),
        }

    def spawn(self, command: list[str], log_name: str) -> Child:
        """A baseline client process of this cluster (stopped with it)."""
        return self.processes.spawn(command, log_name)

    # -- tear-down -----------------------------------------------------------------------------
    def close(self) -> None:
        if self.controller is not None:
            with contextlib.suppress(Exception):
                self.controller.store.close()
        self.processes.close()  # the clients, the workers, then the server
        if self.failed and os.environ.get("SHARDS_BENCH_KEEP"):
            print(f"  (kept {self.workdir} for a look)", file=sys.stderr)
            return
        shutil.rmtree(self.workdir, ignore_errors=True)
