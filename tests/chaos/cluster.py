"""The processes a chaos run owns: its embedded MongoDB and its workers, started and stopped by pid.

Everything here is bounded: every wait has a timeout, and a process that does not leave on
SIGTERM in time gets SIGKILL.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from shards_store.embedded import free_port, start_embedded

log = logging.getLogger("chaos")

REPO = Path(__file__).resolve().parents[2]
APP_SPEC = "tests/chaos/app.py:app"
STOP_TIMEOUT = 10.0  # SIGTERM -> SIGKILL when the suite cleans up


def _reap(popen: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for a process to exit, SIGKILLing it when it will not (bounded either way)."""
    try:
        popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=STOP_TIMEOUT)


class MongoServer:
    """NX-27017 on a fixed loopback port and data dir, so a SIGKILLed server can come back as itself."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/chaos"
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def up(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        """Start (or restart) the server; returns once the port listens again."""
        self.popen = start_embedded(self.port, self.data_dir)
        log.info("chaos: mongo up on port %d (pid %d)", self.port, self.popen.pid)

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=STOP_TIMEOUT)
            log.info("chaos: mongo (pid %d) killed", self.popen.pid)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            _reap(self.popen, STOP_TIMEOUT)


@dataclass
class WorkerSlot:
    """One worker id; its OS process comes and goes, the id stays."""

    worker_id: str
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    restart_at: float | None = None  # monotonic time of a planned restart
    term_deadline: float | None = None  # set while a SIGTERM is pending: SIGKILL after it
    pids: list[int] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def available(self) -> bool:
        """Running and not already on its way out: a fair target for a fault."""
        return self.running and self.term_deadline is None

    @property
    def pid(self) -> int:
        return self.popen.pid if self.popen is not None else 0


@dataclass
class WorkerExit:
    worker_id: str
    pid: int
    returncode: int
    at: float  # wall time the exit was noticed


class WorkerPool:
    """W worker OS processes with stable ids; records when each pid died (for the analysis)."""

    def __init__(self, count: int, workdir: Path, env: dict[str, str], options: list[str]) -> None:
        self.env = env
        self.options = options
        self.slots = [WorkerSlot(f"w{i}", workdir / f"worker-w{i}.log") for i in range(count)]
        self.pid_deaths: dict[int, float] = {}  # pid -> wall time it was gone
        self.term_grace = 30.0  # the worker's own shutdown grace is 20 s

    def slot(self, worker_id: str) -> WorkerSlot:
        return next(slot for slot in self.slots if slot.worker_id == worker_id)

    def start(self, slot: WorkerSlot) -> None:
        command = [
            sys.executable, "-m", "shards_cli", "worker", APP_SPEC,
            "--worker-id", slot.worker_id, *self.options,
        ]
        with slot.log_path.open("ab") as sink:
            slot.popen = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=sink, stderr=subprocess.STDOUT
            )
        slot.pids.append(slot.popen.pid)
        slot.restart_at = None
        slot.term_deadline = None
        log.info("chaos: worker %s started (pid %d)", slot.worker_id, slot.popen.pid)

    def start_all(self) -> None:
        for slot in self.slots:
            self.start(slot)

    def kill(self, slot: WorkerSlot, restart_at: float) -> int:
        """SIGKILL the worker and plan its restart (same id) at a monotonic time."""
        assert slot.popen is not None
        pid = slot.popen.pid
        slot.popen.kill()
        slot.popen.wait(timeout=STOP_TIMEOUT)
        self.pid_deaths[pid] = time.time()
        slot.restart_at = restart_at
        log.info("chaos: worker %s (pid %d) killed", slot.worker_id, pid)
        return pid

    def terminate(self, slot: WorkerSlot) -> int:
        """SIGTERM: the worker stops its processes and leaves; tick() restarts it once it exited."""
        assert slot.popen is not None
        slot.popen.send_signal(signal.SIGTERM)
        slot.term_deadline = time.monotonic() + self.term_grace
        log.info("chaos: worker %s (pid %d) terminated", slot.worker_id, slot.popen.pid)
        return slot.popen.pid

    def tick(self, now: float) -> list[WorkerExit]:
        """Restart what is due, escalate overdue SIGTERMs, and report workers that exited unasked."""
        exits: list[WorkerExit] = []
        for slot in self.slots:
            popen = slot.popen
            if popen is not None and popen.poll() is not None and popen.pid not in self.pid_deaths:
                self.pid_deaths[popen.pid] = time.time()
                if slot.term_deadline is not None:
                    log.info("chaos: worker %s (pid %d) left after SIGTERM", slot.worker_id, popen.pid)
                else:
                    exits.append(WorkerExit(slot.worker_id, popen.pid, popen.returncode, time.time()))
                    log.warning("chaos: worker %s (pid %d) exited on its own with code %s",
                                slot.worker_id, popen.pid, popen.returncode)
                if slot.restart_at is None:
                    slot.restart_at = now
            elif slot.term_deadline is not None and now > slot.term_deadline and slot.running:
                assert popen is not None
                log.warning("chaos: worker %s ignored SIGTERM for %.0fs; killing it",
                            slot.worker_id, self.term_grace)
                popen.kill()
                popen.wait(timeout=STOP_TIMEOUT)
            if not slot.running and slot.restart_at is not None and now >= slot.restart_at:
                self.start(slot)
        return exits

    def restart_all_now(self) -> None:
        """End of the fault phase: planned restarts happen now."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.restart_at is not None:
                slot.restart_at = now

    def all_running(self) -> bool:
        return all(slot.running and slot.term_deadline is None for slot in self.slots)

    def pid_owner(self) -> dict[int, str]:
        return {pid: slot.worker_id for slot in self.slots for pid in slot.pids}

    def stop_all(self) -> None:
        for slot in self.slots:
            if slot.running:
                assert slot.popen is not None
                slot.popen.send_signal(signal.SIGTERM)
        for slot in self.slots:
            if slot.popen is not None:
                _reap(slot.popen, STOP_TIMEOUT)
                self.pid_deaths.setdefault(slot.popen.pid, time.time())


def worker_env(mongo_uri: str, chaos_log: Path) -> dict[str, str]:
    env = {**os.environ, "SHARDS_MONGO_URI": mongo_uri, "SHARDS_CHAOS_LOG": str(chaos_log)}
    env.pop("SHARDS_SCOPE", None)
    return env
