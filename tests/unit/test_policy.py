"""Run policies decided from times alone: deadlines, the grace after a stop, forced stops."""

from __future__ import annotations

import pytest
from shards.app import ProcessDefinition, check_timeout, process
from shards.errors import InvalidDefinition
from shards.requests import Request, RequestKind
from shards.states import State
from shards_worker.hosting import ThreadHost
from shards_worker.lifecycle import launch_timeout
from shards_worker.policy import Action, RunClock, decide, outcome
from shards_worker.process_host import exit_reason
from shards_worker.runs import Run
from shards_worker.settings import WorkerSettings
from shards_worker.worker import Worker


def test_nothing_happens_before_a_deadline_or_a_stop() -> None:
    assert decide(RunClock(timeout=10, started=100), 109.9, grace=5, killable=True) is None
    assert decide(RunClock(started=100), 10**6, grace=5, killable=True) is None


def test_the_deadline_asks_the_run_to_stop() -> None:
    clock = RunClock(timeout=10, started=100)
    assert decide(clock, 110, grace=5, killable=True) == Action("stop", "deadline exceeded after 10 s")
    assert decide(clock, 110, grace=5, killable=False) == Action("stop", "deadline exceeded after 10 s")


def test_an_isolated_run_is_killed_when_the_grace_is_over() -> None:
    clock = RunClock(started=100, stop_asked=120)
    assert decide(clock, 124.9, grace=5, killable=True) is None
    assert decide(clock, 125, grace=5, killable=True) == Action("kill")


def test_a_run_in_a_thread_is_never_killed() -> None:
    clock = RunClock(started=100, stop_asked=120, forced=True)
    assert decide(clock, 10**6, grace=5, killable=False) is None


def test_a_forced_stop_kills_at_once() -> None:
    clock = RunClock(started=100, stop_asked=120, forced=True)
    assert decide(clock, 120, grace=5, killable=True) == Action("kill")


@pytest.mark.parametrize(("clock", "state", "error", "killed", "ends"), [
    # the deadline fails the run, whether it stopped in time or had to be killed
    (RunClock(timeout=2.5, deadline_hit=True), State.STOPPED, "deadline exceeded after 2.5 s", False,
     (State.FAILED, "deadline exceeded after 2.5 s")),
    (RunClock(timeout=2.5, deadline_hit=True), State.FAILED, "killed", True,
     (State.FAILED, "deadline exceeded after 2.5 s")),
    # a run that failed on its own, or finished, after its deadline keeps its end
    (RunClock(timeout=2.5, deadline_hit=True), State.FAILED, "boom", False, (State.FAILED, "boom")),
    (RunClock(timeout=2.5, deadline_hit=True), State.DONE, "", False, (State.DONE, "")),
    # kills end Stopped, saying why
    (RunClock(stop_asked=1.0), State.FAILED, "killed by signal 9 (SIGKILL)", True,
     (State.STOPPED, "killed after 10 s grace")),
    (RunClock(stop_asked=1.0, forced=True), State.FAILED, "x", True,
     (State.STOPPED, "killed by a forced stop")),
    # untouched runs end as they ended
    (RunClock(), State.DONE, "", False, (State.DONE, "")),
    (RunClock(stop_asked=1.0), State.STOPPED, "", False, (State.STOPPED, "")),
])
def test_outcome(clock: RunClock, state: State, error: str, killed: bool, ends: tuple[State, str]) -> None:
    assert outcome(clock, state, error, killed=killed, grace=10) == ends


def test_a_stop_keeps_its_first_reason_and_remembers_force() -> None:
    execution = Run(record=None, definition=None, catalog={}, scope_data={},  # type: ignore[arg-type]
                          started_at=None)  # type: ignore[arg-type]
    assert execution.ask_stop("deadline exceeded after 1 s")
    asked = execution.clock.stop_asked
    assert not execution.ask_stop("", force=True)
    assert (execution.stop_reason, execution.clock.stop_asked, execution.clock.forced) == (
        "deadline exceeded after 1 s", asked, True)


@pytest.mark.parametrize(("code", "reason"), [
    (1, "exited with code 1"), (0, "exited with code 0"), (-9, "killed by signal 9 (SIGKILL)"),
    (-11, "killed by signal 11 (SIGSEGV)"), (None, "its process did not exit"),
])
def test_exit_reasons(code: int | None, reason: str) -> None:
    assert exit_reason(code) == reason


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "10"])
def test_timeouts_are_positive_numbers(bad: object) -> None:
    with pytest.raises(InvalidDefinition, match="timeout must be a positive number"):
        check_timeout(bad)
    with pytest.raises(InvalidDefinition, match="process 'p': timeout"):
        process("p", timeout=bad)(lambda ctx: None)  # type: ignore[typeddict-item]


def test_the_launch_timeout_wins_over_the_process_default() -> None:
    definition = ProcessDefinition("p", "P", lambda ctx: None, timeout=60)
    launch = Request(kind=RequestKind.LAUNCH, scope_id="s", process_id="p")
    assert launch_timeout(launch, definition) == 60
    launch.options = {"timeout": 2.5}
    assert launch_timeout(launch, definition) == 2.5
    launch.options = {"timeout": "soon"}  # not a number: the process's default holds
    assert launch_timeout(launch, definition) == 60
    no_default = ProcessDefinition("p", "P", print)
    assert launch_timeout(Request(kind=RequestKind.LAUNCH, scope_id="s"), no_default) is None


@pytest.mark.parametrize(("settings", "message"), [
    ({"isolation": "vm"}, "--isolation must be one of process, thread, got 'vm'"),
    ({"stop_grace": -1}, "--stop-grace must not be negative, got -1"),
])
def test_bad_isolation_settings_are_one_line(settings: dict[str, object], message: str) -> None:
    from shards.errors import ShardsError

    with pytest.raises(ShardsError) as error:
        WorkerSettings(**settings)  # type: ignore[arg-type]
    assert str(error.value) == message


def test_process_isolation_needs_the_app_spec() -> None:
    from shards.errors import ShardsError
    from shards_worker.process_host import host_for

    with pytest.raises(ShardsError, match="process isolation needs the APP spec"):
        host_for(WorkerSettings(), "", "mongodb://x")
    assert isinstance(host_for(WorkerSettings(isolation="thread"), "", ""), ThreadHost)
    assert Worker  # the worker module imports with isolation wired in
