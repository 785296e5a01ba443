"""The ground truth of the Kubernetes chaos run (k8s_counter.py) tells duplicates by itself:
events posted over HTTP, as the app's executions in the Pods post them."""

from __future__ import annotations

import json
import urllib.request

import pytest

from chaos.k8s_counter import Counter, Execution, duplicates, launch_of, live_at, resumed_after
from chaos.k8s_postrender import mount_app


def execution(run: str, attempt: int, started: float, last: float, outcome: str = "",
              pod: str = "w-1") -> Execution:
    return Execution(f"{run}/{started}", run, attempt, "counted-00", pod, started, last, outcome)


def test_launch_of_strips_the_attempt_suffix() -> None:
    assert launch_of("k8s-abc-2", 1) == "k8s-abc-2"
    assert launch_of("k8s-abc-2.3", 3) == "k8s-abc-2"


def test_a_hand_off_after_the_last_beat_is_no_duplicate() -> None:
    cut = execution("k8s-u-1", 1, 10.0, 12.0)  # killed: no end, last beat at 12
    retry = execution("k8s-u-1.2", 2, 13.0, 20.0, "completed", pod="w-2")
    assert duplicates([cut, retry]) == []
    assert [e.launch for e in live_at([cut, retry], 12.5, "w-1")] == ["k8s-u-1"]
    assert resumed_after([cut, retry], "k8s-u-1", 12.5) == 13.0


@pytest.mark.parametrize(("second", "says"), [
    (execution("k8s-u-1.2", 2, 11.0, 20.0, "", pod="w-2"), "started 1.00 s before"),
    (execution("k8s-u-1.2", 2, 13.0, 20.0, "completed", pod="w-2"), "completed 2 times"),
])
def test_overlap_or_a_second_completion_is_a_duplicate(second: Execution, says: str) -> None:
    first = execution("k8s-u-1", 1, 10.0, 12.0, "completed")
    [found] = duplicates([first, second])
    assert found.startswith("k8s-u-1: ") and says in found


def test_the_counter_records_what_executions_post() -> None:
    counter = Counter("127.0.0.1").start()
    try:
        for event, outcome in (("start", ""), ("beat", ""), ("end", "stopped")):
            body = {"event": event, "execution": "e1", "run": "k8s-u-1.2", "attempt": 2,
                    "process": "counted-00", "pod": "w-1", "outcome": outcome}
            request = urllib.request.Request(counter.url, data=json.dumps(body).encode())
            with urllib.request.urlopen(request, timeout=5) as answer:
                assert answer.status == 204
        with urllib.request.urlopen(urllib.request.Request(counter.url, data=b"not json"), timeout=5):
            pass
    finally:
        counter.stop()
    [seen] = counter.executions()
    assert (seen.launch, seen.attempt, seen.pod, seen.outcome) == ("k8s-u-1", 2, "w-1", "stopped")
    assert seen.started <= seen.last and counter.bad_events == 1


def test_the_post_renderer_mounts_the_app_in_worker_deployments_only() -> None:
    def deployment(component: str) -> dict[str, object]:
        return {"kind": "Deployment", "metadata": {"labels": {"app.kubernetes.io/component": component}},
                "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}

    worker = mount_app(deployment("worker"), "chaos-app")
    pod = worker["spec"]["template"]["spec"]  # type: ignore[index]
    assert pod["volumes"] == [{"name": "chaos-app", "configMap": {"name": "chaos-app"}}]
    assert pod["containers"][0]["volumeMounts"][0]["mountPath"] == "/chaos"
    assert "volumes" not in mount_app(deployment("operator"), "chaos-app")["spec"]["template"]["spec"]  # type: ignore[index]
