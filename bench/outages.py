"""Issue 22's figures: how Shards rides out MongoDB outages and lost workers with its default flags
(--lease 45, --heartbeat 2, process isolation). A measurement, not a test: it prints a table.

(a) outages: for each length, 2 workers each run a `ticker` (tests/integration/apps: it never asks
    whether to go on); MongoDB is SIGKILLed 2.5 s after a heartbeat-ish moment and restarted on the
    same port and data after the outage. Reported: whether a run was stopped (its launch needed a
    second attempt), how many retries the outage spent, whether a worker exited, and whether the
    journal (outside MongoDB) shows two attempts executing at once.
(b) a SIGKILLed worker: seconds from the kill until its run's record leaves Running (handed off or
    ended), with no restart (another worker's reconciler reaps it after a lease), and with a restart
    under the same worker name (the new incarnation settles its predecessor's runs at start).

    .venv/bin/python bench/outages.py [--outages 5,12,15,20,30] [--skip-kills]

To measure another tree (e.g. main) with this script: run it from this tree with
PYTHONPATH=<tree>/sdk:<tree>/store:<tree>/controller:<tree>/worker:<tree>/cli:<tree>/operator:<tree>/dashboard
(the workers inherit it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from integration.harness import ShardsHarness, wait_until  # noqa: E402
from shards.states import FINAL, State  # noqa: E402
from tooling.harness import EmbeddedMongo  # noqa: E402

APP = "tests/integration/apps/testapp.py:app"
DEFAULTS = ("--lease", "45", "--heartbeat", "2", "--progress-interval", "0.5")


def journal_overlap(journal: Path) -> bool:
    """Whether two attempts' journal lines interleave in time (code executing twice at once)."""
    spans: dict[str, tuple[float, float]] = {}
    for line in journal.read_text().splitlines() if journal.exists() else []:
        attempt, _pid, at = line.split()
        first, last = spans.get(attempt, (float(at), float(at)))
        spans[attempt] = (min(first, float(at)), max(last, float(at)))
    ordered = sorted(spans.values())
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(ordered))


def one_outage(seconds: float, workdir: Path) -> dict[str, object]:
    mongo = EmbeddedMongo(workdir / "mongo", "outages").start()
    harness = ShardsHarness(mongo.uri, workdir)
    try:
        workers = [harness.start_worker(APP, *DEFAULTS, concurrency=1) for _ in range(2)]
        wait_until(lambda: len(harness.store.workers.alive()) == 2, what="2 workers")
        journals = {}
        for n in range(2):
            scope = f"s{n}"
            harness.define(scope)
            journals[scope] = workdir / f"{scope}.journal"
            harness.ok("launch", "ticker", "--scope", scope, "--retries", "3",
                       "--args", json.dumps({"journal": str(journals[scope]), "seconds": seconds + 15}))
        for scope in journals:
            harness.wait_state(scope, "ticker", State.RUNNING)
        time.sleep(2.5)
        mongo.kill()
        time.sleep(seconds)
        exited_during = sum(not worker.running for worker in workers)
        mongo.start()
        ends = [harness.wait_state(scope, "ticker", *FINAL, timeout=seconds + 120) for scope in journals]
        return {
            "outage_s": seconds,
            "runs_stopped": sum(end.attempt > 1 for end in ends),
            "retries_spent": sum(end.retried for end in ends),
            "all_done": all(end.state is State.DONE for end in ends),
            "workers_exited": max(exited_during, sum(not worker.running for worker in workers)),
            "overlap": any(journal_overlap(journal) for journal in journals.values()),
        }
    finally:
        if not mongo.up:
            mongo.start()
        harness.close()
        mongo.stop()


def one_kill(restart: bool, workdir: Path) -> dict[str, object]:
    mongo = EmbeddedMongo(workdir / "mongo", "kills").start()
    harness = ShardsHarness(mongo.uri, workdir)
    try:
        victim = harness.start_worker(APP, *DEFAULTS, "--worker-id", "victim")
        wait_until(lambda: harness.store.workers.alive(), what="the first worker")
        harness.define("k")
        harness.ok("launch", "ticker", "--scope", "k",
                   "--args", json.dumps({"journal": str(workdir / "k.journal"), "seconds": 600}))
        harness.wait_state("k", "ticker", State.RUNNING)
        harness.start_worker(APP, *DEFAULTS, "--worker-id", "bystander")  # it reaps the victim
        wait_until(lambda: len(harness.store.workers.alive()) == 2, what="2 workers")
        time.sleep(3)  # the bystander watches the victim's heartbeats for a while
        victim.kill()
        killed = time.monotonic()
        if restart:
            harness.start_worker(APP, *DEFAULTS, "--worker-id", "victim")
        wait_until(lambda: harness.record("k", "ticker").state is not State.RUNNING
                   or harness.record("k", "ticker").attempt > 1, timeout=180, what="the run to be settled")
        settled = time.monotonic() - killed
        state = harness.record("k", "ticker").state.value
        return {"restart": restart, "settled_s": round(settled, 2), "state": state}
    finally:
        harness.close()
        mongo.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", default="5,12,15,20,30", help="outage lengths, seconds")
    parser.add_argument("--skip-kills", action="store_true")
    options = parser.parse_args()
    rows = []
    for seconds in [float(value) for value in options.outages.split(",") if value]:
        with tempfile.TemporaryDirectory(prefix="shards-outage-") as workdir:
            rows.append(one_outage(seconds, Path(workdir)))
            print(json.dumps(rows[-1]), flush=True)
    if not options.skip_kills:
        for restart in (False, True):
            with tempfile.TemporaryDirectory(prefix="shards-kill-") as workdir:
                rows.append(one_kill(restart, Path(workdir)))
                print(json.dumps(rows[-1]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
