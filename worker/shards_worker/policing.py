"""Policing this worker's runs: deliver stops, apply deadlines and grace periods (the rules are
shards_worker.policy), kill isolated runs that do not stop, and hand runs off at shutdown."""

from __future__ import annotations

import logging
import threading
import time

from shards.retries import Cause
from shards.states import State
from shards_store import Store

from shards_worker.ledger import Ledger
from shards_worker.logs import about
from shards_worker.policy import decide

log = logging.getLogger("shards.worker")

POLICE_INTERVAL = 0.1  # seconds between looks at deadlines and grace periods


class Policing:
    def __init__(self, store: Store, ledger: Ledger, *, stop_grace: float) -> None:
        self.store = store
        self.ledger = ledger
        self.stop_grace = stop_grace  # seconds after a stop before an isolated run is killed

    def stop_run(self, run_id: str, *, force: bool = False) -> bool:
        """Flip the stop flag of a run on this worker and record Stopping. A forced stop kills
        an isolated run at once (see police)."""
        run = self.ledger.get(run_id)
        if run is None:
            return False
        forced_before = run.clock.forced
        run.ask_stop(force=force)
        if run.stop_recorded and (not force or forced_before):
            return True  # the same stop by its other way (request and heartbeat): once is enough
        run.stop_recorded = True
        record = run.record
        self.store.processes.move(record.scope_id, record.process_id, State.STOPPING, run_id=run_id)
        log.info("stopping%s", " (forced: killed at once)" if force else "", extra=about(record))
        return True

    def stop_all(self, reason: str = "", ended_by: Cause | None = None) -> None:
        """Ask every run to stop; `reason` becomes the error of the runs that end Stopped.
        ended_by: the worker is losing its lease, so its launches may retry elsewhere."""
        for run in self.ledger.executions():
            # A run already stopping (a user's stop, its deadline) ends for that reason.
            if run.parent is None and ended_by is not None and not run.stop_requested():
                run.ended_by = ended_by
            run.ask_stop(reason)

    def hand_off_all(self, worker_id: str) -> None:
        """A shutdown: ask every run to stop; the launches of processes whose policy is
        on_shutdown="retry" run again elsewhere once they have ended here (a hand-off)."""
        for run in self.ledger.executions():
            # A run already stopping (a user's stop, a schedule's CancelOther) ends for that reason.
            if run.parent is None and run.definition.on_shutdown == "retry" and not run.stop_requested():
                run.ended_by = Cause.HANDOFF
                run.ask_stop(f"handed off: worker {worker_id} shut down")
            else:
                run.ask_stop()

    def police(self, now: float) -> None:
        """Deadlines and grace periods of the top-level runs: ask a run past its deadline to
        stop, kill an isolated run whose stop was forced or whose grace is over. Never touches
        the store."""
        for run in self.ledger.executions():
            if run.parent is not None or run.killed:
                continue
            action = decide(run.clock, now, grace=self.stop_grace, killable=run.kill is not None)
            record = run.record
            if action is not None and action.kind == "stop":
                run.clock.deadline_hit = True
                run.ask_stop(action.reason)
                log.info("%s; asking it to stop", action.reason, extra=about(record))
            elif action is not None and run.kill is not None:
                log.warning("killing its process (%s)", "forced stop" if run.clock.forced
                            else "grace is over", extra=about(record))
                run.killed = True
                run.kill()

    def kill_all(self, reason: str = "") -> None:
        """Kill the isolated runs that still execute (a worker leaving after its grace, or
        losing its lease); `reason` becomes their error."""
        for run in self.ledger.executions():
            if run.parent is None and run.kill is not None and not run.killed:
                run.clock.kill_reason = run.clock.kill_reason or reason
                run.killed = True
                run.kill()

    def patrol(self, closed: threading.Event) -> None:
        """The policing thread, until the worker leaves."""
        while not closed.wait(POLICE_INTERVAL):
            try:
                self.police(time.monotonic())
            except Exception:  # a bug must not end the policing
                log.exception("policing runs failed")
