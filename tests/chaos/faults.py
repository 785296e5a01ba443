"""The seeded timeline of a chaos run, and the injection of each fault into the running cluster."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shards.states import State
from shards_controller import Controller
from tooling.harness import EmbeddedMongo

from chaos.config import RUNAWAY, RUNAWAY_TIMEOUT, ChaosConfig, Fault
from chaos.launches import Launcher
from chaos.workers import WorkerPool

log = logging.getLogger("chaos")

STOP_TARGETS = ("slow", "stubborn", "parent")  # long enough to be caught running
FORCE_STOP_TARGETS = (RUNAWAY,)  # never return on their own: the kill is what ends them
FORCE_STOP_LEAD = 1.0  # seconds between the launch of a forced stop's own runaway and the stop
MAX_CLIENT_KILL_MISSES = 10  # clients that finished before their kill, re-planned at most this often


@dataclass
class Planned:
    """One step of the timeline: a launch (fault is None) or a fault, `at` seconds into the run."""

    at: float
    fault: Fault | None = None
    scope_id: str = ""
    process_id: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    via_client: bool = False
    timeout: float | None = None  # the run's deadline (launch(timeout=)); a runaway's only
    attempts: int = 0  # a fault that found no target is retried a bounded number of times
    deferred: bool = False  # a launch put off while Mongo was known to be down


@dataclass
class FaultEvent:
    """A fault as injected. Its victims are the runs executing on `pids` at `at` (from the
    execution log), the `run_ids` named here, or the runs a killed client requested."""

    kind: str
    at: float  # wall time
    worker_id: str = ""
    pids: list[int] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    scope_id: str = ""
    process_id: str = ""
    since: float = 0.0  # a killed client: the wall time it was spawned
    until: float = 0.0  # a Mongo fault: the wall time Mongo was back


def open_executions(exec_log: Path) -> Counter[int]:
    """Executions that started and have not ended yet, per worker pid (from the execution log)."""
    running: Counter[int] = Counter()
    text = exec_log.read_text() if exec_log.exists() else ""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0] == "start":
            running[int(fields[4])] += 1
        elif len(fields) == 4 and fields[0] == "end":
            running[int(fields[2])] -= 1
    return running


def plan_timeline(config: ChaosConfig, rng: random.Random, scopes: list[str]) -> list[Planned]:
    kinds, weights = zip(*config.mix.items(), strict=True)
    steps: list[Planned] = []
    for index in range(config.launches):
        at = config.duration * (index + rng.random()) / config.launches
        process_id = rng.choices(kinds, weights)[0]
        args: dict[str, Any] = {}
        timeout = None
        if process_id == "slow":
            args = {"seconds": round(rng.uniform(2.0, 4.0), 2)}
        elif process_id == RUNAWAY:
            # The deadline also goes in the args: the analysis reads it back from the run history.
            timeout = round(rng.uniform(*RUNAWAY_TIMEOUT), 1)
            args = {"timeout": timeout}
        steps.append(Planned(at, None, rng.choice(scopes), process_id, args,
                             via_client=rng.random() < config.cli_launch_share, timeout=timeout))
    # Faults other than stops each get a slot of their own between 10% and 85% of the run,
    # so outages do not pile onto each other and each fault's victims can be told apart.
    timed = (Fault.STOP, Fault.FORCE_STOP)  # stops are spread over the whole run, among the launches
    spread = [fault for fault in Fault if fault not in timed for _ in range(config.fault_count(fault))]
    rng.shuffle(spread)
    if spread:
        window = 0.75 * config.duration / len(spread)
        for slot, fault in enumerate(spread):
            at = 0.1 * config.duration + window * (slot + 0.5 * rng.random())
            steps.append(Planned(at, fault, rng.choice(scopes), rng.choice(kinds)))
    for fault in timed:
        for _ in range(config.fault_count(fault)):
            at = config.duration * rng.uniform(0.05, 0.9)
            steps.append(Planned(at, fault))
            if fault is Fault.FORCE_STOP:
                # It brings its target: a runaway launched just before, whose deadline comes well
                # after the stop (runaways of the mix mostly end by their deadline).
                timeout = RUNAWAY_TIMEOUT[1]
                steps.append(Planned(max(0.0, at - FORCE_STOP_LEAD), None, rng.choice(scopes), RUNAWAY,
                                     {"timeout": timeout}, timeout=timeout))
    return sorted(steps, key=lambda step: step.at)


class FaultInjector:
    def __init__(self, config: ChaosConfig, rng: random.Random, mongo: EmbeddedMongo, pool: WorkerPool,
                 launcher: Launcher, controller: Controller, exec_log: Path) -> None:
        self.config = config
        self.exec_log = exec_log
        self.rng = rng
        self.mongo = mongo
        self.pool = pool
        self.launcher = launcher
        self.controller = controller
        self.events: list[FaultEvent] = []
        self.mongo_back_at: float | None = None  # monotonic time a killed Mongo restarts
        self.outage: FaultEvent | None = None  # the Mongo fault in progress
        self.pending_client_kills: dict[int, FaultEvent] = {}  # client pid -> its event
        self.client_kill_misses = 0
        self.missed: list[Planned] = []  # faults to inject again (the drive loop takes them)

    def inject(self, step: Planned) -> bool:
        """Inject step.fault now; False when it has no target right now (retry later)."""
        assert step.fault is not None
        fault = step.fault
        if fault in (Fault.WORKER_KILL, Fault.WORKER_KILL_RESTART, Fault.WORKER_TERM):
            return self._worker_fault(fault)
        if fault in (Fault.MONGO_SHORT, Fault.MONGO_LONG):
            return self._mongo_fault(fault)
        if fault is Fault.CLIENT_KILL:
            # Aim inside the launch: a share of how long recent clients took from spawn to exit.
            typical = self.launcher.typical_client_seconds()
            low, high = self.config.client_kill_delay
            delay = self.rng.uniform(low, high) * typical if typical else self.rng.uniform(0.3, 0.9)
            client = self.launcher.launch_client(step.scope_id, step.process_id, {}, kill_after=delay,
                                                 timeout=step.timeout)
            event = FaultEvent(fault, 0.0, scope_id=step.scope_id, process_id=step.process_id,
                               since=client.spawned_at)
            self.pending_client_kills[client.popen.pid] = event
            return True
        return self._stop(force=fault is Fault.FORCE_STOP)

    def _worker_fault(self, fault: Fault) -> bool:
        if not self.mongo.up:  # a worker fault during an outage would be two faults in one
            return False
        targets = [slot for slot in self.pool.slots if slot.available]
        if not targets:
            return False
        # Prefer a worker that is executing something: a fault on an idle worker measures little.
        busy = open_executions(self.exec_log)
        most = max(busy.get(slot.pid, 0) for slot in targets)
        slot = self.rng.choice([slot for slot in targets if busy.get(slot.pid, 0) == most])
        at = time.time()
        if fault is Fault.WORKER_TERM:
            pid = self.pool.terminate(slot)
        else:
            # After a plain kill the id comes back once its lease ran out (others must settle its
            # runs); after kill-restart it comes back at once and must settle its own leftovers.
            delay = self.config.lease * self.rng.uniform(1.3, 1.7) if fault is Fault.WORKER_KILL else 0.0
            pid = self.pool.kill(slot, time.monotonic() + delay)
        self.events.append(FaultEvent(fault, at, worker_id=slot.worker_id, pids=[pid]))
        return True

    def _mongo_fault(self, fault: Fault) -> bool:
        if not self.mongo.up:
            return False
        lease = self.config.lease
        outage = lease * (self.rng.uniform(0.3, 0.6) if fault is Fault.MONGO_SHORT
                          else self.rng.uniform(1.5, 2.0))
        pids = [slot.pid for slot in self.pool.slots if slot.running]
        at = time.time()
        self.mongo.kill()
        self.mongo_back_at = time.monotonic() + outage
        self.outage = FaultEvent(fault, at, pids=pids)
        self.events.append(self.outage)
        log.info("chaos: mongo down for %.1fs (%s)", outage, fault.value)
        return True

    def _stop(self, *, force: bool) -> bool:
        """Stop a process that is executing now, preferring the most recent launches; a forced
        stop only a runaway (a kill of anything else would race with its own end)."""
        if not self.mongo.up:
            return False
        targets = FORCE_STOP_TARGETS if force else STOP_TARGETS
        candidates = [key for key in reversed(self.launcher.accepted_keys) if key[1] in targets]
        for scope_id, process_id in list(dict.fromkeys(candidates))[:8]:
            try:
                record = self.controller.get(scope_id, process_id)
                if record.state is not State.RUNNING:
                    continue
                at = time.time()
                stopped = self.controller.stop(scope_id, process_id, force=force)
            except Exception as error:  # raced with the run's end, or the store flapped
                log.info("chaos: stop of %s/%s failed: %s", scope_id, process_id, error)
                continue
            kind = Fault.FORCE_STOP if force else Fault.STOP
            self.events.append(FaultEvent(kind, at, scope_id=scope_id, process_id=process_id,
                                          run_ids=[stopped.run_id]))
            return True
        return False

    def tick(self, now: float) -> None:
        """Bring Mongo back when its outage is over; record client kills as they happen."""
        if self.mongo_back_at is not None and now >= self.mongo_back_at:
            self._mongo_back()
        for client in self.launcher.tick(now):
            event = self.pending_client_kills.pop(client.popen.pid, None)
            if event is not None and client.killed_at is not None:
                event.at = client.killed_at
                self.events.append(event)
        alive = {client.popen.pid for client in self.launcher.clients}
        for pid in [pid for pid in self.pending_client_kills if pid not in alive]:
            # The client finished before its kill: that fault did not happen; plan it again.
            event = self.pending_client_kills.pop(pid)
            self.client_kill_misses += 1
            if self.client_kill_misses <= MAX_CLIENT_KILL_MISSES:
                self.missed.append(Planned(0.0, Fault.CLIENT_KILL, event.scope_id, event.process_id))

    def restore(self) -> None:
        """End of the fault phase: Mongo up now."""
        if not self.mongo.up:
            self._mongo_back()
        self.mongo_back_at = None

    def _mongo_back(self) -> None:
        self.mongo.start()
        self.mongo_back_at = None
        if self.outage is not None:
            self.outage.until = time.time()
            self.outage = None
