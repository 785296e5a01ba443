"""Schedules under chaos: a few interval schedules of seconds, one per overlap policy, fire all
through the faults; the suite pauses them before quiescence, and the analysis checks each one's
nominal times against its record, the run history and the execution log.

The window of a schedule is from its creation (excluded: its first time comes after) to its pause
(the write that changed its generation; included). Every nominal time in it is one of:
- accounted for by the record's counts: launched (or queued), skipped, missed, or failed, each
  counted once, since a worker's write that moves the schedule past a time is guarded on it;
- cut off by the pause: a time that came due less than `slack` seconds before the pause, whose fire
  had not been written when the pause changed the generation. Its fire may have launched its run
  already (the launch comes before the guarded write, which the pause then refuses), or not at all.
  Nothing else may be missing: a time due longer ago than the slack and not counted was lost.

Runs of a schedule are attempts of launches named `name:label:scope-hash`
(shards.schedules.run_id_for), so the history tells each nominal time's runs apart:
- none twice: one launch per label, no run id started twice, and no two attempts of one launch
  executing at once; no time counted more often than the window holds; no time after the pause
  launched; no time both skipped and launched;
- none lost: at least as many launches in the history (or still queued) as the record counts
  launched, at most that plus those cut off by the pause (and those whose launch failed half-way);
  every Launched or Queued action still kept (the last 20) names a launch the history has;
- none stuck: after quiescence nothing waits in the target process's queue.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING

from shards.records import ProcessRecord, RunRecord
from shards.schedule_times import Timing, times_between
from shards.schedules import Outcome, Overlap, ScheduleRecord, ScheduleSpec, run_id_for

if TYPE_CHECKING:  # not at run time: chaos.report imports this module, and chaos.analysis chaos.report
    from chaos.analysis import Execution, ExecutionLog

SCHEDULED = "scheduled"  # the chaos process every schedule launches (chaos.app)
# Seconds before the pause within which a due time may still be in flight (see the docstring).
# Fires are claimed within a fraction of a second of their time on an idle machine; the suite
# pauses once every worker has run for 2 s after the last fault and no schedule is overdue.
PAUSE_SLACK = 3.0
CLOCK_SLACK = 0.5  # the workers' clocks against the suite's: one machine, a server-measured offset
MAX_TIMES = 100_000


@dataclass(frozen=True)
class SchedulePlan:
    name: str
    overlap: Overlap
    every: float
    buffer_limit: int = 1
    catchup_window: float = 60.0  # short on some: an outage longer than it misses times


PLANS = (
    SchedulePlan("every-2s-skip", Overlap.SKIP, 2.0, catchup_window=2.0),
    SchedulePlan("every-2s-buffer-one", Overlap.BUFFER_ONE, 2.0),
    SchedulePlan("every-1s-buffer-all", Overlap.BUFFER_ALL, 1.0, buffer_limit=3),
    SchedulePlan("every-3s-cancel-other", Overlap.CANCEL_OTHER, 3.0),
    SchedulePlan("every-1s-terminate-other", Overlap.TERMINATE_OTHER, 1.0, catchup_window=2.0),
)


def specs(scopes: list[str]) -> list[ScheduleSpec]:
    """One schedule per plan, each in a scope of its own (so each has its own target process)."""
    return [
        ScheduleSpec(name=plan.name, scope_id=scope, process_id=SCHEDULED,
                     timing=Timing(every=plan.every), overlap=plan.overlap,
                     buffer_limit=plan.buffer_limit, catchup_window=plan.catchup_window)
        for plan, scope in zip(PLANS, scopes, strict=False)
    ]


STOPPING = (Overlap.CANCEL_OTHER, Overlap.TERMINATE_OTHER)


def stopping_runs(specs: list[ScheduleSpec], history: dict[str, RunRecord]) -> frozenset[str]:
    """The runs that a schedule's own overlap policy may have stopped (or killed): those of the
    processes that CancelOther and TerminateOther schedules launch. A worker's SIGTERM racing
    such a stop ends the run Stopped with no next attempt, as a user's stop would."""
    targets = {(spec.scope_id, spec.process_id) for spec in specs if spec.overlap in STOPPING}
    return frozenset(run.run_id for run in history.values() if (run.scope_id, run.process_id) in targets)


@dataclass
class ScheduleCheck:
    """One schedule's story over its window, and what is wrong with it."""

    name: str  # scope/name
    overlap: str
    due: int = 0  # nominal times in the window
    launched: int = 0  # the record's counts
    skipped: int = 0
    missed: int = 0
    failed: int = 0
    cut_off: int = 0  # due times not counted: in flight at the pause (at most `allowed`)
    allowed: int = 0  # due times within the slack before the pause
    late: int = 0  # times within the clocks' slack after the pause: a fire may have counted them
    launches: int = 0  # launches in the history (or queued) of the window's times
    executions: int = 0  # executions in the log of those launches
    twice: list[str] = field(default_factory=list)
    unaccounted: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)

    @property
    def defects(self) -> list[str]:
        return [*self.twice, *self.unaccounted, *self.stuck]


def label_of(launch_id: str, name: str) -> str | None:
    """The nominal label in a schedule's launch id `name:label:hash`; None if not one of its."""
    if not launch_id.startswith(f"{name}:") or launch_id.count(":") < 2:
        return None
    return launch_id[len(name) + 1 : launch_id.rindex(":")]


def check_schedule(
    created: ScheduleRecord, paused: ScheduleRecord, final: ScheduleRecord,
    target: ProcessRecord | None, history: dict[str, RunRecord], log: ExecutionLog,
    slack: float = PAUSE_SLACK,
) -> ScheduleCheck:
    """`created`: the record as created; `paused`: as the pause wrote it (its updated_at is the
    pause); `final`: as read after quiescence; `target`: its process's record then; `log` with
    the ends of killed executions filled in (analysis.close_unended)."""
    spec = final.spec
    check = ScheduleCheck(f"{spec.scope_id}/{spec.name}", spec.overlap.value)
    assert created.created_at is not None and paused.updated_at is not None
    start, end = created.created_at, paused.updated_at
    nominals = times_between(spec.timing, start, end, MAX_TIMES)
    # A worker's clock a little ahead of the suite's may fire a time just after the pause's instant.
    late = times_between(spec.timing, end, end + timedelta(seconds=CLOCK_SLACK), MAX_TIMES)
    window = {run_id_for(spec.scope_id, spec.name, n.label) for n in [*nominals, *late]}
    check.due, check.late = len(nominals), len(late)
    check.allowed = sum(n.at > end - timedelta(seconds=slack) for n in nominals)
    check.launched, check.skipped, check.missed = final.launched, final.skipped, final.missed
    check.failed = final.fired - final.launched - final.skipped

    attempts: dict[str, list[RunRecord]] = defaultdict(list)  # the schedule's launches: their runs
    for run in history.values():
        if run.scope_id == spec.scope_id and run.process_id == spec.process_id and not run.parent_run_id:
            attempts[run.launch_id or run.run_id].append(run)
    queued = [q.run_id for q in target.queue] if target is not None else []
    launch_ids = set(attempts) | set(queued)
    check.launches = len(launch_ids & window)
    _check_labels(check, spec, launch_ids, window, f"{_at(start)} to {_at(end)}, the pause")
    _check_executions(check, spec, attempts, log)
    _check_counts(check, slack)
    _check_actions(check, final, launch_ids, end)
    if final.generation != paused.generation or not final.paused:
        check.twice.append(f"{check.name}: changed after its pause (generation {paused.generation} -> "
                           f"{final.generation}, paused {final.paused})")
    if queued:  # (3) none stuck
        check.stuck.append(f"{check.name}: {len(queued)} launches still queued after quiescence: "
                           f"{', '.join(queued)}")
    return check


def _check_labels(check: ScheduleCheck, spec: ScheduleSpec, launch_ids: set[str], window: set[str],
                  span: str) -> None:
    """One launch per label, each a nominal time of the window."""
    labels: Counter[str] = Counter()
    for launch_id in sorted(launch_ids):
        label = label_of(launch_id, spec.name)
        if label is None:
            check.twice.append(f"{check.name}: launch {launch_id} is no nominal time of the schedule")
            continue
        labels[label] += 1
        if launch_id not in window:
            check.twice.append(f"{check.name}: {label} launched, outside its window ({span})")
    check.twice += [f"{check.name}: {label} launched {count} times"
                    for label, count in labels.items() if count > 1]


def _check_executions(check: ScheduleCheck, spec: ScheduleSpec, attempts: dict[str, list[RunRecord]],
                      log: ExecutionLog) -> None:
    """(1) Each run id executed once; the attempts of one launch one after another, never at once."""
    launch_of = {run.run_id: launch for launch, runs in attempts.items() for run in runs}
    by_launch: dict[str, list[Execution]] = defaultdict(list)
    for execution in log.executions:
        if execution.scope_id == spec.scope_id and execution.process_id == spec.process_id:
            by_launch[launch_of.get(execution.run_id, execution.run_id)].append(execution)
    for launch_id, executions in sorted(by_launch.items()):
        check.executions += len(executions)
        starts = Counter(e.run_id for e in executions)
        check.twice += [f"{check.name}: run {run_id} executed {count} times"
                        for run_id, count in starts.items() if count > 1]
        executions.sort(key=lambda e: e.started)
        for first, second in pairwise(executions):
            if first.run_id != second.run_id and (first.ended is None or second.started < first.ended):
                check.twice.append(f"{check.name}: {launch_id} executed by two attempts at once "
                                   f"({first.run_id} and {second.run_id})")


def _check_counts(check: ScheduleCheck, slack: float) -> None:
    """(2) Every due time counted once, but those in flight at the pause; as many launches as
    counted launched, give or take those in flight and those whose launch failed half-way."""
    accounted = check.launched + check.skipped + check.missed + check.failed
    if accounted > check.due + check.late:
        check.twice.append(f"{check.name}: {accounted} nominal times counted, only {check.due} came due")
    else:
        check.cut_off = max(0, check.due - accounted)
        if check.cut_off > check.allowed:
            check.unaccounted.append(
                f"{check.name}: {check.cut_off} of {check.due} due times neither launched, skipped, "
                f"missed nor failed; only {check.allowed} came due in the {slack:g}s before the pause")
    if check.launches < check.launched:
        check.unaccounted.append(f"{check.name}: {check.launched} times counted launched, only "
                                 f"{check.launches} launches in the history or queue (lost fires)")
    elif check.launches > check.launched + check.cut_off + check.failed + check.late:
        check.twice.append(f"{check.name}: {check.launches} launches in the history, {check.launched} "
                           f"counted launched and {check.cut_off} in flight at the pause")


def _check_actions(check: ScheduleCheck, final: ScheduleRecord, launch_ids: set[str], end: datetime) -> None:
    """The actions the record still keeps (its last 20) agree with the history, and none came
    after the pause."""
    for action in final.actions:
        what = f"{check.name}: {action.label or 'missed'} {action.outcome.value}"
        if action.outcome in (Outcome.LAUNCHED, Outcome.QUEUED) and action.run_id not in launch_ids:
            check.unaccounted.append(f"{what} ({action.detail}), no run {action.run_id} in the history "
                                     "or queue")
        elif action.outcome is Outcome.SKIPPED and action.run_id in launch_ids:
            check.twice.append(f"{what} ({action.detail}), and launched")
        if action.at is not None and action.at > end + timedelta(seconds=CLOCK_SLACK):
            check.twice.append(f"{what} at {_at(action.at)}, after the pause at {_at(end)}")


def _at(at: datetime) -> str:
    return at.strftime("%H:%M:%S.%f")[:-3]


@dataclass
class ScheduleTotals:
    schedules: int = 0
    due: int = 0
    launched: int = 0
    skipped: int = 0
    missed: int = 0
    failed: int = 0
    cut_off: int = 0
    executions: int = 0
    twice: int = 0  # defects of each rule
    unaccounted: int = 0
    stuck: int = 0


def totals(checks: list[ScheduleCheck]) -> ScheduleTotals:
    total = ScheduleTotals(schedules=len(checks))
    for check in checks:
        total.due += check.due
        total.launched += check.launched
        total.skipped += check.skipped
        total.missed += check.missed
        total.failed += check.failed
        total.cut_off += check.cut_off
        total.executions += check.executions
        total.twice += len(check.twice)
        total.unaccounted += len(check.unaccounted)
        total.stuck += len(check.stuck)
    return total
