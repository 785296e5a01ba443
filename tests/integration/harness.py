"""The integration harness: the real `shards` CLI and real worker OS processes on a fresh database.

The processes come from tooling.harness (which starts and stops them by pid); this adds the CLI
and the test database's store and controller."""

from __future__ import annotations

import contextlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shards.records import ProcessRecord
from shards.states import State
from shards_controller import Controller
from shards_store import Store, connect
from tooling.harness import REPO, WAIT, Child, Processes, shards_command, shards_env, wait_until

TEST_APP = "tests/integration/apps/testapp.py:app"
WorkerProcess = Child  # the name the tests give a worker OS process

__all__ = ["REPO", "TEST_APP", "WAIT", "CliResult", "ShardsHarness", "WorkerProcess", "wait_until"]


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


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
        self.env = shards_env(uri)
        self.processes = Processes(workdir, self.env, grace=WAIT)
        self.workers: list[WorkerProcess] = self.processes.workers

    def cli(self, *args: str, timeout: float = WAIT, env: dict[str, str] | None = None) -> CliResult:
        done = subprocess.run(
            shards_command(*args),
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
        self, app: str = TEST_APP, *extra: str, concurrency: int = 1, env: dict[str, str] | None = None,
        log: str = "", stdout: Path | None = None,
    ) -> WorkerProcess:
        """A worker with the tests' short lease and intervals; its output in `log` (default
        worker-<n>.log), or its stdout apart in `stdout` and its stderr in `log`."""
        return self.processes.start_worker(
            app, "--concurrency", str(concurrency),
            "--lease", "3", "--heartbeat", "0.5", "--progress-interval", "0.2",
            *extra, log=log, env=env, stdout=stdout,
        )
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
        self.processes.close()
        # The test's database goes with it: NX-27017 keeps at most 100 databases open and never
        # evicts one that a change stream follows (even one whose client is gone), so past 100 such
        # databases it closed each new one as soon as it opened it.
        with contextlib.suppress(Exception):
            self.store.client.drop_database(self.store.database.name)
        self.store.close()
