"""Child processes: run inline on the parent's worker, with records and rules of their own."""

from __future__ import annotations

import json

import pytest
from shards.states import State

from integration.harness import ShardsHarness

SCOPE = "family"


def _launch_parent(shards_env: ShardsHarness, child: str, **options: bool) -> None:
    shards_env.start_workers(1)
    shards_env.define(SCOPE)
    shards_env.ok("launch", "parent", "--scope", SCOPE, "--args", json.dumps({"child": child, **options}))


@pytest.mark.parametrize(
    ("child", "survive_failure", "parent_state", "parent_error"),
    [
        ("child-ok", False, State.DONE, ""),
        ("child-fail", False, State.FAILED, "Failed to child that fails."),
        ("child-fail", True, State.DONE, ""),
    ],
)
def test_child_outcome_decides_the_parent(
    shards_env: ShardsHarness, child: str, survive_failure: bool, parent_state: State, parent_error: str
) -> None:
    _launch_parent(shards_env, child, survive_failure=survive_failure)
    parent = shards_env.wait_state(SCOPE, "parent", State.DONE, State.FAILED)
    assert (parent.state, parent.status.error) == (parent_state, parent_error)
    child_record = shards_env.record(SCOPE, child)
    expected_child = State.DONE if child == "child-ok" else State.FAILED
    assert child_record.state is expected_child
    if expected_child is State.FAILED:
        assert child_record.status.error == "child broke"
    [child_run] = shards_env.controller.history(SCOPE, child)
    assert child_run.parent_run_id == parent.run_id
    assert child_run.state is expected_child


@pytest.mark.parametrize(("survive_stopping", "parent_state"), [(False, State.STOPPED), (True, State.DONE)])
def test_a_stopped_child_stops_the_parent_unless_it_survives_stopping(
    shards_env: ShardsHarness, survive_stopping: bool, parent_state: State
) -> None:
    _launch_parent(shards_env, "child-stop", survive_stopping=survive_stopping)
    shards_env.wait_state(SCOPE, "child-stop", State.RUNNING)
    assert shards_env.record(SCOPE, "parent").state is State.RUNNING
    shards_env.ok("stop", "child-stop", "--scope", SCOPE)
    shards_env.wait_state(SCOPE, "child-stop", State.STOPPED)
    parent = shards_env.wait_state(SCOPE, "parent", State.DONE, State.STOPPED, State.FAILED)
    assert parent.state is parent_state
    assert parent.status.error == ""


def test_stopping_the_parent_stops_the_running_child(shards_env: ShardsHarness) -> None:
    _launch_parent(shards_env, "child-stop", survive_stopping=True)
    shards_env.wait_state(SCOPE, "child-stop", State.RUNNING)
    shards_env.ok("stop", "parent", "--scope", SCOPE)
    assert shards_env.wait_state(SCOPE, "child-stop", State.STOPPED).state is State.STOPPED
    assert shards_env.wait_state(SCOPE, "parent", State.STOPPED, State.DONE).state is State.STOPPED


def test_an_unknown_child_fails_the_parent_clearly(shards_env: ShardsHarness) -> None:
    _launch_parent(shards_env, "no-such-child")
    parent = shards_env.wait_state(SCOPE, "parent", State.FAILED, State.DONE)
    assert parent.status.error == "unknown child process 'no-such-child' in scope 'family'"


def test_a_child_that_is_already_running_fails_the_parent(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1, concurrency=2)
    shards_env.define(SCOPE)
    shards_env.ok("launch", "child-stop", "--scope", SCOPE)
    shards_env.wait_state(SCOPE, "child-stop", State.RUNNING)
    shards_env.ok("launch", "parent", "--scope", SCOPE, "--args", '{"child": "child-stop"}')
    parent = shards_env.wait_state(SCOPE, "parent", State.FAILED, State.DONE)
    assert parent.status.error == "child process 'child-stop' is already active (Running)"
    assert shards_env.record(SCOPE, "child-stop").state is State.RUNNING
    shards_env.ok("stop", "child-stop", "--scope", SCOPE)
    shards_env.wait_state(SCOPE, "child-stop", State.STOPPED)
