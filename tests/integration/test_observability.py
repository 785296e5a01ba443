"""What operators of Shards look at: the live worker list and Prometheus metrics."""

from __future__ import annotations

import urllib.request

from shards.states import State
from shards_store.embedded import free_port

from integration.harness import ShardsHarness, wait_until


def test_workers_are_listed_and_leave_the_list_on_shutdown(shards_env: ShardsHarness) -> None:
    first, second = shards_env.start_workers(2, concurrency=3)
    listed = shards_env.ok("workers", "-o", "json").json()
    assert sorted(w["pid"] for w in listed) == sorted([first.pid, second.pid])
    assert {w["concurrency"] for w in listed} == {3}
    assert "wait-for-stop" in listed[0]["catalog"]
    first.terminate()
    assert [w["pid"] for w in shards_env.ok("workers", "-o", "json").json()] == [second.pid]


def test_a_worker_serves_prometheus_metrics(shards_env: ShardsHarness) -> None:
    port = free_port()
    shards_env.start_worker("tests/integration/apps/testapp.py:app", "--metrics-port", str(port))
    shards_env.define("farm")
    shards_env.ok("launch", "quick", "--scope", "farm")
    shards_env.wait_state("farm", "quick", State.DONE)

    text = wait_until(lambda: 'shards_runs_ended_total{state="Done"} 1.0' in (t := _scrape(port)) and t,
                      what="the Done run in the metrics")
    assert 'shards_requests_claimed_total{kind="launch"} 1.0' in text
    assert 'shards_requests_claimed_total{kind="define"} 1.0' in text
    assert "shards_runs_active 0.0" in text
    # The histograms: one run picked up, its duration under its state and (a declared catalog of a
    # few processes) its process, one stop.
    assert "shards_launch_to_running_seconds_count 1.0" in text
    assert 'shards_run_duration_seconds_count{process="quick",state="Done"} 1.0' in text
    shards_env.ok("launch", "wait-for-stop", "--scope", "farm")
    shards_env.wait_state("farm", "wait-for-stop", State.RUNNING)
    shards_env.ok("stop", "wait-for-stop", "--scope", "farm")
    shards_env.wait_state("farm", "wait-for-stop", State.STOPPED)
    text = wait_until(lambda: 'shards_stop_seconds_count{forced="false"} 1.0' in (t := _scrape(port)) and t,
                      what="the stop in the metrics")
    assert 'shards_run_duration_seconds_count{process="wait-for-stop",state="Stopped"} 1.0' in text


def test_an_isolated_runs_inline_children_are_counted_by_its_worker(shards_env: ShardsHarness) -> None:
    """Under process isolation (the default) a child ends in its parent's OS process; the worker,
    whose metrics are scraped, counts it."""
    port = free_port()
    shards_env.start_worker("tests/integration/apps/testapp.py:app", "--metrics-port", str(port))
    shards_env.define("farm")
    shards_env.ok("launch", "parent", "--scope", "farm", "--args", '{"child": "child-ok"}')
    shards_env.wait_state("farm", "parent", State.DONE)
    shards_env.ok("launch", "parent", "--scope", "farm",
                  "--args", '{"child": "child-fail", "survive_failure": true}')
    shards_env.wait_state("farm", "parent", State.DONE)
    text = wait_until(lambda: 'shards_runs_ended_total{state="Done"} 3.0' in (t := _scrape(port)) and t,
                      what="two parents and a child Done in the metrics")
    assert 'shards_runs_ended_total{state="Failed"} 1.0' in text
    # Durations are the top-level runs': the parents.
    assert 'shards_run_duration_seconds_count{process="parent",state="Done"} 2.0' in text
    assert "child-ok" not in text


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())
