"""The operator's plain rules: statuses, conditions, scope grants, run ids. No cluster."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from shards.errors import ShardsError
from shards.states import State
from shards_operator.mirror import uid_of_run
from shards_operator.resource import Resource, may_use, parse_grants
from shards_operator.status import RunView, merge_conditions, run_conditions, run_status

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = datetime(2026, 1, 2, 3, 4, 9, tzinfo=UTC)


def test_a_run_reads_like_the_process_table() -> None:
    run = RunView(run_id="k8s-u-1", state=State.RUNNING, message="sheep 3", rate=0.379, worker="w1",
                  running_since=T0)
    status = run_status(run)
    assert status["state"] == "Running"
    assert status["progress"] == {"message": "sheep 3", "rate": 0.379, "percent": 37}
    assert (status["worker"], status["runningSince"]) == ("w1", "2026-01-02T03:04:05Z")
    assert status["finishedAt"] is None


def test_conditions_move_their_transition_time_only_when_they_change() -> None:
    first = merge_conditions(None, run_conditions(State.RUNNING, ""), generation=1, now=T0)
    statuses = {c["type"]: c["status"] for c in first}
    assert statuses == dict.fromkeys(("Complete", "Failed", "Waiting"), "False")
    done = merge_conditions(first, run_conditions(State.DONE, ""), generation=1, now=T1)
    by_type = {c["type"]: c for c in done}
    assert by_type["Complete"]["status"] == "True"
    assert by_type["Complete"]["lastTransitionTime"] == "2026-01-02T03:04:09Z"
    assert by_type["Failed"]["lastTransitionTime"] == "2026-01-02T03:04:05Z"  # unchanged
    failed = {c["type"]: c for c in merge_conditions(done, run_conditions(State.FAILED, "boom"), 2, now=T1)}
    assert (failed["Failed"]["status"], failed["Failed"]["message"]) == ("True", "boom")
    assert failed["Failed"]["observedGeneration"] == 2


def test_a_namespace_uses_its_own_scope_and_what_it_was_granted() -> None:
    grants = parse_grants("team-a=farm, barn; ops=*")
    assert may_use("team-a", "team-a", grants)
    assert may_use("team-a", "barn", grants)
    assert not may_use("team-a", "zoo", grants)
    assert may_use("ops", "anything", grants)
    assert not may_use("team-b", "farm", grants)
    with pytest.raises(ShardsError, match="is not NAMESPACE=SCOPE"):
        parse_grants("team-a")


def test_run_ids_name_their_resource_and_run() -> None:
    resource = Resource("ns", "sheep", "1f6c-aa", 3, {"process": "count-sheep", "runs": 2}, {"runs": 1})
    assert (resource.scope, resource.wanted_runs, resource.launched_runs) == ("ns", 2, 1)
    assert resource.run_id(2) == "k8s-1f6c-aa-2"
    assert uid_of_run(resource.run_id(2)) == "1f6c-aa"
    assert uid_of_run("0123abcd") == ""
    assert uid_of_run("k8s-x-y") == ""
