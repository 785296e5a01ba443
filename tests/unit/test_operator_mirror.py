"""The status mirror at scale (issue 24): a patch carries only what changed and none is sent
when nothing did, a resource whose status shows its launch Done costs no MongoDB read, patches
of many resources are in flight together (bounded, one at a time per resource). The cluster
side is measured by bench/operator_scale.py."""

from __future__ import annotations

import threading
import time
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from shards.records import ProcessRecord, ProcessStatus, Progress
from shards.states import State
from shards_operator import metrics
from shards_operator.mirror import StatusMirror, changes, merged
from shards_operator.resource import Resource, apply_spec, observed, view_of

WAIT = 10.0  # seconds a test waits for another thread before it fails


class Records:
    """The controller and store as the operator reads them: one record per process, each read
    counted."""

    def __init__(self) -> None:
        self.records: dict[str, ProcessRecord] = {}
        self.reads = 0
        self.store = self.processes = self.runs = self

    def put(self, uid: str, state: State, message: str = "") -> ProcessRecord:
        record = ProcessRecord(scope_id="team-a", process_id=f"p-{uid}", name="P", run_id=f"k8s-{uid}-1",
                               launch_id=f"k8s-{uid}-1", attempt=1, status=ProcessStatus(state=state),
                               progress=Progress(message=message, rate=0.5))
        self.records[record.process_id] = record
        return record

    def get(self, *key: str) -> ProcessRecord | None:  # processes.get(scope, process); runs.get(id)
        self.reads += 1
        return self.records.get(key[1]) if len(key) == 2 else None

    def launch(self, scope: str, process: str, **_: object) -> ProcessRecord:
        return self.records[process]

    def waiting_reasons(self, records: list[ProcessRecord], max_age: float = 0.0) -> dict[str, str]:
        return {}


class ApiServer:
    """Statuses patched (kept merged, as the API server keeps them) and Events posted."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.statuses: dict[str, dict[str, Any]] = {}
        self.events: list[str] = []
        self.lock = threading.Lock()

    def patch_status(self, resource: Resource, status: dict[str, Any]) -> None:
        with self.lock:
            self.patches.append((resource.uid, status))
            self.statuses[resource.uid] = merged(self.statuses.get(resource.uid, {}), status)

    def event(self, resource: Resource, kind: str, reason: str, message: str, key: str = "") -> None:
        with self.lock:
            self.events.append(reason)


def resource(uid: str, status: dict[str, Any] | None = None) -> Resource:
    return Resource("team-a", f"job-{uid}", uid, 1, {"process": f"p-{uid}"}, status or {})


def handled(mirror: StatusMirror, records: Records, res: Resource) -> None:
    """What the apply handler does (kopf's create, update or resume)."""
    mirror.update(res, apply_spec(records, res, {}))  # type: ignore[arg-type]
    mirror.flush(force=True)


def test_a_resumed_resource_whose_status_shows_its_run_done_costs_no_read_and_no_patch() -> None:
    records, api = Records(), ApiServer()
    first = StatusMirror(records, api, interval=60)  # type: ignore[arg-type]
    records.put("u1", State.DONE)
    handled(first, records, resource("u1"))
    assert api.statuses["u1"]["state"] == "Done" and api.events == ["Launched", "Done"]
    # The operator restarts: kopf resumes the resource with the status the first one left.
    patches, reads = len(api.patches), records.reads
    again = StatusMirror(records, api, interval=60)  # type: ignore[arg-type]
    handled(again, records, resource("u1", api.statuses["u1"]))
    again.sweep()  # as after a break in the stream
    assert (len(api.patches), records.reads, api.events) == (patches, reads, ["Launched", "Done"])


def test_a_resumed_resource_whose_run_ended_while_no_operator_was_there_is_read_and_patched() -> None:
    records, api = Records(), ApiServer()
    records.put("u1", State.RUNNING)
    handled(StatusMirror(records, api, interval=60), records, resource("u1"))  # type: ignore[arg-type]
    records.put("u1", State.FAILED)
    handled(StatusMirror(records, api, interval=60), records,  # type: ignore[arg-type]
            resource("u1", api.statuses["u1"]))
    assert api.statuses["u1"]["state"] == "Failed" and api.events == ["Launched", "Failed"]


def test_a_run_that_ends_while_its_launch_settles_shows_its_end_in_one_patch() -> None:
    records, api = Records(), ApiServer()
    mirror = StatusMirror(records, api, interval=1.0)  # type: ignore[arg-type]
    records.put("u1", State.SCHEDULED)
    mirror.update(resource("u1"), apply_spec(records, resource("u1"), {}))  # type: ignore[arg-type]
    assert api.patches == []  # the launch settles (mirror.SETTLE) before its first patch
    mirror.observe(records.put("u1", State.RUNNING))
    mirror.observe(records.put("u1", State.DONE))
    deadline = time.monotonic() + WAIT
    while not api.patches and time.monotonic() < deadline:
        mirror.flush()
        time.sleep(0.01)
    assert len(api.patches) == 1 and api.statuses["u1"]["state"] == "Done"
    assert api.statuses["u1"]["runs"] == 1 and api.events == ["Launched", "Done"]


def test_a_handler_read_older_than_the_streams_news_does_not_undo_it() -> None:
    """A handler reads the record, the run ends, the stream's news of the end is queued, and only
    then the handler queues what it read: the status shows the end, not the older read."""
    records, api = Records(), ApiServer()
    mirror = StatusMirror(records, api, interval=60)  # type: ignore[arg-type]
    records.put("u1", State.RUNNING)
    handled(mirror, records, resource("u1"))
    stale = resource("u1", api.statuses["u1"])
    read = observed(stale, view_of(records, records.records["p-u1"]))  # type: ignore[arg-type]
    mirror.observe(records.put("u1", State.DONE))
    mirror.update(stale, read)  # the handler's older read arrives last
    mirror.flush(force=True)
    assert api.statuses["u1"]["state"] == "Done"


def test_a_patch_carries_only_what_changed() -> None:
    records, api = Records(), ApiServer()
    mirror = StatusMirror(records, api, interval=0)  # type: ignore[arg-type]
    records.put("u1", State.RUNNING, "counting")
    handled(mirror, records, resource("u1"))
    mirror.observe(records.put("u1", State.RUNNING, "counted 5"))
    mirror.flush()
    assert api.patches[-1] == ("u1", {"progress": {"message": "counted 5", "rate": 0.5, "percent": 50}})
    mirror.observe(records.put("u1", State.RUNNING, "counted 5"))  # the same again: nothing to send
    assert mirror.flush() == 0 and len(api.patches) == 2



class FailsOnce(ApiServer):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def patch_status(self, resource: Resource, status: dict[str, Any]) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("the API server refused")
        super().patch_status(resource, status)


def test_the_status_lag_runs_from_the_first_unsent_change_to_its_patch_even_across_a_failure() -> None:
    records, api = Records(), FailsOnce()
    mirror = StatusMirror(records, api, interval=0)  # type: ignore[arg-type]
    records.put("u1", State.RUNNING, "counting")
    api.failed = True  # the first patch goes through
    handled(mirror, records, resource("u1"))
    lag_sum, total = metrics.STATUS_LAG._sum.get(), len(api.patches)
    observations = _lag_count()
    api.failed = False
    mirror.observe(records.put("u1", State.RUNNING, "counted 5"))
    time.sleep(0.2)
    assert mirror.flush() == 0  # refused: the change waits for the next flush
    mirror.observe(records.put("u1", State.RUNNING, "counted 6"))
    assert mirror.flush() == 1 and len(api.patches) == total + 1
    assert _lag_count() == observations + 1
    assert metrics.STATUS_LAG._sum.get() - lag_sum >= 0.2  # from "counted 5", not from the retry


def _lag_count() -> float:
    return sum(sample.value for family in metrics.STATUS_LAG.collect() for sample in family.samples
               if sample.name.endswith("_count"))

class Held(ApiServer):
    """Patches wait at `gate` while `holding` (a slow API server)."""

    def __init__(self, gate: threading.Barrier | threading.Event) -> None:
        super().__init__()
        self.gate, self.holding = gate, False
        self.entered = threading.Event()  # a patch is waiting at the gate

    def patch_status(self, resource: Resource, status: dict[str, Any]) -> None:
        if self.holding:
            self.entered.set()
            assert self.gate.wait(timeout=WAIT) is not False
        super().patch_status(resource, status)


def tracked(mirror: StatusMirror, records: Records, uids: list[str]) -> None:
    for uid in uids:
        records.put(uid, State.RUNNING)
        handled(mirror, records, resource(uid))


def test_statuses_of_many_resources_are_in_flight_together() -> None:
    """Four patches must be in flight at once for any to return: sent one after another, the
    first would wait in vain."""
    records, api = Records(), Held(threading.Barrier(4))
    mirror = StatusMirror(records, api, interval=0, patch_threads=4)  # type: ignore[arg-type]
    tracked(mirror, records, ["u1", "u2", "u3", "u4"])
    api.holding = True
    for uid in ("u1", "u2", "u3", "u4"):
        mirror.observe(records.put(uid, State.RUNNING, "step 1"))
    assert mirror.flush() == 4
    assert {uid: status["state"] for uid, status in api.statuses.items()} == dict.fromkeys(
        ["u1", "u2", "u3", "u4"], "Running")


def test_a_resource_has_one_patch_in_flight_and_its_next_status_follows_it() -> None:
    records, api = Records(), Held(threading.Event())
    mirror = StatusMirror(records, api, interval=0)  # type: ignore[arg-type]
    tracked(mirror, records, ["u1"])
    api.holding = True
    mirror.observe(records.put("u1", State.RUNNING, "step 1"))
    first = threading.Thread(target=mirror.flush)  # as the mirror's own thread
    first.start()
    assert api.entered.wait(timeout=WAIT)
    mirror.observe(records.put("u1", State.DONE, "step 2"))
    assert mirror.flush() == 0  # step 1 is in flight: step 2 waits for it
    assert isinstance(api.gate, threading.Event)
    api.gate.set()
    first.join(timeout=WAIT)
    assert mirror.flush() == 1
    messages = [status.get("progress", {}).get("message") for _, status in api.patches[-2:]]
    assert messages == ["step 1", "step 2"]
    assert api.statuses["u1"]["state"] == "Done"


def test_resources_by_state_are_counted_as_they_move_and_go() -> None:
    records, api = Records(), ApiServer()
    mirror = StatusMirror(records, api, interval=60)  # type: ignore[arg-type]
    for uid in ("u1", "u2", "u3"):
        records.put(uid, State.RUNNING)
        handled(mirror, records, resource(uid))
    mirror.observe(records.put("u1", State.DONE))
    mirror.forget("u2")
    mirror.flush(force=True)
    counted = {state.value: metrics.RESOURCES.labels(state.value)._value.get() for state in State}
    assert (counted["Running"], counted["Done"], sum(counted.values())) == (1, 1, 2)


def test_a_resumed_resource_counts_by_the_state_its_status_shows() -> None:
    """A restarted operator counts every resource it took up, those it has nothing to tell too."""
    records, api = Records(), ApiServer()
    mirror = StatusMirror(records, api, interval=60)  # type: ignore[arg-type]
    for uid in ("u1", "u2"):
        records.put(uid, State.DONE)
        handled(StatusMirror(records, api, interval=60), records, resource(uid))  # type: ignore[arg-type]
    for uid in ("u1", "u2"):
        handled(mirror, records, resource(uid, api.statuses[uid]))
    assert metrics.RESOURCES.labels("Done")._value.get() == 2


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
    max_leaves=8,
)
statuses = st.dictionaries(st.sampled_from("abcd"), json_values, max_size=4).map(
    lambda status: {key: value for key, value in status.items() if value is not None})


@given(statuses, st.dictionaries(st.sampled_from("abcd"), json_values, max_size=4))
def test_the_changes_of_a_merge_patch_leave_the_status_as_the_whole_patch_would(
    status: dict[str, Any], patch: dict[str, Any]
) -> None:
    change = changes(status, patch)
    assert merged(status, change) == merged(status, patch)
    assert changes(merged(status, patch), patch) == {}
