"""Retries on the ShardProcess: a launch's attempts in its status, found by launch id whichever
attempt the record runs, and from the history once the record has moved on. No cluster."""

from __future__ import annotations

from datetime import UTC, datetime

from shards.records import LaunchSpec, ProcessRecord, ProcessStatus, Progress, RunRecord, to_ms
from shards.retries import Attempt
from shards.states import State
from shards_operator.mirror import StatusMirror, retry_event
from shards_operator.resource import Resource, apply_spec, current_run, launch_history
from shards_operator.status import RunView, run_status

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = datetime(2026, 1, 2, 3, 4, 9, tzinfo=UTC)
LAUNCH = "k8s-uid-1-1"  # the launch id of run 1 of the resource below
RETRY_MESSAGE = "retry 1 of 2 in 0.6 s (attempt 1 failed: boom)"


def waiting_retry() -> ProcessRecord:
    """The record of the resource's launch while its second attempt waits for its backoff."""
    return ProcessRecord(
        scope_id="team-a", process_id="flaky", name="Flaky", run_id=f"{LAUNCH}.2", launch_id=LAUNCH,
        attempt=2, retried=1, attempts=[Attempt(1, LAUNCH, State.FAILED, "boom", to_ms(T0))],
        status=ProcessStatus(state=State.SCHEDULED, retry_at=T1), progress=Progress(RETRY_MESSAGE),
        launch=LaunchSpec(options={"retries": 2}),
    )


def entry(run_id: str, state: State, error: str = "", attempt: int = 1) -> RunRecord:
    return RunRecord(run_id=run_id, scope_id="team-a", process_id="flaky", state=state, error=error,
                     worker_id="w1", started_at=T0, ended_at=T1, duration=4.0, launch_id=LAUNCH,
                     attempt=attempt)


class CountingHistory(dict[str, RunRecord]):
    """The run history's point reads, counted."""

    reads = 0

    def get(self, run_id: str, default: RunRecord | None = None) -> RunRecord | None:  # type: ignore[override]
        self.reads += 1
        return super().get(run_id, default)


class FakeController:
    """What current_run, apply_spec and the mirror read: one record, a history, no workers."""

    def __init__(self, record: ProcessRecord | None = None, history: CountingHistory | None = None) -> None:
        self.record = record
        self.runs = history if history is not None else CountingHistory()
        self.launches: list[dict[str, object]] = []
        self.store = self
        self.processes = self

    def get(self, scope: str, process: str) -> ProcessRecord | None:  # store.processes.get
        return self.record

    def waiting_reasons(self, records: list[ProcessRecord], max_age: float = 0.0) -> dict[str, str]:
        return {}

    def launch(self, scope: str, process: str, **options: object) -> ProcessRecord:
        self.launches.append(options)
        return ProcessRecord(scope_id=scope, process_id=process, name=process, run_id=str(options["run_id"]),
                             launch_id=str(options["run_id"]), attempt=1,
                             status=ProcessStatus(state=State.SCHEDULED))


def launched(**spec: object) -> Resource:
    return Resource("team-a", "job", "uid-1", 1, {"process": "flaky", **spec}, {"runs": 1})


def test_a_waiting_retry_shows_its_attempt_the_earlier_ones_and_when_it_runs() -> None:
    status = run_status(RunView.of_record(waiting_retry()))
    assert (status["state"], status["runId"], status["attempt"]) == ("Scheduled", f"{LAUNCH}.2", 2)
    assert status["attempts"] == [{"attempt": 1, "runId": LAUNCH, "state": "Failed", "error": "boom",
                                   "endedAt": "2026-01-02T03:04:05Z"}]
    assert status["retryAt"] == "2026-01-02T03:04:09Z"
    assert status["progress"]["message"] == RETRY_MESSAGE


def test_a_launch_that_never_retried_is_attempt_one_with_no_retry_pending() -> None:
    record = ProcessRecord(scope_id="team-a", process_id="flaky", name="Flaky", run_id=LAUNCH,
                           status=ProcessStatus(state=State.RUNNING, running_since=T0))
    status = run_status(RunView.of_record(record))  # a record written before retries: attempt 0
    assert (status["attempt"], status["attempts"], status["retryAt"]) == (1, [], None)


def test_the_record_of_a_later_attempt_is_still_the_resources_run() -> None:
    controller = FakeController(waiting_retry())
    run = current_run(controller, launched())  # type: ignore[arg-type]
    assert run is not None and (run.run_id, run.attempt, run.state) == (f"{LAUNCH}.2", 2, State.SCHEDULED)
    assert controller.runs.reads == 0  # the record answers: no history read


def test_once_the_record_moved_on_the_history_gives_the_launchs_last_attempt() -> None:
    other_launch = ProcessRecord(scope_id="team-a", process_id="flaky", name="Flaky", run_id="cli-run",
                                 launch_id="cli-run", attempt=1, status=ProcessStatus(state=State.RUNNING))
    history = CountingHistory({LAUNCH: entry(LAUNCH, State.FAILED, "boom"),
                               f"{LAUNCH}.2": entry(f"{LAUNCH}.2", State.DONE, attempt=2)})
    run = current_run(FakeController(other_launch, history), launched())  # type: ignore[arg-type]
    assert run is not None
    status = run_status(run)
    assert (status["state"], status["runId"], status["attempt"]) == ("Done", f"{LAUNCH}.2", 2)
    assert [(a["attempt"], a["state"], a["error"]) for a in status["attempts"]] == [(1, "Failed", "boom")]
    assert history.reads == 2  # Done ends the walk: no read of a third attempt


def test_the_history_walk_reads_one_entry_for_a_launch_done_at_once_and_stops_at_a_gap() -> None:
    done_at_once = CountingHistory({LAUNCH: entry(LAUNCH, State.DONE)})
    assert [e.run_id for e in launch_history(done_at_once, LAUNCH)] == [LAUNCH]
    assert done_at_once.reads == 1
    # A retry that was stopped before it started has an entry its end wrote, without its number.
    stopped_retry = entry(f"{LAUNCH}.3", State.STOPPED, attempt=1)
    failing = CountingHistory({LAUNCH: entry(LAUNCH, State.FAILED, "boom"),
                               f"{LAUNCH}.2": entry(f"{LAUNCH}.2", State.FAILED, "boom again", attempt=2),
                               f"{LAUNCH}.3": stopped_retry})
    attempts = launch_history(failing, LAUNCH)
    assert [e.run_id for e in attempts] == [LAUNCH, f"{LAUNCH}.2", f"{LAUNCH}.3"]
    assert failing.reads == 4  # the fourth, missing, says the third was the last
    assert RunView.of_history(attempts).attempt == 3  # numbered by order, not by the entry
    assert launch_history(CountingHistory(), LAUNCH) == []


def test_spec_retries_and_backoff_go_with_the_launch() -> None:
    controller = FakeController()
    res = Resource("team-a", "job", "uid-1", 1, {"process": "flaky", "retries": 2,
                                                  "retryBackoffSeconds": 0.5}, {})
    outcome = apply_spec(controller, res, {})  # type: ignore[arg-type]
    assert (controller.launches[-1]["retries"], controller.launches[-1]["retry_backoff"]) == (2, 0.5)
    assert (outcome.status["runs"], outcome.status["attempt"]) == (1, 1)


class RecordingPatcher:
    def __init__(self) -> None:
        self.statuses: list[dict[str, object]] = []
        self.events: list[tuple[str, str, str]] = []

    def patch_status(self, resource: Resource, status: dict[str, object]) -> None:
        self.statuses.append(status)

    def event(self, resource: Resource, kind: str, reason: str, message: str, key: str = "") -> None:
        self.events.append((kind, reason, message))


def test_the_mirror_follows_a_retry_by_launch_id_and_says_the_launch_runs_again() -> None:
    first = ProcessRecord(scope_id="team-a", process_id="flaky", name="Flaky", run_id=LAUNCH,
                          launch_id=LAUNCH, attempt=1,
                          status=ProcessStatus(state=State.RUNNING, running_since=T0))
    controller = FakeController(first)
    patcher = RecordingPatcher()
    mirror = StatusMirror(controller, patcher, interval=0)  # type: ignore[arg-type]
    res = Resource("team-a", "job", "uid-1", 1, {"process": "flaky"}, {})
    mirror.update(res, apply_spec(controller, res, {}))  # type: ignore[arg-type]
    mirror.observe(waiting_retry())  # its run id is attempt 2's: the launch id finds the resource
    mirror.flush(force=True)
    assert patcher.statuses[-1]["attempt"] == 2 and patcher.statuses[-1]["retryAt"] == "2026-01-02T03:04:09Z"
    assert ("Warning", "Retrying", "attempt 1 ended Failed: boom; attempt 2 follows") in patcher.events


def test_a_hand_off_is_a_normal_retry_event() -> None:
    handed_off = {"attempt": 1, "state": "Stopped", "error": "handed off: worker w1 shut down"}
    assert retry_event(handed_off, 2) == (
        "Normal", "Retrying", "attempt 1 ended Stopped: handed off: worker w1 shut down; attempt 2 follows")
