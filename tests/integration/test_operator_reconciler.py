"""Stranded records are settled even when no worker is left: the operator's reconciler (its plain
loop, in-process: no Kubernetes needed) reaps a SIGKILLed worker and settles its runs (issue 22).
Until it does, the operator's census counts them in shards_ownerless_runs."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from shards.states import State
from shards_operator.metrics import PoolCensus
from shards_operator.reconciler import start_reconciler
from shards_store import Store

from integration.harness import ShardsHarness, wait_until

LEASE = 3.0  # the harness's workers run with --lease 3


@contextlib.contextmanager
def operator_reconciler(store: Store) -> Iterator[None]:
    """The operator's loop on a thread of this test, as its runner starts it."""
    stop = threading.Event()
    thread = start_reconciler(store, stop, interval=0.5)
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_the_operator_settles_the_runs_of_the_last_worker_killed(
    shards_env: ShardsHarness, tmp_path: Path
) -> None:
    harness = shards_env
    worker = harness.start_workers(1, concurrency=2)[0]
    harness.define("handed")
    harness.define("stops")
    harness.ok("launch", "ticker", "--scope", "handed",
               "--args", json.dumps({"journal": str(tmp_path / "journal"), "seconds": 3}))
    harness.ok("launch", "wait-for-stop", "--scope", "stops")  # on_shutdown="stop": not run again
    killed = harness.wait_state("handed", "ticker", State.RUNNING).worker_id
    harness.wait_state("stops", "wait-for-stop", State.RUNNING)
    worker.kill()  # SIGKILL: no worker is left to notice

    with operator_reconciler(harness.store):
        handed = harness.wait_state("handed", "ticker", State.SCHEDULED, State.FAILED, State.STOPPED)
        assert (handed.state, handed.attempt, handed.retried, handed.handoffs) == (State.SCHEDULED, 2, 0, 1)
        assert harness.store.requests.for_runs([handed.run_id]), "the next attempt is queued"
        stopped = harness.wait_state("stops", "wait-for-stop", State.FAILED, State.STOPPED)
        assert stopped.state is State.FAILED and f"worker {killed} was lost" in stopped.status.error
        lost = harness.store.workers.get(killed)
        assert lost is not None and lost.state == "Lost"
    # A worker that comes later runs the handed-off attempt.
    harness.start_workers(1)
    done = harness.wait_state("handed", "ticker", State.DONE, State.FAILED, State.STOPPED)
    assert (done.state, done.attempt) == (State.DONE, 2)


def ownerless(census: PoolCensus) -> dict[str, float]:
    """One scrape's shards_ownerless_runs, per pool."""
    [family] = [family for family in census.collect() if family.name == "shards_ownerless_runs"]
    return {sample.labels["pool"]: sample.value for sample in family.samples}


def test_the_census_counts_a_killed_workers_run_as_ownerless_until_a_reconciler_settles_it(
    shards_env: ShardsHarness,
) -> None:
    harness = shards_env
    worker = harness.start_workers(1)[0]
    harness.define("census")
    harness.ok("launch", "wait-for-stop", "--scope", "census")  # on_shutdown="stop": not run again
    killed = harness.wait_state("census", "wait-for-stop", State.RUNNING).worker_id
    census = PoolCensus(harness.store)  # scraped every 0.25 s here, not every 30 s
    # A healthy run: its worker beats, so watching it for more than a lease finds its owner live.
    watched_until = time.monotonic() + LEASE + 1.5
    while time.monotonic() < watched_until:
        assert ownerless(census) == {"default": 0}
        time.sleep(0.25)

    worker.kill()  # SIGKILL: the registry still says Alive, and no worker is left to reap it
    wait_until(lambda: ownerless(census) == {"default": 1}, timeout=LEASE + 10,
               what="the census to count the killed worker's run as ownerless")
    killed_at = time.monotonic()
    while time.monotonic() < killed_at + 1.0:  # it stays counted while nobody settles it
        assert ownerless(census) == {"default": 1}
        time.sleep(0.25)
    assert harness.record("census", "wait-for-stop").state is State.RUNNING
    registered = harness.store.workers.get(killed)
    assert registered is not None and registered.state == "Alive"

    with operator_reconciler(harness.store):
        settled = harness.wait_state("census", "wait-for-stop", State.FAILED, State.STOPPED)
    assert settled.state is State.FAILED and f"worker {killed} was lost" in settled.status.error
    assert ownerless(census) == {}  # no live worker, no pending launch, nothing ownerless: no pool

    # A run of a new worker is owned again, however long the census watches it.
    harness.start_workers(1)
    harness.ok("launch", "wait-for-stop", "--scope", "census")
    harness.wait_state("census", "wait-for-stop", State.RUNNING)
    watched_until = time.monotonic() + LEASE + 1.5
    while time.monotonic() < watched_until:
        assert ownerless(census) == {"default": 0}
        time.sleep(0.25)
