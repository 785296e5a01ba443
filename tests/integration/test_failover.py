"""A replica-set election stops nothing: with the default flags, a MongoDB outage as long as an
unplanned election (10-12 s, here 15 s) stops no run and runs nothing twice.

The worker keeps its runs through an outage that every worker sees (nobody can declare anyone lost
while nobody reaches MongoDB); the lease only decides when a worker cut off alone must have
stopped (see test_frozen_worker.py for a worker that cannot act at all).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from shards.states import State
from shards_worker import WorkerSettings
from tooling.harness import EmbeddedMongo

from integration.harness import ShardsHarness, wait_until

SCOPE = "election"
DEFAULTS = WorkerSettings()  # the CLI's defaults are these; the harness' short ones are overridden
DEFAULT_FLAGS = ("--lease", f"{DEFAULTS.lease:g}", "--heartbeat", f"{DEFAULTS.heartbeat_interval:g}")
OUTAGE = 15.0


def test_an_outage_as_long_as_an_election_stops_no_run(outage_env: tuple[ShardsHarness, EmbeddedMongo],
                                                       tmp_path: Path) -> None:
    harness, mongo = outage_env
    worker = harness.start_worker("tests/integration/apps/testapp.py:app", *DEFAULT_FLAGS, concurrency=2)
    wait_until(lambda: harness.store.workers.alive(), what="a live worker")
    harness.define(SCOPE)
    journal = tmp_path / "journal"
    harness.ok("launch", "ticker", "--scope", SCOPE, "--args",
               json.dumps({"journal": str(journal), "seconds": OUTAGE + 8}), "--retries", "2")
    harness.wait_state(SCOPE, "ticker", State.RUNNING)
    time.sleep(2.5)  # a heartbeat or so before the fault: its worst moment is just after a beat
    mongo.kill()
    time.sleep(OUTAGE)  # the fault itself
    mongo.start()
    done = harness.wait_state(SCOPE, "ticker", State.DONE, State.FAILED, State.STOPPED, timeout=90)
    assert (done.state, done.attempt, done.status.error) == (State.DONE, 1, "")
    attempts = {line.split()[0] for line in journal.read_text().splitlines()}
    assert attempts == {"1"}, attempts
    assert worker.running, "the worker exited"
    assert "stopping" not in worker.output().lower(), worker.output()
