"""The chaos run's workers: W worker OS processes with stable ids, killed, terminated and
restarted by the pid each was started with (tooling.harness starts and reaps them).

Everything here is bounded: every wait has a timeout, and a process that does not leave on
SIGTERM in time gets SIGKILL.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from tooling.harness import Child, Processes

log = logging.getLogger("chaos")

APP_SPEC = "tests/chaos/app.py:app"
STOP_TIMEOUT = 10.0  # SIGTERM -> SIGKILL when the suite cleans up


@dataclass
class WorkerSlot:
    """One worker id; its OS process comes and goes, the id stays."""

    worker_id: str
    child: Child | None = None
    restart_at: float | None = None  # monotonic time of a planned restart
    term_deadline: float | None = None  # set while a SIGTERM is pending: SIGKILL after it
    pids: list[int] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.running

    @property
    def available(self) -> bool:
        """Running and not already on its way out: a fair target for a fault."""
        return self.running and self.term_deadline is None

    @property
    def pid(self) -> int:
        return self.child.pid if self.child is not None else 0


@dataclass
class WorkerExit:
    worker_id: str
    pid: int
    returncode: int
    at: float  # wall time the exit was noticed


class WorkerPool:
    """W worker OS processes with stable ids; records when each pid died (for the analysis)."""

    def __init__(self, count: int, workdir: Path, env: dict[str, str], options: list[str]) -> None:
        self.processes = Processes(workdir, env, grace=STOP_TIMEOUT)
        self.options = options
        self.slots = [WorkerSlot(f"w{i}") for i in range(count)]
        self.pid_deaths: dict[int, float] = {}  # pid -> wall time it was gone
        self.term_grace = 30.0  # the worker's own shutdown grace is 20 s

    def slot(self, worker_id: str) -> WorkerSlot:
        return next(slot for slot in self.slots if slot.worker_id == worker_id)

    def start(self, slot: WorkerSlot) -> None:
        slot.child = self.processes.start_worker(
            APP_SPEC, "--worker-id", slot.worker_id, *self.options,
            log=f"worker-{slot.worker_id}.log", append=True,
        )
        slot.pids.append(slot.child.pid)
        slot.restart_at = None
        slot.term_deadline = None
        log.info("chaos: worker %s started (pid %d)", slot.worker_id, slot.child.pid)

    def start_all(self) -> None:
        for slot in self.slots:
            self.start(slot)

    def kill(self, slot: WorkerSlot, restart_at: float) -> int:
        """SIGKILL the worker and plan its restart (same id) at a monotonic time."""
        assert slot.child is not None
        pid = slot.child.pid
        slot.child.kill()
        self.pid_deaths[pid] = time.time()
        slot.restart_at = restart_at
        log.info("chaos: worker %s (pid %d) killed", slot.worker_id, pid)
        return pid

    def terminate(self, slot: WorkerSlot) -> int:
        """SIGTERM: the worker stops its processes and leaves; tick() restarts it once it exited."""
        assert slot.child is not None
        slot.child.send_signal(signal.SIGTERM)
        slot.term_deadline = time.monotonic() + self.term_grace
        log.info("chaos: worker %s (pid %d) terminated", slot.worker_id, slot.child.pid)
        return slot.child.pid

    def tick(self, now: float) -> list[WorkerExit]:
        """Restart what is due, escalate overdue SIGTERMs, and report workers that exited unasked."""
        exits: list[WorkerExit] = []
        for slot in self.slots:
            child = slot.child
            if child is not None and not child.running and child.pid not in self.pid_deaths:
                self.pid_deaths[child.pid] = time.time()
                if slot.term_deadline is not None:
                    log.info("chaos: worker %s (pid %d) left after SIGTERM", slot.worker_id, child.pid)
                else:
                    exits.append(WorkerExit(slot.worker_id, child.pid, child.popen.returncode, time.time()))
                    log.warning("chaos: worker %s (pid %d) exited on its own with code %s",
                                slot.worker_id, child.pid, child.popen.returncode)
                if slot.restart_at is None:
                    slot.restart_at = now
            elif slot.term_deadline is not None and now > slot.term_deadline and slot.running:
                assert child is not None
                log.warning("chaos: worker %s ignored SIGTERM for %.0fs; killing it",
                            slot.worker_id, self.term_grace)
                child.kill()
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
        self.processes.stop_workers()
        for slot in self.slots:
            if slot.child is not None:
                self.pid_deaths.setdefault(slot.child.pid, time.time())
