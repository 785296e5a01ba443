"""A stop of a run that has not started yet ends it at once (Scheduled -> Stopped): the status the
operator reports for that stop must be the record after the stop, not the one read before it.
Found by `make chaos-k8s` (seed 1): a resource stayed Scheduled while MongoDB said Stopped, when
the change stream's Stopped reached the status mirror before the handler's stale Scheduled."""

from __future__ import annotations

from dataclasses import replace

from shards.records import ProcessRecord, ProcessStatus
from shards.states import State
from shards_operator.resource import Resource, apply_spec

LAUNCH = "k8s-uid-1-1"


class StoppingController:
    """One record; stop() ends a Scheduled run at once, as the controller does."""

    def __init__(self) -> None:
        self.record = ProcessRecord(scope_id="team-a", process_id="job", name="Job", run_id=LAUNCH,
                                    launch_id=LAUNCH, attempt=1, status=ProcessStatus(state=State.SCHEDULED))
        self.store = self.processes = self
        self.runs: dict[str, object] = {}
        self.stops: list[bool] = []

    def get(self, scope: str, process: str) -> ProcessRecord:  # store.processes.get
        return self.record

    def waiting_reasons(self, records: list[ProcessRecord], max_age: float = 0.0) -> dict[str, str]:
        return {}

    def stop(self, scope: str, process: str, *, force: bool = False) -> ProcessRecord:
        self.stops.append(force)
        self.record = replace(self.record, status=ProcessStatus(state=State.STOPPED))
        return self.record


def test_the_status_of_a_stop_is_the_record_after_it() -> None:
    controller = StoppingController()
    resource = Resource("team-a", "job", "uid-1", 2, {"process": "job", "stop": True}, {"runs": 1})
    outcome = apply_spec(controller, resource, {})  # type: ignore[arg-type]
    assert controller.stops == [False]
    assert outcome.status["state"] == "Stopped"
