"""Stranded records are settled even when no worker is left: the operator's reconciler (its plain
loop, in-process: no Kubernetes needed) reaps a SIGKILLed worker and settles its runs (issue 22)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from shards.states import State
from shards_operator.reconciler import start_reconciler
from shards_store import Store

from integration.harness import ShardsHarness


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
