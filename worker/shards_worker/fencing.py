"""The fence: this worker's runs never outlive its lease. At half the lease without a renewal the
worker claims nothing and asks its runs to stop; near its end (see shards_worker.lease) it kills
the OS processes of those that still execute. The worker itself stays: it keeps trying MongoDB,
and once back it records those ends (hand-offs: shards.retries) and claims again.

Only code the worker cannot kill makes it exit: a run in one of its own threads
(`--isolation thread`, or a frozen run's OS process the kill has not ended) that still executes
at the end of the lease ends with the process, as the only way to keep it from overlapping a
relaunch elsewhere. Never touches the store, so a hung store call cannot delay it."""

from __future__ import annotations

import logging
import os

from shards.retries import Cause

from shards_worker.lease import Lease
from shards_worker.ledger import Ledger
from shards_worker.policing import Policing
from shards_worker.runs import Run
from shards_worker.state import WorkerState

log = logging.getLogger("shards.worker")

EXIT_LEASE_LOST = 75  # the process exits with this when runs outlive its lease (EX_TEMPFAIL)


class Fence:
    def __init__(self, state: WorkerState, lease: Lease, ledger: Ledger, policing: Policing) -> None:
        self.state = state
        self.lease = lease
        self.ledger = ledger
        self.policing = policing

    def watch_until_closed(self) -> None:
        """The fence's thread, until the worker leaves."""
        while not self.state.closed.wait(min(0.1, self.lease.seconds / 30)):
            self.check()

    def check(self) -> None:
        state, lease = self.state, self.lease
        if lease.runs_must_stop() and not state.fenced.is_set():
            state.fenced.set()
            silence = lease.silence()
            log.warning("no heartbeat for %.1fs; stopping %d runs so that none outlives the lease (%gs)",
                        silence, len(self.ledger.executions()), lease.seconds)
            self.policing.stop_all(f"stopped: worker {state.id} lost contact with MongoDB for "
                                   f"{silence:.0f}s, so it could not keep its lease", Cause.WORKER_LOST)
        if not lease.runs_must_end():
            return
        # Code still executing counts: not an ended run's history write, nor a run whose OS process
        # was SIGKILLed (it executes nothing more; its supervisor has yet to see it exit), nor an
        # inline child of such a run (it executed in that process).
        running = [run for run in self.ledger.executions() if not run.body_over and not _top(run).killed]
        killable = [run for run in running if run.parent is None and run.kill is not None]
        if killable:
            log.warning("%d runs still execute near the end of the lease; killing their processes",
                        len(killable))
            self.policing.kill_all(f"killed: worker {state.id} lost contact with MongoDB for "
                                   f"{lease.silence():.0f}s, so it could not keep its lease")
        unkillable = [run for run in running if _top(run).kill is None]
        if unkillable:
            log.critical("%d runs still execute in this worker's threads at the end of the lease; "
                         "exiting so that they cannot overlap with a relaunch elsewhere", len(unkillable))
            logging.shutdown()
            os._exit(EXIT_LEASE_LOST)


def _top(run: Run) -> Run:
    while run.parent is not None:
        run = run.parent
    return run
