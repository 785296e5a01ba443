"""The OS processes one test, chaos run or bench measurement starts: Shards workers, the
operator, the dashboard and any other program, each a `Child`, and maybe its embedded server.
`close()` stops them all by the pids it started: everything else, then the workers, then the
server, each group SIGTERMed at once and reaped within the grace."""

from __future__ import annotations

import os
import re
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from shards_store.embedded import free_port

from tooling.harness.child import WAIT, Child, reap, shards_command, spawn, wait_until
from tooling.harness.mongo import EmbeddedMongo

DASHBOARD_ADDRESS = re.compile(r"dashboard on http://([^/]+)/")
DEPLOY_LEASE = ("shards-system", "shards-operator")  # deploy/'s Lease (namespace, name): what its Role allows


def shards_env(mongo_uri: str, **extra: str) -> dict[str, str]:
    """This process' environment for a Shards command on `mongo_uri`, without SHARDS_SCOPE (each
    command is told its scope)."""
    env = {**os.environ, "SHARDS_MONGO_URI": mongo_uri, **extra}
    env.pop("SHARDS_SCOPE", None)
    return env


class Processes:
    """Starts processes with `env` (plus a call's own variables) in `workdir`, logs there; `grace`:
    how long each has to exit after SIGTERM, and the bound of the waits for it."""

    def __init__(self, workdir: Path, env: Mapping[str, str], *, grace: float = WAIT,
                 mongo: EmbeddedMongo | None = None) -> None:
        self.workdir = workdir
        self.env = dict(env)
        self.grace = grace
        self.mongo = mongo
        self.workers: list[Child] = []
        self.others: list[Child] = []  # operators, dashboards, clients: stopped before the workers

    def spawn(self, command: Sequence[str], log: str, *, env: Mapping[str, str] | None = None,
              stdout: Path | None = None, append: bool = False, worker: bool = False) -> Child:
        """Any program, its output in the workdir's file `log` (see child.spawn)."""
        child = spawn(command, self.workdir / log, env={**self.env, **(env or {})}, stdout=stdout,
                      append=append, grace=self.grace)
        (self.workers if worker else self.others).append(child)
        return child

    def start_worker(self, app: str, *options: str, log: str = "", env: Mapping[str, str] | None = None,
                     stdout: Path | None = None, append: bool = False) -> Child:
        """`shards worker APP OPTIONS`; log `worker-<n>.log` by default (n counts from 0)."""
        log = log or f"worker-{len(self.workers)}.log"
        return self.spawn(shards_command("worker", app, *options), log, env=env, stdout=stdout,
                          append=append, worker=True)

    def start_operator(self, namespace: str, kubeconfig: Path, *options: str, log: str,
                       status_interval: float = 0.5) -> Child:
        """`shards operator` on `namespace`, as `kubeconfig` says, without a liveness endpoint."""
        command = shards_command("operator", "--namespace", namespace, "--liveness", "",
                                 "--status-interval", str(status_interval), *options)
        return self.spawn(command, log, env={"KUBECONFIG": str(kubeconfig)})

    def start_candidate(self, namespace: str, kubeconfig: Path, name: str, *, log: str,
                        lease: tuple[str, str] = DEPLOY_LEASE, append: bool = False) -> tuple[Child, str]:
        """`shards operator` electing its leader on `lease` (namespace, name) as the Pod `name`, and
        the URL of its health endpoint (it answers while standing by too)."""
        health = f"http://127.0.0.1:{free_port()}/healthz"
        command = shards_command("operator", "--namespace", namespace, "--status-interval", "0.5",
                                 "--liveness", health, "--leader-election",
                                 "--lease-namespace", lease[0], "--lease-name", lease[1])
        child = self.spawn(command, log, env={"KUBECONFIG": str(kubeconfig), "POD_NAME": name}, append=append)
        return child, health

    def start_dashboard(self, *options: str, log: str, env: Mapping[str, str] | None = None,
                        timeout: float = WAIT) -> tuple[Child, str]:
        """`shards dashboard --port 0 OPTIONS` and the address ("host:port") it printed it serves on."""
        child = self.spawn(shards_command("dashboard", "--port", "0", *options), log, env=env)
        found = wait_until(lambda: not child.running or DASHBOARD_ADDRESS.search(child.output()), timeout,
                           lambda: f"the dashboard to start: {child.output()}")
        if not child.running:
            raise AssertionError(f"the dashboard exited with {child.returncode}: {child.output()}")
        return child, str(found.group(1))

    def stop_workers(self) -> None:
        reap(*(child.popen for child in self.workers), grace=self.grace)

    def close(self) -> None:
        reap(*(child.popen for child in self.others), grace=self.grace)
        self.stop_workers()
        if self.mongo is not None:
            self.mongo.stop()


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether `url` answers 200 now (a health endpoint)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
