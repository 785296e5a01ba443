"""Launches: in-process through the controller, or through `shards launch` clients (some killed)."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from shards.errors import ProcessActive
from shards_controller import Controller
from tooling.harness import REPO, reap, shards_command

from chaos.workers import STOP_TIMEOUT

log = logging.getLogger("chaos")


@dataclass
class LaunchCounts:
    attempted: int = 0
    accepted: int = 0
    refused: int = 0  # ProcessActive: the process was still active; expected under load
    client_killed: int = 0
    errored: int = 0  # the store was unreachable, or the client failed otherwise
    deferred: int = 0  # postponed because the suite knew Mongo was down


@dataclass
class LaunchClient:
    """A `shards launch` OS process; kill_at (monotonic) set for a client-kill fault."""

    popen: subprocess.Popen[bytes]
    scope_id: str
    process_id: str
    spawned_at: float  # wall time
    kill_at: float | None = None
    killed_at: float | None = None  # wall time, once killed


@dataclass
class Launcher:
    controller: Controller
    env: dict[str, str]
    counts: LaunchCounts = field(default_factory=LaunchCounts)
    accepted_run_ids: list[str] = field(default_factory=list)
    accepted_keys: list[tuple[str, str]] = field(default_factory=list)  # (scope, process), in order
    clients: list[LaunchClient] = field(default_factory=list)
    client_seconds: list[float] = field(default_factory=list)  # spawn to exit of unkilled clients

    def launch(self, scope_id: str, process_id: str, args: dict[str, Any],
               timeout: float | None = None) -> None:
        self.counts.attempted += 1
        try:
            record = self.controller.launch(scope_id, process_id, args=args, timeout=timeout)
        except ProcessActive:
            self.counts.refused += 1
            return
        except Exception as error:  # the store is down or flapping: count it, never crash the suite
            self.counts.errored += 1
            log.info("chaos: launch of %s/%s failed: %s", scope_id, process_id, error)
            return
        self.counts.accepted += 1
        self.accepted_run_ids.append(record.run_id)
        self.accepted_keys.append((scope_id, process_id))

    def launch_client(
        self, scope_id: str, process_id: str, args: dict[str, Any], kill_after: float | None = None,
        timeout: float | None = None,
    ) -> LaunchClient:
        self.counts.attempted += 1
        command = shards_command(
            "launch", process_id, "--scope", scope_id, "--args", json.dumps(args),
            *([] if timeout is None else ["--timeout", str(timeout)]),
        )
        popen = subprocess.Popen(
            command, cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        kill_at = None if kill_after is None else time.monotonic() + kill_after
        client = LaunchClient(popen, scope_id, process_id, time.time(), kill_at)
        self.clients.append(client)
        return client

    def tick(self, now: float) -> list[LaunchClient]:
        """Kill clients whose time came, account for the ones that ended; returns the killed."""
        killed: list[LaunchClient] = []
        for client in list(self.clients):
            popen = client.popen
            if popen.poll() is None:
                if client.kill_at is not None and now >= client.kill_at:
                    reap(popen, grace=STOP_TIMEOUT, sig=signal.SIGKILL)
                    client.killed_at = time.time()
                    self.counts.client_killed += 1
                    killed.append(client)
                    self._forget(client)
                continue
            self._account(client)
            self._forget(client)
        return killed

    def typical_client_seconds(self) -> float | None:
        """The median spawn-to-exit time of the last clients that were not killed."""
        recent = sorted(self.client_seconds[-9:])
        return recent[len(recent) // 2] if recent else None

    def _account(self, client: LaunchClient) -> None:
        self.client_seconds.append(time.time() - client.spawned_at)
        stderr = client.popen.stderr.read().decode(errors="replace") if client.popen.stderr else ""
        if client.popen.returncode == 0:
            self.counts.accepted += 1
            self.accepted_keys.append((client.scope_id, client.process_id))
        elif "already active" in stderr:
            self.counts.refused += 1
        else:
            self.counts.errored += 1
            log.info("chaos: launch client for %s/%s failed: %s", client.scope_id, client.process_id,
                     stderr.strip()[:200])

    def _forget(self, client: LaunchClient) -> None:
        if client.popen.stderr is not None:
            client.popen.stderr.close()
        self.clients.remove(client)

    def settle_clients(self, timeout: float) -> None:
        """Bounded wait for the remaining clients; kill those that do not finish."""
        deadline = time.monotonic() + timeout
        while self.clients and time.monotonic() < deadline:
            self.tick(time.monotonic())
            time.sleep(0.05)
        for client in list(self.clients):
            reap(client.popen, grace=STOP_TIMEOUT, sig=signal.SIGKILL)
            self.counts.errored += 1
            self._forget(client)
