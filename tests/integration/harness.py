"""The integration harness: the real `shards` CLI and real worker OS processes on a fresh database."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shards.records import ProcessRecord
from shards.states import State
from shards_controller import Controller
from shards_store import Store, connect
from shards_store.embedded import free_port, start_embedded

REPO = Path(__file__).resolve().parents[2]
TEST_APP = "tests/integration/apps/testapp.py:app"
WAIT = 60.0  # generous: tests wait on conditions, never on fixed sleeps


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class WorkerProcess:
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: the worker vanishes without settling anything (a crashed pod)."""
        self.popen.kill()
        self.popen.wait(timeout=WAIT)

    def terminate(self, timeout: float = WAIT) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)
        return self.popen.returncode


def wait_until(
    condition: Callable[[], Any], timeout: float = WAIT, what: str | Callable[[], str] = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {described}")
        time.sleep(0.05)


class ShardsHarness:
    """Drives one test database through the real CLI and real worker processes."""

    def __init__(self, uri: str, workdir: Path) -> None:
        self.uri = uri
        self.workdir = workdir
        self.store: Store = connect(uri)
        # Indexes before any worker, as in a deployment whose workers started before clients:
        # mongo-java-server sometimes fails a query that races with an index being created
        # ("Unknown error: null"), and the harness polls the registry while workers start.
        self.store.ensure_indexes()
        self.controller = Controller(self.store)
        self.workers: list[WorkerProcess] = []
        self.env = {**os.environ, "SHARDS_MONGO_URI": uri}
        self.env.pop("SHARDS_SCOPE", None)

    def cli(self, *args: str, timeout: float = WAIT, env: dict[str, str] | None = None) -> CliResult:
        done = subprocess.run(
            [sys.executable, "-m", "shards_cli", *args],
            cwd=REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str) -> CliResult:
        result = self.cli(*args)
        assert result.returncode == 0, f"shards {' '.join(args)} failed: {result.stderr}"
        return result

    def start_worker(
        self, app: str = TEST_APP, *extra: str, concurrency: int = 1, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        log = self.workdir / f"worker-{len(self.workers)}.log"
        command = [
            sys.executable, "-m", "shards_cli", "worker", app,
            "--concurrency", str(concurrency),
            "--lease", "3", "--heartbeat", "0.5", "--progress-interval", "0.2",
            *extra,
        ]
        with log.open("wb") as sink:
            popen = subprocess.Popen(
                command, cwd=REPO, env={**self.env, **(env or {})}, stdout=sink, stderr=subprocess.STDOUT
            )
        worker = WorkerProcess(popen, log)
        self.workers.append(worker)
        return worker

    def start_workers(self, count: int, **options: Any) -> list[WorkerProcess]:
        started = [self.start_worker(**options) for _ in range(count)]
        wait_until(lambda: len(self.store.workers.alive()) >= count, what=f"{count} live workers")
        return started

    def define(self, scope: str, *flags: str) -> CliResult:
        """Define once a worker this test started is alive (with none, define exits 6 at once)."""
        if self.workers:
            wait_until(lambda: self.store.workers.alive(), what="a live worker to define the scope")
        return self.ok("define", "--scope", scope, *flags)

    def record(self, scope: str, process_id: str) -> ProcessRecord:
        return self.controller.get(scope, process_id)

    def wait_state(self, scope: str, process_id: str, *states: State, timeout: float = WAIT) -> ProcessRecord:
        names = "/".join(s.value for s in states)
        return wait_until(
            lambda: (r := self.record(scope, process_id)).state in states and r,
            timeout,
            lambda: f"{scope}/{process_id} to be {names} (is {self.record(scope, process_id).state.value})",
        )

    def close(self) -> None:
        for worker in self.workers:
            worker.terminate()
        # The test's database goes with it: NX-27017 keeps at most 100 databases open and never
        # evicts one that a change stream follows (even one whose client is gone), so past 100 such
        # databases it closed each new one as soon as it opened it.
        with contextlib.suppress(Exception):
            self.store.client.drop_database(self.store.database.name)
        self.store.close()


class RestartableMongo:
    """An NX-27017 server of one test's own, which the test kills and restarts (an outage).

    It keeps its port and data directory, so clients reconnect to the same data.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.proc = start_embedded(self.port, data_dir)

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/shards_outage"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=WAIT)

    def restart(self) -> None:
        self.proc = start_embedded(self.port, self.data_dir)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=WAIT)
