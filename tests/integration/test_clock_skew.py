"""Times that decide do not depend on one worker's wall clock (issue 22): a worker whose clock is
two minutes ahead neither delays the retries it queues nor starts others' retries early, and no
duration comes out negative. The skew is the worker's own (SHARDS_TEST_CLOCK_SKEW, read by
shards.records.wall_clock); the journal's times are the machine's real clock."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shards.records import CLOCK_SKEW_ENV
from shards.states import State

from integration.harness import ShardsHarness, wait_until

FLAKY = "tests/integration/apps/flaky.py:app"
SKEWED = {CLOCK_SKEW_ENV: "120"}  # this worker's wall clock is two minutes ahead


def stamps(journal: Path) -> dict[tuple[str, int], float]:
    """("start"|"end", attempt) -> real time."""
    lines = [line.split() for line in journal.read_text().splitlines()]
    return {(kind, int(attempt)): float(at) for kind, attempt, at in lines}


def launch_stamped(harness: ShardsHarness, scope: str, journal: Path, backoff: float) -> None:
    harness.define(scope)
    harness.ok("launch", "stamped", "--scope", scope, "--retries", "1", "--retry-backoff", f"{backoff:g}",
               "--args", json.dumps({"journal": str(journal), "fail": 1}))


def queued_delay(harness: ShardsHarness, scope: str) -> float:
    """The backoff of the retry queued after attempt 1 (from its progress message)."""
    record = wait_until(lambda: (r := harness.record(scope, "stamped")).attempt == 2 and r,
                        what="the retry to be queued")
    found = re.search(r"in ([0-9.]+) s", record.progress.message)
    assert found, record.progress.message
    return float(found.group(1))


def test_a_skewed_worker_neither_delays_nor_hurries_retries(
    shards_env: ShardsHarness, tmp_path: Path
) -> None:
    harness = shards_env
    # A skewed worker queues a retry; a correct one must run it on time.
    skewed = harness.start_worker(FLAKY, env=SKEWED)
    wait_until(lambda: harness.store.workers.alive(), what="the skewed worker")
    queued = tmp_path / "queued-by-skewed"
    launch_stamped(harness, "by-skewed", queued, backoff=2)
    delay = queued_delay(harness, "by-skewed")
    skewed.terminate()
    correct = harness.start_worker(FLAKY)
    done = harness.wait_state("by-skewed", "stamped", State.DONE, State.FAILED, State.STOPPED)
    assert (done.state, done.attempt) == (State.DONE, 2)
    times = stamps(queued)
    assert times[("start", 2)] - times[("end", 1)] < delay + 10, "the retry waited out the skew"

    # A correct worker queues a retry; a skewed one must not start it early.
    wait_until(lambda: correct.running and harness.store.workers.alive(), what="the correct worker")
    queued = tmp_path / "queued-by-correct"
    launch_stamped(harness, "by-correct", queued, backoff=8)
    delay = queued_delay(harness, "by-correct")
    harness.start_worker(FLAKY, env=SKEWED)
    done = harness.wait_state("by-correct", "stamped", State.DONE, State.FAILED, State.STOPPED)
    assert (done.state, done.attempt) == (State.DONE, 2)
    times = stamps(queued)
    assert times[("start", 2)] - times[("end", 1)] >= delay - 0.5, "the retry started before its backoff"

    for scope in ("by-skewed", "by-correct"):
        for run in harness.controller.history(scope, "stamped"):
            assert run.duration is not None and run.duration >= 0, run
            assert run.started_at is not None and run.ended_at is not None
            assert run.ended_at >= run.started_at, run
