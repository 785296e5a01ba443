"""The chaos engine: run_chaos(config) starts its own Mongo and workers, launches and injects
faults on a seeded timeline, waits for quiescence, and reports lost, duplicated and stuck runs."""

from __future__ import annotations

import json
import logging
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from shards.records import ProcessRecord, RunRecord, utcnow
from shards.schedules import ScheduleRecord
from shards.states import ACTIVE
from shards_controller import Controller
from shards_store import Store, connect
from shards_store.reconciler import OVERDUE
from tooling.harness import EmbeddedMongo, shards_env

from chaos import analysis, attempts, outcomes, schedules
from chaos.app import app as chaos_app
from chaos.config import WORKER_EXIT, ChaosConfig, Fault
from chaos.faults import FaultEvent, FaultInjector, Planned, plan_timeline
from chaos.launches import Launcher
from chaos.report import Report, print_report
from chaos.workers import STOP_TIMEOUT, WorkerPool

log = logging.getLogger("chaos")

T = TypeVar("T")
TICK = 0.02  # seconds between looks at the timeline, the workers and the clients
STORE_TIMEOUT = 2.0  # server selection timeout of the suite's own store calls
FAULT_RETRIES = 100  # a fault without a target now is retried every RETRY_AFTER seconds
RETRY_AFTER = 0.5
HISTORY_LIMIT = 100_000
SCHEDULE_SETTLE = 2.0  # seconds between the last fault (every worker running) and the schedules' pause
# A fire request lost to an outage (between the schedule's write and its request's) is armed again
# by a reconciler pass once the time is OVERDUE: the pause waits that long for a stalled schedule.
CATCH_UP_BOUND = OVERDUE + 30.0


def retrying(call: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """The suite's store calls outlive Mongo outages: retry for a bounded time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except Exception as error:
            if time.monotonic() >= deadline:
                raise
            log.info("chaos: %s failed (%s); retrying", what, error)
            time.sleep(0.5)


class ChaosRun:
    def __init__(self, config: ChaosConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.rng = random.Random(config.seed)
        self.scopes = [f"chaos-{i:02d}" for i in range(config.scopes)]
        self.exec_log = workdir / "executions.log"
        self.mongo = EmbeddedMongo(workdir / "mongo", "chaos", grace=STOP_TIMEOUT)
        options = [
            "--lease", str(config.lease), "--heartbeat", str(config.heartbeat),
            "--progress-interval", "0.2", "--concurrency", str(config.concurrency),
            # Process isolation whatever SHARDS_ISOLATION says: crashes and runaways need it.
            "--stop-grace", str(config.stop_grace), "--isolation", "process",
        ]
        self.env = shards_env(self.mongo.uri, SHARDS_CHAOS_LOG=str(self.exec_log))
        self.pool = WorkerPool(config.workers, workdir, self.env, options)
        self.store: Store | None = None
        self.worker_exits: list[FaultEvent] = []
        self.started_at = time.time()
        self.created: list[ScheduleRecord] = []  # the schedules as created, and as paused
        self.paused: list[ScheduleRecord] = []
        self.caught_up_after: float | None = None  # seconds the schedules took to catch up before the pause

    # -- phases -------------------------------------------------------------------------------
    def run(self) -> Report:
        started = time.monotonic()
        self.mongo.start()
        self.store = connect(self.mongo.uri, timeout=STORE_TIMEOUT)
        controller = Controller(self.store)
        self.pool.start_all()
        self._define_scopes(controller)
        if self.config.schedules:
            self._create_schedules(controller)
        launcher = Launcher(controller, self.env)
        injector = FaultInjector(self.config, self.rng, self.mongo, self.pool, launcher, controller,
                                 self.exec_log)
        self._drive(plan_timeline(self.config, self.rng, self.scopes), launcher, injector)
        # No more faults: Mongo up, every worker running, then wait for the dust to settle.
        injector.restore()
        self.pool.restart_all_now()
        clients_deadline = time.monotonic() + 30.0
        while launcher.clients and time.monotonic() < clients_deadline:
            injector.tick(time.monotonic())  # clients due for a kill still get it, and are counted
            time.sleep(TICK)
        launcher.settle_clients(timeout=0.0)
        if self.created:
            self._pause_schedules(controller, injector)
        quiescent_after = self._wait_quiescent(injector)
        records, history = self._snapshot()
        report = self._report(launcher, injector, records, history, quiescent_after,
                              time.monotonic() - started)
        return report

    def _define_scopes(self, controller: Controller) -> None:
        for scope in self.scopes:
            request = retrying(partial(controller.define, scope), f"define {scope}")
            retrying(partial(controller.wait_defined, request, timeout=30.0), f"wait for {scope}", 60.0)
        log.info("chaos: %d scopes defined", len(self.scopes))

    def _create_schedules(self, controller: Controller) -> None:
        for spec in schedules.specs(self.scopes):
            self.created.append(retrying(partial(controller.schedules.apply, spec), f"schedule {spec.name}"))
        log.info("chaos: %d schedules created", len(self.created))

    def _pause_schedules(self, controller: Controller, injector: FaultInjector) -> None:
        """Once every worker runs again and firing had a moment to catch up, pause each schedule:
        the end of its window (chaos.schedules); then quiescence waits for its runs to end."""
        settled_at = None
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            now = time.monotonic()
            injector.tick(now)
            self._restart_exited(now)
            if not self.pool.all_running():
                settled_at = None
            elif settled_at is None:
                settled_at = now
            elif now - settled_at >= SCHEDULE_SETTLE:
                break
            time.sleep(TICK)
        self.caught_up_after = self._wait_caught_up(injector)
        for created in self.created:
            spec = created.spec
            pause = partial(controller.schedules.pause, spec.scope_id, spec.name, "chaos: quiescence")
            self.paused.append(retrying(pause, f"pause {spec.name}"))
        log.info("chaos: %d schedules paused", len(self.paused))

    def _wait_caught_up(self, injector: FaultInjector) -> float | None:
        """Bounded wait until no schedule's next time is overdue (by more than a second); None
        when the bound ran out (the analysis then finds the times it left unaccounted for)."""
        store = self.store
        assert store is not None
        started = time.monotonic()
        while time.monotonic() - started < CATCH_UP_BOUND:
            now = time.monotonic()
            injector.tick(now)
            self._restart_exited(now)
            try:
                records = [store.schedules.get(c.spec.scope_id, c.spec.name) for c in self.created]
            except Exception as error:
                log.info("chaos: could not read schedules: %s", error)
                records = [None]
            late = utcnow() - timedelta(seconds=1.0)
            if all(r is not None and (r.next is None or r.next.fire_at > late) for r in records):
                return time.monotonic() - started
            time.sleep(0.2)
        log.warning("chaos: schedules still overdue after %.0fs; pausing them anyway", CATCH_UP_BOUND)
        return None

    def _drive(self, timeline: list[Planned], launcher: Launcher, injector: FaultInjector) -> None:
        """Play the timeline: launches and faults at their times; restarts and kills as they fall due."""
        start = time.monotonic()
        deadline = start + self.config.duration * 2 + 60.0  # bound even if every step were late
        while timeline and time.monotonic() < deadline:
            now = time.monotonic()
            injector.tick(now)
            self._restart_exited(now)
            for step in injector.missed:
                step.at = now - start + RETRY_AFTER
                timeline.append(step)
            if injector.missed:
                injector.missed.clear()
                timeline.sort(key=lambda s: s.at)
            while timeline and timeline[0].at <= now - start:
                step = timeline.pop(0)
                if step.fault is None:
                    self._launch(step, launcher, timeline)
                elif not injector.inject(step):
                    step.attempts += 1
                    if step.attempts < FAULT_RETRIES:
                        step.at += RETRY_AFTER
                        timeline.append(step)
                        timeline.sort(key=lambda s: s.at)
                    else:
                        log.warning("chaos: no target for %s; gave up", step.fault.value)
                    break
            time.sleep(TICK)

    def _launch(self, step: Planned, launcher: Launcher, timeline: list[Planned]) -> None:
        if not self.mongo.up:  # launches wait for a known outage to end rather than fail by design
            launcher.counts.deferred += 0 if step.deferred else 1
            step.deferred = True
            step.at += RETRY_AFTER
            timeline.append(step)
            timeline.sort(key=lambda s: s.at)
            return
        if step.via_client:
            launcher.launch_client(step.scope_id, step.process_id, step.args, timeout=step.timeout)
        else:
            launcher.launch(step.scope_id, step.process_id, step.args, timeout=step.timeout)

    def _restart_exited(self, now: float) -> None:
        for exit in self.pool.tick(now):
            self.worker_exits.append(FaultEvent(WORKER_EXIT, exit.at, worker_id=exit.worker_id,
                                                pids=[exit.pid]))

    def _wait_quiescent(self, injector: FaultInjector) -> float | None:
        """Bounded wait until no record is active and no history entry is Running (an entry whose
        end a killed worker never wrote is ended by a reconciler from the record); keeps restarting
        workers that exit meanwhile."""
        bound = self.config.quiescence_bound
        started = time.monotonic()
        while time.monotonic() - started < bound:
            now = time.monotonic()
            injector.tick(now)
            self._restart_exited(now)
            if self.pool.all_running() and not self._active_records() and not self._running_entries():
                return time.monotonic() - started
            time.sleep(0.5)
        return None

    def _active_records(self) -> list[ProcessRecord]:
        assert self.store is not None
        try:
            return [r for scope in self.scopes for r in self.store.processes.in_scope(scope)
                    if r.state in ACTIVE or r.queue]
        except Exception as error:  # the store is briefly unreachable: not quiescent yet
            log.info("chaos: could not read records: %s", error)
            return [ProcessRecord("?", "?", "?")]

    def _running_entries(self) -> bool:
        assert self.store is not None
        try:
            return bool(self.store.runs.executing())
        except Exception as error:  # the store is briefly unreachable: not quiescent yet
            log.info("chaos: could not read the history: %s", error)
            return True

    def _snapshot(self) -> tuple[list[ProcessRecord], dict[str, RunRecord]]:
        store = self.store
        assert store is not None
        records = retrying(lambda: [r for s in self.scopes for r in store.processes.in_scope(s)], "records")
        history: dict[str, RunRecord] = {}
        for scope in self.scopes:
            for process_id in chaos_app.process_ids:
                runs = retrying(partial(store.runs.of_process, scope, process_id, HISTORY_LIMIT), "history")
                history.update((run.run_id, run) for run in runs)
        return records, history

    def _report(self, launcher: Launcher, injector: FaultInjector, records: list[ProcessRecord],
                history: dict[str, RunRecord], quiescent_after: float | None, elapsed: float) -> Report:
        now = time.time()
        execution_log = analysis.read_execution_log(self.exec_log)
        by_run = {record.run_id: record for record in records if record.run_id}
        analysis.close_unended(execution_log, history, by_run, self.pool.pid_deaths)
        events = [*injector.events, *self.worker_exits]
        endings = outcomes.check_outcomes(execution_log, history, by_run, injector.events,
                                          self.pool.pid_deaths, self.config.stop_grace, self.config.lease)
        attempts.check_attempts(execution_log, history, events, endings,
                                schedules.stopping_runs([c.spec for c in self.created], history))
        details: list[dict[str, Any]] = []
        settle = analysis.settle_times(events, execution_log, history, by_run, details)
        schedule_checks = self._check_schedules(records, history, execution_log)
        # The fault-by-fault story, for whoever chases a defect the table points at.
        (self.workdir / "faults.json").write_text(json.dumps(details, indent=1))
        return Report(
            seed=self.config.seed,
            launches=launcher.counts,
            runs=len(execution_log.run_ids),
            final_states=analysis.final_states(history),
            lost=analysis.find_lost(launcher.accepted_run_ids, history, by_run),
            duplicated=analysis.find_duplicates(execution_log, self.pool.pid_deaths, now),
            stuck=analysis.find_stuck(records),
            wrong_endings=endings.defects,
            endings_checked=endings.checked,
            settle=settle,
            schedules=schedule_checks,
            schedules_caught_up_after=self.caught_up_after,
            injected=Counter(event.kind for event in events),
            worker_exits=[f"{e.worker_id} pid {e.pids[0]} at +{e.at - self.started_at:.1f}s"
                          for e in self.worker_exits],
            elapsed=elapsed,
            quiescent_after=quiescent_after,
            workdir=str(self.workdir),
        )

    def _check_schedules(self, records: list[ProcessRecord], history: dict[str, RunRecord],
                         execution_log: analysis.ExecutionLog) -> list[schedules.ScheduleCheck]:
        store = self.store
        assert store is not None
        targets = {(r.scope_id, r.process_id): r for r in records}
        checks = []
        for created, paused in zip(self.created, self.paused, strict=True):
            spec = created.spec
            final = retrying(partial(store.schedules.get, spec.scope_id, spec.name), f"read {spec.name}")
            if final is None:
                checks.append(schedules.ScheduleCheck(f"{spec.scope_id}/{spec.name}", spec.overlap.value,
                                                      unaccounted=["the schedule is gone"]))
                continue
            checks.append(schedules.check_schedule(created, paused, final,
                                                   targets.get((spec.scope_id, spec.process_id)),
                                                   history, execution_log))
        return checks

    def close(self) -> None:
        """Stop everything this run started, by pid; the workdir stays for the logs."""
        self.pool.stop_all()
        if self.store is not None:
            self.store.close()
        self.mongo.stop()


def run_chaos(config: ChaosConfig, *, print_table: bool = True) -> Report:
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="shards-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run = ChaosRun(config, workdir)
    try:
        report = run.run()
    finally:
        run.close()
    if print_table:
        print_report(report)
    return report


__all__ = ["ChaosConfig", "Fault", "Report", "run_chaos"]
