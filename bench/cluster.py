"""A bench cluster: a fresh NX-27017 server (own data directory, fresh database) and Shards
workers as child processes on loopback, stopped by pid. Every wait is bounded."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from shards_controller import Controller
from shards_store import connect
from shards_store.embedded import free_port, start_embedded
from stats import Sample, scrape

REPO = Path(__file__).resolve().parents[1]
APP = "bench/app.py:app"
SCOPE = "bench"
DATABASE = "bench"
STOP_TIMEOUT = 30.0


@functools.cache
def worker_help() -> str:
    """`shards worker --help`, wide, without colour (what this code's worker accepts)."""
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run(
        [sys.executable, "-m", "shards_cli", "worker", "--help"],
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


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process so far (all its threads), from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(what: str, check: Callable[[], Any], timeout: float, pause: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(pause)


def _reap(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


class Cluster:
    """`with Cluster("f1") as c: c.start_workers(4); c.ready(); ...`"""

    def __init__(self, name: str) -> None:
        self.name = name
        self.workdir = Path(tempfile.mkdtemp(prefix=f"shards-bench-{name}-"))
        self.port = free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/{DATABASE}"
        self.server: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.metrics_ports: list[int] = []
        self.others: list[subprocess.Popen[bytes]] = []  # baseline clients
        self.controller: Controller | None = None
        self.failed = False

    def __enter__(self) -> Cluster:
        self.server = start_embedded(self.port, self.workdir / "mongo")
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
        env = {key: value for key, value in os.environ.items() if key not in ("SHARDS_SCOPE",)}
        for _ in range(count):
            n = len(self.workers)
            port = free_port()
            command = [
                sys.executable, "-m", "shards_cli", "worker", APP, "--mongo", self.uri,
                "--concurrency", str(concurrency), "--metrics-port", str(port), *extra,
            ]
            with (self.workdir / f"worker-{n}.log").open("wb") as sink:
                self.workers.append(subprocess.Popen(
                    command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
                ))
            self.metrics_ports.append(port)

    def ready(self, timeout: float = 180.0) -> None:
        """Every started worker is alive in the registry and serves metrics; the scope is defined."""
        store = self.ctl.store

        def alive() -> bool:
            self.check_workers()
            return len(store.workers.alive()) >= len(self.workers)

        wait_until(f"{len(self.workers)} live workers", alive, timeout, pause=0.2)
        wait_until("the workers' metrics", lambda: all(scrape(p, 2) for p in self.metrics_ports),
                   timeout, pause=0.2)
        self.ctl.wait_defined(self.ctl.define(SCOPE), timeout=timeout)

    def check_workers(self) -> None:
        for n, proc in enumerate(self.workers):
            if proc.poll() is not None:
                log = (self.workdir / f"worker-{n}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"worker {n} exited with {proc.returncode}:\n{log}")

    def metrics(self) -> list[Sample]:
        """Every worker's samples, concatenated (sum them with stats.total)."""
        return [sample for port in self.metrics_ports for sample in scrape(port)]

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far: the server, and the workers summed."""
        return {
            "server": cpu_seconds(self.server.pid) if self.server else 0.0,
            "workers": sum(cpu_seconds(proc.pid) for proc in self.workers),
        }

    def spawn(self, command: list[str], log_name: str) -> subprocess.Popen[bytes]:
        """A baseline client process of this cluster (stopped with it)."""
        with (self.workdir / log_name).open("wb") as sink:
            proc = subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
        self.others.append(proc)
        return proc

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            _reap(proc)

    # -- tear-down -----------------------------------------------------------------------------
    def close(self) -> None:
        for proc in self.others:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.others:
            _reap(proc)
        self.stop_workers()
        if self.controller is not None:
            with contextlib.suppress(Exception):
                self.controller.store.close()
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            _reap(self.server)
        if self.failed and os.environ.get("SHARDS_BENCH_KEEP"):
            print(f"  (kept {self.workdir} for a look)", file=sys.stderr)
            return
        shutil.rmtree(self.workdir, ignore_errors=True)
