"""The operator's plain rules: statuses, conditions, scope grants, run ids. No cluster."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from shards.errors import (
    ConfirmationRequired,
    InvalidArgs,
    ProcessActive,
    ShardsError,
    StoreUnavailable,
    UnknownProcess,
)
from shards.records import ProcessRecord, ProcessStatus
from shards.states import State
from shards_operator.mirror import StatusMirror, uid_of_launch
from shards_operator.resource import Outcome, Resource, apply_spec, may_use, parse_grants, release
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


def test_launch_ids_name_their_resource_and_run() -> None:
    resource = Resource("ns", "sheep", "1f6c-aa", 3, {"process": "count-sheep", "runs": 2}, {"runs": 1})
    assert (resource.scope, resource.wanted_runs, resource.launched_runs) == ("ns", 2, 1)
    assert resource.launch_id(2) == "k8s-1f6c-aa-2"
    assert uid_of_launch(resource.launch_id(2)) == "1f6c-aa"
    assert uid_of_launch("0123abcd") == ""
    assert uid_of_launch("k8s-x-y") == ""
    assert uid_of_launch("k8s-1f6c-aa-2.3") == ""  # a retry's run id: records name its launch


class FakeController:
    """Just what apply_spec calls; each launch outcome is scripted."""

    def __init__(self, outcome: Exception | None = None, waiting: str = "") -> None:
        self.outcome = outcome
        self.waiting = waiting  # what waiting_reasons says of a Scheduled record
        self.launches: list[dict] = []
        self.defined: list[str] = []
        self.stops: list[tuple[str, str, bool]] = []
        self.record: ProcessRecord | None = None  # what store.processes.get finds
        self.store = self
        self.processes = self
        self.runs = self

    def launch(self, scope: str, process: str, **options: object) -> ProcessRecord:
        self.launches.append({"scope": scope, "process": process, **options})
        if self.outcome is not None:
            raise self.outcome
        return ProcessRecord(scope_id=scope, process_id=process, name=process, run_id=str(options["run_id"]),
                             status=ProcessStatus(state=State.SCHEDULED))

    def define(self, scope: str, **_: object) -> None:
        self.defined.append(scope)

    def offered(self, process: str) -> bool:
        return True

    def waiting_reasons(self, records: list[ProcessRecord], max_age: float = 0.0) -> dict[str, str]:
        return {r.process_id: self.waiting for r in records if r.state is State.SCHEDULED and self.waiting}

    def get(self, *key: str) -> ProcessRecord | None:  # store.processes.get and store.runs.get
        return self.record if len(key) == 2 else None

    def stop(self, scope: str, process: str, *, force: bool = False) -> None:
        self.stops.append((scope, process, force))


def resource(**spec: object) -> Resource:
    return Resource("team-a", "job", "uid-1", 1, {"process": "count-sheep", **spec}, {})


def apply(controller: FakeController, res: Resource, grants: str = "") -> Outcome:
    return apply_spec(controller, res, parse_grants(grants))  # type: ignore[arg-type]


def test_a_new_resource_launches_its_first_run_under_a_stable_id() -> None:
    controller = FakeController()
    outcome = apply(controller, resource(args={"n": 3}))
    assert controller.launches == [{"scope": "team-a", "process": "count-sheep", "args": {"n": 3},
                                    "confirm": False, "run_id": "k8s-uid-1-1", "timeout": None,
                                    "retries": None, "retry_backoff": None, "at": None, "queue": False}]
    assert (outcome.status["runs"], outcome.status["state"], outcome.retry_after) == (1, "Scheduled", None)
    assert outcome.launched and outcome.events == []  # Launched is posted once the status shows it
    waiting = {c["type"]: c for c in outcome.status["conditions"]}["Waiting"]
    assert (waiting["status"], waiting["reason"]) == ("False", "Launched")


def test_a_launch_no_live_worker_can_take_is_scheduled_and_waits_saying_why() -> None:
    why = "no live worker in pool 'gpu' offers process 'count-sheep'; it runs when one starts"
    outcome = apply(FakeController(waiting=why), resource())
    assert (outcome.status["runs"], outcome.status["state"], outcome.retry_after) == (1, "Scheduled", None)
    waiting = {c["type"]: c for c in outcome.status["conditions"]}["Waiting"]
    assert (waiting["status"], waiting["reason"], waiting["message"]) == ("True", "NoWorker", why)
    assert outcome.status["progress"]["message"] == f"waiting: {why}"


@pytest.mark.parametrize(
    ("error", "reason", "retries"),
    [
        (ConfirmationRequired("needs confirmation: careful"), "ConfirmationRequired", False),
        (InvalidArgs("process arguments nest more than 32 levels deep"), "InvalidArgs", False),
        (UnknownProcess("unknown process"), "UnknownProcess", True),
        (ProcessActive("already active (Running)"), "ProcessBusy", True),
    ],
)
def test_what_keeps_a_launch_waiting_reads_in_its_condition(
    error: Exception, reason: str, retries: bool
) -> None:
    outcome = apply(FakeController(error), resource())
    waiting = outcome.status["conditions"][0]
    assert (waiting["type"], waiting["status"], waiting["reason"]) == ("Waiting", "True", reason)
    assert waiting["message"] == str(error) == outcome.status["progress"]["message"]
    assert (outcome.retry_after is not None) is retries
    assert "runs" not in outcome.status


def test_another_scope_needs_a_grant_and_a_stopped_spec_launches_nothing() -> None:
    controller = FakeController()
    refused = apply(controller, resource(scope="farm"))
    assert refused.status["conditions"][0]["reason"] == "ScopeNotAllowed" and refused.retry_after is None
    apply(controller, resource(scope="farm"), grants="team-a=farm")
    assert controller.launches[-1]["scope"] == "farm"
    launched = len(controller.launches)
    assert apply(controller, resource(stop=True)).status.get("runs") is None
    assert apply(controller, resource(forceStop=True)).status.get("runs") is None
    assert len(controller.launches) == launched


def test_a_time_limit_goes_with_the_launch() -> None:
    controller = FakeController()
    apply(controller, resource(timeoutSeconds=90))
    assert controller.launches[-1]["timeout"] == 90


@pytest.mark.parametrize(("spec", "force"), [({"stop": True}, False), ({"forceStop": True}, True),
                                             ({"stop": True, "forceStop": True}, True)])
def test_a_stop_of_the_current_run_says_whether_it_is_forced(spec: dict[str, bool], force: bool) -> None:
    controller = FakeController()
    controller.record = ProcessRecord(scope_id="team-a", process_id="count-sheep", name="c",
                                      run_id="k8s-uid-1-1", worker_id="w1",
                                      status=ProcessStatus(state=State.RUNNING))
    res = Resource("team-a", "job", "uid-1", 1, {"process": "count-sheep", **spec}, {"runs": 1})
    outcome = apply(controller, res)
    assert controller.stops == [("team-a", "count-sheep", force)]
    assert [message for _, reason, message in outcome.events if reason == "Stopping"] == [
        f"{'kill' if force else 'stop'} requested for run 1"]


class RecordingPatcher:
    def __init__(self) -> None:
        self.states: list[str] = []

    def patch_status(self, resource: Resource, status: dict) -> None:
        self.states.append(status.get("state", ""))

    def event(self, resource: Resource, kind: str, reason: str, message: str, key: str = "") -> None:
        pass


def test_a_run_that_ended_before_its_resource_was_tracked_still_reports_its_end() -> None:
    """The worker can finish a no-op run before the handler hands the launch to the mirror."""
    controller = FakeController()
    done = ProcessRecord(scope_id="team-a", process_id="count-sheep", name="Count sheep",
                         run_id="k8s-uid-1-1", status=ProcessStatus(state=State.DONE))
    controller.get = lambda scope, process: done  # type: ignore[attr-defined]
    patcher = RecordingPatcher()
    mirror = StatusMirror(controller, patcher, interval=60)  # type: ignore[arg-type]
    mirror.observe(done)  # seen before the resource is tracked: nobody to tell
    res = resource()
    mirror.update(res, apply(controller, res))
    mirror.flush(force=True)  # the launch's first status settles a moment (mirror.SETTLE)
    assert patcher.states == ["Done"]


def test_a_failed_runs_event_ends_with_its_last_log_lines_within_1_kib() -> None:
    from shards_operator.mirror import last_lines

    lines = [f"2026-01-02T03:04:05.000Z INFO line {i}" for i in range(30)]
    lines.append("2026-01-02T03:04:06.000Z ERROR the run failed: boom\nTraceback (most recent call last):\n"
                 "  File \"app.py\", line 3, in count\nRuntimeError: boom")
    message = last_lines("the run ended Failed: boom", lines)
    shown = message.split("\nlast log lines:\n")[1].splitlines()
    assert message.startswith("the run ended Failed: boom\nlast log lines:\n")
    assert len(shown) == 10 and shown[-1] == "RuntimeError: boom" and shown[0].endswith("INFO line 24")
    huge = last_lines("the run ended Failed", ["é" * 5000])
    assert len(huge.encode()) <= 1024 and huge.endswith("é" * 100)
    assert last_lines("the run ended Failed", []) == "the run ended Failed"


OUTAGE = StoreUnavailable("MongoDB unreachable: 10.213.0.1:51195: [Errno 111] Connection refused")


def test_an_outage_waits_and_names_no_server_address_to_the_tenant() -> None:
    """Anyone who may read their own resource reads its conditions: the address stays in the
    operator's log."""
    outcome = apply(FakeController(OUTAGE), resource())
    waiting = outcome.status["conditions"][0]
    assert (waiting["type"], waiting["status"], waiting["reason"]) == ("Waiting", "True", "StoreUnavailable")
    assert waiting["message"] == "MongoDB is unreachable; retrying" == outcome.status["progress"]["message"]
    assert outcome.retry_after is not None
    assert "10.213" not in repr(outcome)


class FlakyController(FakeController):
    """Reads fail `outages` times (a failover), then find the run ended."""

    def __init__(self, outages: int) -> None:
        super().__init__()
        self.outages = outages
        self.record = ProcessRecord(scope_id="team-a", process_id="count-sheep", name="count-sheep",
                                    run_id="k8s-uid-1-1", status=ProcessStatus(state=State.RUNNING))

    def get(self, *key: str) -> ProcessRecord | None:
        if self.outages > 0:
            self.outages -= 1
            raise OUTAGE
        if len(key) == 2 and self.stops:
            assert self.record is not None
            self.record.status = ProcessStatus(state=State.STOPPED)
        return super().get(*key)


def launched() -> Resource:
    return Resource("team-a", "job", "uid-1", 1, {"process": "count-sheep"}, {"runs": 1})


def test_a_delete_retries_through_an_outage_until_its_timeout() -> None:
    controller = FlakyController(outages=3)
    ended, message = release(controller, launched(), timeout=10)  # type: ignore[arg-type]
    assert (ended, message) == (True, "the run ended Stopped")
    assert controller.stops == [("team-a", "count-sheep", False)]


def test_a_delete_that_times_out_in_an_outage_names_no_server_address() -> None:
    controller = FlakyController(outages=10**6)
    ended, message = release(controller, launched(), timeout=0.5)  # type: ignore[arg-type]
    assert not ended
    assert message == "could not stop the run: MongoDB stayed unreachable for 0.5s"
