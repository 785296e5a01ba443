"""How the runs that misbehave on purpose must end, and the runs that shared a worker with a crash.

A crash of an isolated run (os._exit, a segfault, MemoryError) fails that run alone, with a reason
that names the crash; its worker keeps serving, and the runs beside it end as they would alone.
A runaway never returns: a forced stop kills it at once, a plain stop after the grace, its deadline
after the deadline and the grace; each in bounded time, each with its own reason.

A run that an injected fault also hit (a worker killed, Mongo down, a launch client killed) is left
to the lost, duplicated and stuck rules: how it ended is that fault's story, not this one's. Mongo
down hits every run on its workers until a lease after it is back (a worker may still fence its
runs just after its lease renewed: it stops them, and they end Stopped, killed after the grace or
at the end of its lease, and are handed off).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from shards.records import ProcessRecord, RunRecord
from shards.states import State
from shards_worker.policy import deadline_reason

from chaos.analysis import Execution, ExecutionLog, final_time, victims
from chaos.app import RUNAWAY_OWN_TIMEOUT
from chaos.config import CRASH_REASONS, RUNAWAY, Fault
from chaos.faults import FaultEvent

CRASH_EXIT_WINDOW = 5.0  # a worker that dies this soon after a crash on it, unprovoked, died of it
KILL_BOUND = 3.0  # seconds a due kill may take to show as the run's end (the policies look every 0.1 s)
CLOCK_SLACK = 0.5  # the log's start is a little after the worker starts a run's clock
STOPS = (Fault.STOP.value, Fault.FORCE_STOP.value)
# How a worker's lease fence stops its runs once it could not reach Mongo for half its lease. Mongo's
# doing, never a crash's: a run may end so beside a crash too (also when it started just after an
# outage, so that no fault's victims name it).
FENCED = re.compile(r"^(stopped|killed): worker \S+ lost contact with MongoDB")

# How each kind ends when nothing but itself happens to it.
EXPECTED_ALONE: dict[str, tuple[State, str]] = {
    "quick": (State.DONE, ""),
    "slow": (State.DONE, ""),
    "stubborn": (State.DONE, ""),
    "parent": (State.DONE, ""),
    "failing": (State.FAILED, "chaos failure on purpose"),
    "exiting": (State.FAILED, "the process called sys.exit(3)"),
    **{kind: (State.FAILED, reason) for kind, reason in CRASH_REASONS.items()},
}


@dataclass
class Outcomes:
    checked: Counter[str] = field(default_factory=Counter)  # rule -> runs it checked
    defects: list[str] = field(default_factory=list)


@dataclass
class Story:
    """What the analysis knows of one run: its history entry, its execution, its end."""

    run: RunRecord
    execution: Execution | None
    ended: float

    @property
    def started(self) -> float | None:
        if self.execution is not None:
            return self.execution.started
        return self.run.started_at.timestamp() if self.run.started_at is not None else None

    def name(self) -> str:
        return f"{self.run.scope_id}/{self.run.process_id} run {self.run.run_id[:8]}"

    def ending(self) -> str:
        return f"{self.run.state.value} {self.run.error!r}"


def check_outcomes(
    log: ExecutionLog, history: dict[str, RunRecord], records: dict[str, ProcessRecord],
    injected: list[FaultEvent], pid_deaths: dict[int, float], grace: float, lease: float,
) -> Outcomes:
    """`injected`: the faults the suite injected (stops included), not workers that left on their
    own; `log` with the ends of killed executions filled in (analysis.close_unended)."""
    first_execution: dict[str, Execution] = {}
    by_pid: dict[int, list[Execution]] = defaultdict(list)
    for execution in log.executions:
        first_execution.setdefault(execution.run_id, execution)
        by_pid[execution.pid].append(execution)
    stops = {run_id: event for event in injected if event.kind in STOPS for run_id in event.run_ids}
    hit = {run_id for event in injected if event.kind not in STOPS
           for run_id in victims(event, log, history)}
    hit |= {execution.run_id for event in injected if event.until
            for execution in log.executions if execution.pid in event.pids
            and execution.started <= event.until + lease
            and (execution.ended is None or execution.ended > event.at)}
    outcomes = Outcomes()
    for run in history.values():
        ended = final_time(run.run_id, history, records)
        if run.parent_run_id or run.run_id in hit or ended is None:
            continue  # children end with their parent; unsettled runs are the lost rule's
        story = Story(run, first_execution.get(run.run_id), ended)
        if run.process_id in CRASH_REASONS and story.execution is not None:
            _check_crash(story, outcomes, history, records, by_pid, stops, hit, injected, pid_deaths)
        elif run.process_id == RUNAWAY:
            _check_runaway(story, stops.get(run.run_id), grace, outcomes)
    return outcomes


def _check_crash(
    crash: Story, outcomes: Outcomes, history: dict[str, RunRecord], records: dict[str, ProcessRecord],
    by_pid: dict[int, list[Execution]], stops: dict[str, FaultEvent], hit: set[str],
    injected: list[FaultEvent], pid_deaths: dict[int, float],
) -> None:
    assert crash.execution is not None
    outcomes.checked["crash"] += 1
    reason = CRASH_REASONS[crash.run.process_id]
    if (crash.run.state, crash.run.error) != (State.FAILED, reason):
        outcomes.defects.append(f"{crash.name()} ended {crash.ending()}, not Failed {reason!r}")
    # Its worker keeps serving: it does not die soon after, unless a fault injected on it says why.
    pid = crash.execution.pid
    death = pid_deaths.get(pid)
    if death is not None and death <= crash.ended + CRASH_EXIT_WINDOW and not any(
        pid in event.pids and crash.execution.started - CRASH_EXIT_WINDOW <= event.at <= death
        for event in injected
    ):
        outcomes.defects.append(f"{crash.name()}: its worker (pid {pid}) left "
                                f"{death - crash.ended:+.1f}s after the crash, with no fault injected on it")
    # The runs beside it on that worker end as they would alone.
    for other in by_pid[pid]:
        run = history.get(other.run_id)
        if (other.run_id == crash.run.run_id or run is None or run.parent_run_id
                or other.started >= crash.ended
                or (other.ended is not None and other.ended <= crash.execution.started)):
            continue
        outcomes.checked["beside a crash"] += 1
        if other.run_id in hit or other.run_id in stops or run.process_id not in EXPECTED_ALONE:
            continue  # its ending is a stop's or a fault's, or a runaway's (checked on its own)
        if final_time(other.run_id, history, records) is None:
            continue  # lost: the lost rule reports it
        expected = EXPECTED_ALONE[run.process_id]
        fenced = run.state is State.STOPPED and FENCED.match(run.error)
        if (run.state, run.error) != expected and not fenced:
            outcomes.defects.append(
                f"{run.scope_id}/{run.process_id} run {run.run_id[:8]}, beside crashed {crash.name()}, "
                f"ended {run.state.value} {run.error!r}, not {expected[0].value} {expected[1]!r}"
            )


def _check_runaway(runaway: Story, stop: FaultEvent | None, grace: float, outcomes: Outcomes) -> None:
    """A forced stop kills at once; a stop after the grace; else the deadline fails the run after
    its grace. A stop close to the deadline may lose the race to it: either ending is right then."""
    started = runaway.started
    if started is None:
        outcomes.defects.append(f"{runaway.name()} ended {runaway.ending()} without ever starting")
        return
    timeout = float(runaway.run.args.get("timeout", RUNAWAY_OWN_TIMEOUT))
    deadline_at = started + timeout
    by_deadline = (State.FAILED, deadline_reason(timeout))
    if stop is None:
        rule, since, bound = "deadline", deadline_at, grace + KILL_BOUND
        allowed = [by_deadline]
        if runaway.ended < deadline_at - CLOCK_SLACK:
            outcomes.defects.append(f"{runaway.name()} ended {deadline_at - runaway.ended:.2f}s "
                                    f"before its {timeout:g} s deadline")
    elif stop.kind == Fault.FORCE_STOP.value:
        rule, since, bound = "forced stop", stop.at, KILL_BOUND
        allowed = [(State.STOPPED, "killed by a forced stop")]
        if stop.at >= deadline_at - CLOCK_SLACK:
            allowed.append(by_deadline)
    else:
        rule, since, bound = "stop after grace", stop.at, grace + KILL_BOUND
        allowed = [(State.STOPPED, f"killed after {grace:g} s grace")]
        if stop.at + grace >= deadline_at - CLOCK_SLACK:
            allowed.append(by_deadline)
    outcomes.checked[f"runaway, {rule}"] += 1
    if (runaway.run.state, runaway.run.error) not in allowed:
        wanted = " or ".join(f"{state.value} {reason!r}" for state, reason in allowed)
        outcomes.defects.append(f"{runaway.name()} ({rule}) ended {runaway.ending()}, not {wanted}")
    if runaway.ended - since > bound:
        outcomes.defects.append(f"{runaway.name()} ({rule}) ended {runaway.ended - since:.2f}s after "
                                f"its {'deadline' if stop is None else 'stop'} (bound {bound:g}s)")
