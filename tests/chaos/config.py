"""What a chaos run does: sizes, timings, and which faults it injects how often."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class Fault(StrEnum):
    WORKER_KILL = "worker-kill"  # SIGKILL; restarted with the same id once its lease ran out
    WORKER_KILL_RESTART = "worker-kill-restart"  # SIGKILL; restarted with the same id at once
    WORKER_TERM = "worker-term"  # SIGTERM (graceful); restarted once it exited
    CLIENT_KILL = "client-kill"  # a `shards launch` client SIGKILLed mid-launch
    MONGO_SHORT = "mongo-short"  # Mongo SIGKILLed, back before a lease runs out
    MONGO_LONG = "mongo-long"  # Mongo SIGKILLed, back after a lease ran out
    STOP = "stop"  # controller.stop on a running process (not a fault, but timed like one)
    FORCE_STOP = "force-stop"  # controller.stop(force=True) on a running runaway: killed at once


# Not injected: a worker that exited on its own (e.g. declared lost); the suite restarts it.
WORKER_EXIT = "worker-exit"

# Runs that crash their OS process (isolated, so only the run fails), and the reason each must end with.
CRASH_REASONS: dict[str, str] = {
    "crash-exit": "exited with code 3",
    "crash-segv": "killed by signal 11 (SIGSEGV)",
    "crash-oom": "MemoryError",
}
RUNAWAY = "runaway"  # never calls should_continue(): only a kill ends it (a forced stop or its deadline)

# The mix of launched processes: kind -> weight.
DEFAULT_MIX: dict[str, float] = {
    "quick": 0.35,
    "slow": 0.2,
    "failing": 0.1,
    "exiting": 0.05,
    "stubborn": 0.1,
    "parent": 0.2,
    "flaky": 0.08,  # fails once, retried after a backoff
    **{kind: 0.03 for kind in CRASH_REASONS},
    RUNAWAY: 0.06,
}
RUNAWAY_TIMEOUT = (2.5, 4.0)  # seconds: the deadline each runaway is launched with, drawn from this
STOP_GRACE = 1.0  # the workers' --stop-grace: a stopped run that does not return is killed after it
LONGEST_PROCESS_SECONDS = 4.0  # slow runs 2-4 s, stubborn 3 s; a runaway until its deadline and grace


@dataclass
class ChaosConfig:
    seed: int = 1
    launches: int = 300
    workers: int = 3
    concurrency: int = 4
    scopes: int = 30
    lease: float = 3.0
    heartbeat: float = 0.5
    stop_grace: float = STOP_GRACE
    duration: float = 150.0  # seconds over which launches and faults are spread
    faults: dict[Fault, int] = field(
        default_factory=lambda: {
            Fault.WORKER_KILL: 4,
            Fault.WORKER_KILL_RESTART: 4,
            Fault.WORKER_TERM: 4,
            Fault.CLIENT_KILL: 8,
            Fault.MONGO_SHORT: 2,
            Fault.MONGO_LONG: 2,
            Fault.STOP: 20,
            Fault.FORCE_STOP: 8,
        }
    )
    cli_launch_share: float = 0.1  # launches made through a `shards launch` client, not killed
    # When to SIGKILL a launch client, as a share of how long clients take to finish (the
    # import alone is ~0.4 s, so a kill a few ms after spawn would never reach the store).
    client_kill_delay: tuple[float, float] = (0.7, 1.0)
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    quiescence_margin: float = 5.0
    schedules: bool = True  # interval schedules, one per overlap policy, fire throughout (chaos.schedules)
    workdir: Path | None = None  # default: a fresh temporary directory, kept for the logs

    @property
    def quiescence_bound(self) -> float:
        longest = max(LONGEST_PROCESS_SECONDS, RUNAWAY_TIMEOUT[1] + self.stop_grace)
        return self.lease + 10.0 + longest + self.quiescence_margin

    def fault_count(self, fault: Fault) -> int:
        return self.faults.get(fault, 0)
