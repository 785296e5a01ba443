"""How the attempts of each launch must line up: retries and hand-offs under faults.

A launch's attempts are its runs in the history with one launch id: numbered 1, 2, ... without
a gap or a repeat (settlers of one attempt queue one next attempt), none after a Done, at most
one Done (no launch completes twice). A `flaky` launch that no fault touched fails once and is
Done on its retry, which came no sooner than half its backoff. A run that a worker shutting down
(SIGTERM) stopped is handed off: its launch has a next attempt.
"""

from __future__ import annotations

from collections import defaultdict

from shards.records import RunRecord
from shards.states import State

from chaos.analysis import ExecutionLog, victims
from chaos.app import FLAKY_BACKOFF, FLAKY_ERROR
from chaos.config import Fault
from chaos.faults import FaultEvent
from chaos.outcomes import STOPS, Outcomes

CLOCK_SLACK = 0.05  # seconds: the history's times are the workers' clocks, to the millisecond


def launches(history: dict[str, RunRecord]) -> dict[str, list[RunRecord]]:
    """The top-level runs of each launch, by launch id, in attempt order."""
    grouped: dict[str, list[RunRecord]] = defaultdict(list)
    for run in history.values():
        if not run.parent_run_id:
            grouped[run.launch_id].append(run)
    return {launch: sorted(runs, key=lambda run: run.attempt) for launch, runs in grouped.items()}


def check_attempts(log: ExecutionLog, history: dict[str, RunRecord], injected: list[FaultEvent],
                   outcomes: Outcomes, stopped_otherwise: frozenset[str] = frozenset()) -> None:
    """`stopped_otherwise`: runs that a stop the suite did not make may have ended (a schedule's
    CancelOther or TerminateOther): like the suite's own stops, such a stop ends the launch."""
    by_launch = launches(history)
    hit = {run_id for event in injected for run_id in victims(event, log, history)}
    for launch_id, runs in by_launch.items():
        name = f"{runs[0].scope_id}/{runs[0].process_id} launch {launch_id[:8]}"
        numbers = [run.attempt for run in runs]
        outcomes.checked["attempts"] += 1
        if numbers != list(range(1, len(runs) + 1)):
            outcomes.defects.append(f"{name}: attempts {numbers}, not 1..{len(runs)}")
        if State.DONE in [run.state for run in runs[:-1]]:
            outcomes.defects.append(f"{name}: an attempt after a Done ({_states(runs)})")
        if runs[0].process_id == "flaky" and not any(run.run_id in hit for run in runs):
            _check_flaky(name, runs, outcomes)
    for event in injected:
        if event.kind == Fault.WORKER_TERM.value:
            _check_handoff(event, log, history, by_launch, injected, outcomes, stopped_otherwise)


def _states(runs: list[RunRecord]) -> str:
    return ", ".join(f"{run.attempt}:{run.state.value}" for run in runs)


def _check_flaky(name: str, runs: list[RunRecord], outcomes: Outcomes) -> None:
    if runs[-1].state is State.STOPPED:
        return  # a stop ended the retrying (a stop fault, or a stop during the backoff)
    outcomes.checked["flaky, retried"] += 1
    shape = [(run.state, run.error) for run in runs]
    if shape != [(State.FAILED, FLAKY_ERROR), (State.DONE, "")]:
        outcomes.defects.append(f"{name}: attempts {_states(runs)}, not Failed then Done")
        return
    failed, retried = runs
    if failed.ended_at is not None and retried.started_at is not None:
        waited = (retried.started_at - failed.ended_at).total_seconds()
        if waited < FLAKY_BACKOFF / 2 - CLOCK_SLACK:
            outcomes.defects.append(f"{name}: retried {waited:.3f}s after its failure, sooner than half "
                                    f"its {FLAKY_BACKOFF:g} s backoff")


def _check_handoff(event: FaultEvent, log: ExecutionLog, history: dict[str, RunRecord],
                   by_launch: dict[str, list[RunRecord]], injected: list[FaultEvent],
                   outcomes: Outcomes, stopped_otherwise: frozenset[str]) -> None:
    """A run its worker stopped on the way out runs again: its launch has a later attempt."""
    stopped_by_user = {run_id for other in injected if other.kind in STOPS for run_id in other.run_ids}
    stopped_by_user |= stopped_otherwise
    for run_id in victims(event, log, history):
        run = history.get(run_id)
        if run is None or run.parent_run_id or run.state is not State.STOPPED or run_id in stopped_by_user:
            continue
        outcomes.checked["handed off"] += 1
        if not any(later.attempt > run.attempt for later in by_launch.get(run.launch_id, [])):
            outcomes.defects.append(f"{run.scope_id}/{run.process_id} run {run_id[:8]} ended Stopped "
                                    f"{run.error!r} when worker {event.worker_id} shut down, with no "
                                    "next attempt (not handed off)")
