"""A MongoDB outage longer than the fence point stops the runs, and nothing else: the workers stay
up, and once MongoDB is back each settles its own stopped runs at once, as hand-offs that spend no
retry, and claims again (issue 22). The core promise holds throughout: a run's code never overlaps
another execution of the same launch (the journal, outside MongoDB, shows when code executed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from shards.states import State
from tooling.harness import EmbeddedMongo

from integration.harness import ShardsHarness, wait_until

OutageEnv = tuple[ShardsHarness, EmbeddedMongo]
LEASE = 3.0  # the harness's workers run with --lease 3: runs stop at 1.5 s, are ended by 2.55 s


def journal_spans(journal: Path) -> dict[int, tuple[float, float]]:
    """Attempt -> (first, last) time its code wrote a line (ticker: "attempt pid time")."""
    spans: dict[int, tuple[float, float]] = {}
    for line in journal.read_text().splitlines():
        attempt, _pid, at = line.split()
        first, last = spans.get(int(attempt), (float(at), float(at)))
        spans[int(attempt)] = (min(first, float(at)), max(last, float(at)))
    return spans


def test_workers_cut_off_past_their_lease_stay_up_and_hand_their_runs_off(
    outage_env: OutageEnv, tmp_path: Path
) -> None:
    harness, mongo = outage_env
    workers = harness.start_workers(2, concurrency=2)
    launches = {"never": (), "thrice": ("--retries", "3")}  # a launch without retries, and one with
    journals = {name: tmp_path / f"{name}.journal" for name in launches}
    for name in launches:
        harness.define(f"o-{name}")
    for name, flags in launches.items():
        # ticker never asks whether to go on: only a kill ends it before its time.
        harness.ok("launch", "ticker", "--scope", f"o-{name}", *flags,
                   "--args", json.dumps({"journal": str(journals[name]), "seconds": 12}))
    for name in launches:
        harness.wait_state(f"o-{name}", "ticker", State.RUNNING)
    mongo.kill()
    time.sleep(LEASE * 1.7)  # the fault: well past the fence point (85% of the lease)
    assert all(worker.running for worker in workers), [w.output()[-2000:] for w in workers]
    mongo.start()

    for name in launches:
        done = harness.wait_state(f"o-{name}", "ticker", State.DONE, State.FAILED, State.STOPPED, timeout=90)
        assert (done.state, done.attempt, done.retried) == (State.DONE, 2, 0), (name, done)
        first, second = journal_spans(journals[name])[1], journal_spans(journals[name])[2]
        assert first[1] < second[0], f"attempt 1 executed until {first[1]}, after attempt 2 began {second[0]}"
    assert all(worker.running for worker in workers), "a worker exited"
    assert len(harness.store.workers.alive()) == 2
    # Both still claim: a new launch runs.
    harness.ok("launch", "quick", "--scope", "o-never", "--wait")
    for worker in workers:
        assert "Traceback" not in worker.output(), worker.output()


def test_a_run_handed_off_in_an_outage_runs_again_once(outage_env: OutageEnv, tmp_path: Path) -> None:
    """The records a worker handed off during an outage are not its own any more: a heartbeat or
    reconciler that comes later leaves the relaunch alone."""
    harness, mongo = outage_env
    worker = harness.start_workers(1)[0]
    harness.define("p")
    journal = tmp_path / "journal"
    harness.ok("launch", "ticker", "--scope", "p",
               "--args", json.dumps({"journal": str(journal), "seconds": 8}))
    harness.wait_state("p", "ticker", State.RUNNING)
    mongo.kill()
    wait_until(lambda: "stopping 1 runs" in worker.output(), what="the fence to stop the run")
    time.sleep(LEASE)  # past the end of the lease
    mongo.start()
    done = harness.wait_state("p", "ticker", State.DONE, State.FAILED, State.STOPPED, timeout=90)
    assert (done.state, done.attempt, done.retried) == (State.DONE, 2, 0), done
    history = harness.controller.history("p", "ticker")
    assert [(run.attempt, run.state) for run in reversed(history)] == [(1, State.STOPPED), (2, State.DONE)]
    assert worker.running


def test_a_worker_declared_lost_while_cut_off_comes_back_as_a_new_incarnation(
    shards_env: ShardsHarness,
) -> None:
    """Reaped by others while it was cut off alone (here: by the test's hand, with nothing
    running), a worker registers anew and serves on, instead of shutting down."""
    harness = shards_env
    worker = harness.start_workers(1)[0]
    harness.define("q")
    first = harness.store.workers.alive()[0].worker_id
    assert harness.store.workers.retire(first, "Lost", f"worker {first} was lost (no heartbeat for 3s)")
    wait_until(lambda: [w.worker_id for w in harness.store.workers.alive()] not in ([], [first]),
               what="a new incarnation")
    assert worker.running
    harness.ok("launch", "quick", "--scope", "q", "--wait")
    assert harness.record("q", "quick").worker_id == ""  # ended
    assert harness.controller.history("q", "quick")[0].worker_id != first


def test_a_worker_started_during_an_outage_waits_for_mongodb(outage_env: OutageEnv) -> None:
    """A worker restarted while MongoDB is away (a crash during an outage) waits for it."""
    harness, mongo = outage_env
    mongo.kill()
    worker = harness.start_worker()
    wait_until(lambda: "MongoDB unreachable" in worker.output() or not worker.running,
               what="the worker to notice the outage")
    assert worker.running, worker.output()
    mongo.start()
    wait_until(lambda: harness.store.workers.alive(), what="the worker to register")
    harness.define("r")
    harness.ok("launch", "quick", "--scope", "r", "--wait")
