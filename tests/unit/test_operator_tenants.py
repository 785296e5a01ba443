"""What a tenant stores cannot stop the operator, and what a tenant reads follows the stored
status and names no server (issue 22, point 4). The e2e side: tests/e2e/test_operator_tenants.py."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import kopf
import pytest
from shards.errors import InvalidArgs, ShardsError, StoreUnavailable
from shards.records import ProcessRecord, ProcessStatus
from shards.states import State
from shards_controller import check_args
from shards_operator.mirror import StatusMirror
from shards_operator.persistence import (
    API_SERVER_DEPTH,
    ArgsDigestDiffBaseStorage,
    allow_deep_bodies,
    args_digest,
)
from shards_operator.resource import Resource, apply_spec, release

ADDRESS = "10.213.0.1:51195"


def deep(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep, built without recursion."""
    top: dict[str, Any] = {}
    inner = top
    for _ in range(depth - 1):
        inner["a"] = {}
        inner = inner["a"]
    return top


# -- args the API server stores, however deep or large ------------------------------------------
def test_args_too_deep_for_any_recursion_are_refused_in_one_line() -> None:
    with pytest.raises(InvalidArgs) as refused:
        check_args(deep(100_000))
    assert str(refused.value) == "process arguments nest more than 32 levels deep"


def test_args_over_the_size_limit_are_refused_in_one_line() -> None:
    with pytest.raises(InvalidArgs, match=r"^process arguments are \d+ bytes; the limit is 65536$"):
        check_args({"blob": "x" * 300 * 1024})


def test_the_args_digest_tells_values_apart_at_any_depth() -> None:
    assert args_digest({"a": 1, "b": [1, "2"]}) == args_digest({"b": [1, "2"], "a": 1})
    different = [{"a": 1}, {"a": "1"}, {"a": [1]}, {"a": [[1]]}, {"a": [1, 2]}, {"a": [12]}, {"b": 1},
                 {"a": {"b": 1}}, {"a": None}, {"a": True}, {"a": 1.5}, {}, []]
    assert len({args_digest(value) for value in different}) == len(different)
    assert args_digest(deep(100_000)) != args_digest(deep(99_999))


def body(args: Any, annotations: dict[str, str] | None = None) -> kopf.Body:
    return kopf.Body({"apiVersion": "shards.dev/v1alpha1", "kind": "ShardProcess",
                      "metadata": {"name": "job", "namespace": "team-a", "annotations": annotations or {}},
                      "spec": {"process": "quick", "runs": 1, "args": args}, "status": {"state": "Idle"}})


def test_the_diff_base_keeps_a_digest_of_args_not_args() -> None:
    storage = ArgsDigestDiffBaseStorage(prefix="shards.dev", key="last-handled-spec")
    large = {"blob": "x" * 300 * 1024}
    essence = storage.build(body=body(large))
    assert essence["spec"]["process"] == "quick" and essence["spec"]["args"] == args_digest(large)
    patch = kopf.Patch()
    storage.store(body=body(large), patch=patch, essence=essence)
    stored = patch["metadata"]["annotations"]["shards.dev/last-handled-spec"]
    assert len(stored) < 512  # all annotations of a resource share 256 KiB
    # The base it stored reads back as the base it builds: no change; new args are a change.
    again = body(large, {"shards.dev/last-handled-spec": stored})
    assert storage.fetch(body=again) == storage.build(body=again)
    assert storage.fetch(body=again) != storage.build(body=body({"blob": "y"}))
    # A base stored before (args in full) reads as digested: an upgrade is no change of spec.
    legacy = json.dumps({"spec": {"process": "quick", "runs": 1, "args": large}})
    assert storage.fetch(body=body(large, {"shards.dev/last-handled-spec": legacy}))["spec"]["args"] == \
        args_digest(large)


def test_the_diff_base_of_the_deepest_args_needs_no_recursion() -> None:
    storage = ArgsDigestDiffBaseStorage(prefix="shards.dev", key="last-handled-spec")
    essence = storage.build(body=body(deep(API_SERVER_DEPTH * 10)))
    assert essence["spec"]["args"].startswith("sha256:")


def test_a_body_as_deep_as_the_api_server_stores_decodes_on_any_operator_thread() -> None:
    text = '{"spec":{"args":' + '{"a":' * API_SERVER_DEPTH + "1" + "}" * API_SERVER_DEPTH + "}}"
    limit, stack = sys.getrecursionlimit(), threading.stack_size()
    try:
        allow_deep_bodies()
        outcomes: list[str] = []

        def decode() -> None:
            decoded = json.loads(text)
            outcomes.append(json.dumps(decoded)[-3:])

        thread = threading.Thread(target=decode)
        thread.start()
        thread.join(timeout=60)
        decode()  # and on the main thread
        assert outcomes == ["}}}", "}}}"]
    finally:
        sys.setrecursionlimit(limit)
        threading.stack_size(stack)


# -- Events follow the stored status -------------------------------------------------------------
class Recorder:
    """The API server's side: statuses patched, Events posted (one per name, as Kubernetes)."""

    def __init__(self, fail: int = 0) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []
        self.names: set[str] = set()
        self.fail = fail

    def patch_status(self, resource: Resource, status: dict[str, Any]) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("the API server refused the patch")
        self.statuses.append(status)

    def event(self, resource: Resource, kind: str, reason: str, message: str, key: str = "") -> None:
        if key and f"{resource.uid}/{key}" in self.names:
            return  # the real patcher's create is refused (409): posted already
        self.names.add(f"{resource.uid}/{key}")
        self.events.append((kind, reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]


class Controller:
    """One process record; a launch is idempotent by run id, as the real one."""

    def __init__(self, state: State | None = None, error: str = "", launch_error: Exception | None = None,
                 stop_error: Exception | None = None) -> None:
        self.record = None if state is None else self._record(state, error)
        self.launch_error, self.stop_error = launch_error, stop_error
        self.launches = 0
        self.store = self.processes = self.runs = self

    @staticmethod
    def _record(state: State, error: str = "") -> ProcessRecord:
        return ProcessRecord(scope_id="team-a", process_id="quick", name="Quick", run_id="k8s-uid-1-1",
                             launch_id="k8s-uid-1-1", attempt=1,
                             status=ProcessStatus(state=state, error=error))

    def launch(self, scope: str, process: str, **_: object) -> ProcessRecord:
        self.launches += 1
        if self.launch_error is not None:
            raise self.launch_error
        if self.record is None:
            self.record = self._record(State.SCHEDULED)
        return self.record

    def get(self, *key: str) -> ProcessRecord | None:  # store.processes.get; store.runs.get
        return self.record if len(key) == 2 else None

    def waiting_reasons(self, records: list[ProcessRecord], max_age: float = 0.0) -> dict[str, str]:
        return {}

    def stop(self, scope: str, process: str, *, force: bool = False) -> None:
        if self.stop_error is not None:
            raise self.stop_error

    def run_logs(self, *_: object) -> Any:
        raise ShardsError("no log")


def stored(status: dict[str, Any], **spec: Any) -> Resource:
    """The resource as the API server holds it: its status is what an operator last patched."""
    return Resource("team-a", "job", "uid-1", 1, {"process": "quick", **spec}, status)


def handle(mirror: StatusMirror, controller: Controller, resource: Resource) -> None:
    """What the apply handler does."""
    mirror.update(resource, apply_spec(controller, resource, {}))  # type: ignore[arg-type]
    mirror.flush(force=True)


RUNNING = {"runs": 1, "runId": "k8s-uid-1-1", "state": "Running", "attempt": 1}


def test_a_run_that_ended_while_no_operator_was_there_gets_its_done_event_and_no_second_launch() -> None:
    controller, recorder = Controller(State.DONE), Recorder()
    handle(StatusMirror(controller, recorder, interval=60), controller, stored(RUNNING))  # type: ignore[arg-type]
    assert recorder.statuses[-1]["state"] == "Done"
    assert recorder.reasons() == ["Done"] and controller.launches == 0


def test_an_end_the_stored_status_shows_already_is_not_posted_again() -> None:
    controller, recorder = Controller(State.DONE), Recorder()
    handle(StatusMirror(controller, recorder, interval=60), controller,  # type: ignore[arg-type]
           stored({**RUNNING, "state": "Done"}))
    assert recorder.reasons() == []


def test_a_launch_whose_status_was_never_patched_is_announced_once_by_whoever_patches_it() -> None:
    """An operator killed after the launch and before its status patch posted nothing; the next
    one launches again (the run is there already) and posts Launched once the status shows it."""
    controller = Controller()
    controller.launch("team-a", "quick")  # the first operator's launch; then it was killed
    recorder = Recorder()
    mirror = StatusMirror(controller, recorder, interval=60)  # type: ignore[arg-type]
    handle(mirror, controller, stored({}))
    handle(mirror, controller, stored({}))  # a retry of the handler with a body older than the patch
    assert recorder.reasons() == ["Launched"]
    assert recorder.events[0][2] == "run 1 of quick in scope team-a"


def test_a_refused_patch_is_sent_again_and_its_events_are_posted_once() -> None:
    controller, recorder = Controller(State.DONE), Recorder(fail=1)
    mirror = StatusMirror(controller, recorder, interval=60)  # type: ignore[arg-type]
    resource = stored(RUNNING)
    mirror.update(resource, apply_spec(controller, resource, {}))  # type: ignore[arg-type]
    assert recorder.statuses == []
    mirror.flush(force=True)
    assert recorder.statuses[-1]["state"] == "Done" and recorder.reasons() == ["Done"]


def test_an_operator_killed_between_its_events_and_its_status_patch_is_not_announced_twice() -> None:
    """The Events go first, named after what they announce: the next operator, which finds the
    status unmoved, posts the same Events again, and the API server keeps one of each."""
    controller = Controller()
    api_server = Recorder(fail=1)  # the first operator's patch never lands: it was killed
    first = StatusMirror(controller, api_server, interval=60)  # type: ignore[arg-type]
    resource = stored({})
    first.update(resource, apply_spec(controller, resource, {}))  # type: ignore[arg-type]
    first.flush(force=True)
    assert api_server.reasons() == ["Launched"] and api_server.statuses == []
    controller.record = Controller._record(State.DONE)  # the run ends while no operator is there
    handle(StatusMirror(controller, api_server, interval=60), controller, stored({}))  # type: ignore[arg-type]
    assert api_server.reasons() == ["Launched", "Done"]
    assert api_server.statuses[-1]["runs"] == 1


# -- no server address in what a tenant reads -----------------------------------------------------
def test_an_unexpected_store_error_waits_with_a_generic_text() -> None:
    error = ShardsError(f"the launch could not be queued: {ADDRESS}: not primary")
    outcome = apply_spec(Controller(launch_error=error), stored({}), {})  # type: ignore[arg-type]
    waiting = outcome.status["conditions"][0]
    assert (waiting["reason"], outcome.retry_after is not None) == ("OperatorError", True)
    assert waiting["message"] == "an error on the operator's side (its log has the detail); retrying"
    assert ADDRESS not in repr(outcome)
    crash = apply_spec(Controller(launch_error=KeyError(ADDRESS)), stored({}), {})  # type: ignore[arg-type]
    assert crash.status["conditions"][0]["reason"] == "OperatorError" and ADDRESS not in repr(crash)


def test_a_delete_that_could_not_stop_the_run_names_no_server() -> None:
    controller = Controller(State.RUNNING, stop_error=ShardsError(f"write to {ADDRESS} failed"))
    ended, message = release(controller, stored(RUNNING), timeout=1)  # type: ignore[arg-type]
    assert not ended
    assert message == "could not stop the run: an error on the operator's side (its log has the detail)"


def test_a_run_ended_by_an_outage_reads_without_the_servers_address() -> None:
    outage = f"MongoDB unreachable: {ADDRESS}: [Errno 111] Connection refused"
    controller, recorder = Controller(State.FAILED, error=outage), Recorder()
    handle(StatusMirror(controller, recorder, interval=60), controller, stored(RUNNING))  # type: ignore[arg-type]
    status = recorder.statuses[-1]
    assert status["error"] == "MongoDB unreachable"
    assert ADDRESS not in json.dumps(status) and ADDRESS not in repr(recorder.events)
    assert recorder.reasons() == ["Failed"]


class OutageAfterLaunch(Controller):
    def get(self, *key: str) -> ProcessRecord | None:
        if self.launches:
            raise StoreUnavailable(f"MongoDB unreachable: {ADDRESS}: [Errno 111] Connection refused")
        return super().get(*key)


def test_an_outage_just_after_a_launch_does_not_fail_the_handler() -> None:
    """kopf would put the error's text (the server's address) in an Event and an annotation."""
    controller, recorder = OutageAfterLaunch(), Recorder()
    handle(StatusMirror(controller, recorder, interval=60), controller, stored({}))  # type: ignore[arg-type]
    assert recorder.statuses[-1]["runs"] == 1 and recorder.reasons() == ["Launched"]
