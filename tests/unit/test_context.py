from __future__ import annotations

import math
from typing import Any

import pytest
from shards.context import ProcessContext, ProcessStopped, clamp_rate
from shards.errors import ChildProcessFailed
from shards.states import State


class FakeRuntime:
    def __init__(self, child_state: State = State.DONE) -> None:
        self.child_state = child_state
        self.progress: list[tuple[str, float]] = []
        self.children: list[tuple[str, dict[str, Any]]] = []
        self.stopped = False

    def should_continue(self) -> bool:
        return not self.stopped

    def report_progress(self, message: str, rate: float) -> None:
        self.progress.append((message, rate))

    def run_child(self, process_id: str, args: dict[str, Any]) -> tuple[State, str]:
        self.children.append((process_id, args))
        return self.child_state, "Count sheep"


def context(runtime: FakeRuntime) -> ProcessContext:
    return ProcessContext(scope_id="s", process_id="p", run_id="r", runtime=runtime)


@pytest.mark.parametrize(
    ("child", "survive_failure", "survive_stopping", "outcome"),
    [
        (State.DONE, False, False, "Done"),
        (State.FAILED, False, False, ChildProcessFailed),
        (State.FAILED, True, False, "Failed"),
        (State.STOPPED, False, False, ProcessStopped),
        (State.STOPPED, False, True, "Stopped"),
        (State.FAILED, False, True, ChildProcessFailed),
        (State.STOPPED, True, False, ProcessStopped),
    ],
)
def test_run_process_rules(
    child: State, survive_failure: bool, survive_stopping: bool, outcome: object
) -> None:
    ctx = context(FakeRuntime(child))
    call = lambda: ctx.run_process(  # noqa: E731
        "count", args={"n": 1}, survive_failure=survive_failure, survive_stopping=survive_stopping
    )
    if isinstance(outcome, str):
        assert call() == outcome
    else:
        with pytest.raises(outcome):  # type: ignore[call-overload]
            call()


def test_a_failed_child_fails_the_parent_with_the_seed_message() -> None:
    with pytest.raises(ChildProcessFailed, match=r"^Failed to Count sheep\.$"):
        context(FakeRuntime(State.FAILED)).run_process("count")


def test_progress_rates_are_clamped_and_checked() -> None:
    runtime = FakeRuntime()
    ctx = context(runtime)
    ctx.report_progress("over", 1.7)
    ctx.report_progress("under", -3)
    assert runtime.progress == [("over", 1.0), ("under", 0.0)]
    for bad in (math.nan, "half", None, True):
        with pytest.raises(ValueError, match=r"progress rate must be a number in 0\.\.1"):
            clamp_rate(bad)  # type: ignore[arg-type]


def test_should_continue_follows_the_runtime() -> None:
    runtime = FakeRuntime()
    ctx = context(runtime)
    assert ctx.should_continue()
    runtime.stopped = True
    assert not ctx.should_continue()
