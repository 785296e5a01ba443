"""Issue 23's figures: schedules at scale, each beside its baseline from the same run, on the
embedded server on loopback with 4 workers (default flags). A measurement, not a test.

(a) lag: from a schedule's fire time (its nominal time plus jitter) to its run's record written
    Running, for probe schedules firing while 10,000 other schedules are active in the same store
    (their next times lie beyond the measurement). Baseline: a delayed launch's lag, from its start
    time to Running (`launch --at`), measured the same way in the same cluster; the pickup of an
    immediate launch is figure 1 of `make bench`.
(b) bookkeeping: 4 idle workers for a window, with no schedule and then with 10,000 schedules
    (none firing in the window): CPU seconds per worker and of the server, and the store operations
    the workers issued (claim attempts from their metrics; the look-ahead queries per sweep).
(c) catch-up: one `every 1s` schedule whose pending time is 1,000 s in the past (an outage of every
    worker, simulated by moving the pending time back): seconds until it is current again, and
    how many times were launched, skipped and missed under its policy.

    .venv/bin/python bench/schedules.py [--schedules 10000] [--probes 60] [--window 30] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent / "tests")]

from cluster import SCOPE, Cluster  # noqa: E402
from shards.records import to_ms, utcnow  # noqa: E402
from shards.requests import Request, RequestKind  # noqa: E402
from shards.schedule_times import Timing  # noqa: E402
from shards.schedules import NextFire, ScheduleRecord, ScheduleSpec, first_next  # noqa: E402
from shards.states import State  # noqa: E402
from shards_store.schedules import fire_request_id  # noqa: E402
from stats import latency, total  # noqa: E402
from tooling.harness import wait_until  # noqa: E402

WORKERS = 4
PROBE_LEAD = 15.0  # seconds from the probes' creation to the first probe's fire time
PROBE_GAP = 1.0  # seconds between probe fire times (whole seconds, as interval offsets are)
JOBS = 1000  # bench/app.py's noop-0..noop-999
PROBES_FROM = 600  # probes launch noop-600.., delayed launches noop-999 down, the catch-up noop-0
SETTLE = 6.0  # seconds after the bulk set-up before measuring: every worker has swept once


def bulk_schedules(cluster: Cluster, count: int, first_in: float) -> None:
    """`count` hourly schedules whose next fires lie `first_in` seconds or more ahead, written in
    bulk (the bench's set-up, not what it measures), each armed with its fire request."""
    store = cluster.ctl.store
    now = utcnow()
    docs, fires = [], []
    for n in range(count):
        offset = (now.timestamp() + first_in + n * (3000.0 / max(1, count))) % 3600
        spec = ScheduleSpec(name=f"bg-{n}", scope_id=SCOPE, process_id=f"noop-{n % JOBS}",
                            timing=Timing(every=3600, offset=int(offset))).check()
        record = ScheduleRecord(spec=spec, next=first_next(spec, now), created_at=now, updated_at=now)
        docs.append(record.to_doc())
        assert record.next is not None
        fires.append(Request(kind=RequestKind.FIRE, scope_id=SCOPE, process_id=spec.process_id,
                             options={"schedule": record.key, "generation": 1, "label": record.next.label},
                             created_at=record.next.fire_at, id=fire_request_id(record)).to_doc())
    for start in range(0, count, 1000):
        store.schedules.collection.mongo.insert_many(docs[start:start + 1000], ordered=False)
        store.requests.collection.mongo.insert_many(fires[start:start + 1000], ordered=False)


def probe_lags(cluster: Cluster, probes: int) -> dict[str, Any]:
    """Probe schedules (one per noop process not used by others meanwhile), each firing once."""
    ctl = cluster.ctl
    start = int(utcnow().timestamp() + PROBE_LEAD)
    for n in range(probes):
        at = start + int(n * PROBE_GAP)
        spec = ScheduleSpec(name=f"probe-{n}", scope_id=SCOPE, process_id=f"noop-{PROBES_FROM + n}",
                            timing=Timing(every=3600, offset=at % 3600), max_runs=1)
        ctl.schedules.create(spec)
    lags = []
    deadline = time.monotonic() + PROBE_LEAD + probes * PROBE_GAP + 60
    for n in range(probes):
        process = f"noop-{PROBES_FROM + n}"
        record = wait_until(lambda p=process: _started(cluster, p), max(1.0, deadline - time.monotonic()),
                            f"probe {n} to run", pause=0.05)
        fire_at = record.launch.options.get("fireAt")
        lags.append((record.status.running_since.timestamp() - fire_at / 1000) * 1000)
    return latency(lags)


def delayed_lags(cluster: Cluster, launches: int) -> dict[str, Any]:
    """The baseline: delayed launches (`launch --at`), from their start time to Running."""
    ctl = cluster.ctl
    start = utcnow() + timedelta(seconds=PROBE_LEAD)
    ats = {}
    for n in range(launches):
        process = f"noop-{JOBS - 1 - n}"
        at = start + timedelta(seconds=n * PROBE_GAP)
        ctl.launch(SCOPE, process, at=at)
        ats[process] = to_ms(at)
    lags = []
    deadline = time.monotonic() + PROBE_LEAD + launches * PROBE_GAP + 60
    for process, at_ms in ats.items():
        record = wait_until(lambda p=process: _started(cluster, p), max(1.0, deadline - time.monotonic()),
                            f"{process} to run", pause=0.05)
        lags.append((record.status.running_since.timestamp() - at_ms / 1000) * 1000)
    return latency(lags)


def _started(cluster: Cluster, process: str) -> Any:
    record = cluster.ctl.store.processes.get(SCOPE, process)
    if record is None or record.status.running_since is None or record.state is State.SCHEDULED:
        return None
    return record


def idle_cost(cluster: Cluster, window: float) -> dict[str, Any]:
    before, claims = cluster.cpu(), total(cluster.metrics(), "shards_claim_attempts_total")
    time.sleep(window)
    after, claims_after = cluster.cpu(), total(cluster.metrics(), "shards_claim_attempts_total")
    return {"window_s": window,
            "cpu_per_worker_s": round((after["workers"] - before["workers"]) / WORKERS, 3),
            "server_cpu_s": round(after["server"] - before["server"], 3),
            "claim_writes_per_s": round((claims_after - claims) / window, 3)}


def catch_up(cluster: Cluster, times: int) -> dict[str, Any]:
    """One every-second schedule whose pending time is `times` seconds in the past."""
    ctl = cluster.ctl
    spec = ScheduleSpec(name="catch-up", scope_id=SCOPE, process_id="noop-0", timing=Timing(every=1))
    ctl.schedules.create(spec, paused=True)
    record = ctl.schedules.get(SCOPE, "catch-up")
    past = utcnow() - timedelta(seconds=times)
    pending = first_next(record.spec, past)
    assert pending is not None
    moved = ScheduleRecord(**{**record.__dict__, "paused": False, "generation": record.generation + 1,
                              "next": NextFire(pending.label, pending.nominal, pending.fire_at)})
    began = time.monotonic()
    ctl.store.schedules.collection.update_one({"_id": record.key}, {"$set": moved.to_doc()})
    ctl.store.schedules.arm(moved)

    def current() -> Any:
        now = ctl.schedules.get(SCOPE, "catch-up")
        return now if now.next is not None and now.next.nominal > utcnow() - timedelta(seconds=2) else None

    done = wait_until(current, 120, "the schedule to catch up", pause=0.05)
    seconds = time.monotonic() - began
    ctl.schedules.pause(SCOPE, "catch-up")
    return {"times": times, "catch_up_s": round(seconds, 3), "launched": done.launched,
            "skipped": done.skipped, "missed": done.missed, "policy": done.spec.overlap.value,
            "catchup_window_s": done.spec.catchup_window}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--probes", type=int, default=60, help="at most 100")
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result: dict[str, Any] = {"schedules": args.schedules, "workers": WORKERS}
    with Cluster("schedules") as cluster:
        cluster.start_workers(WORKERS)
        cluster.ready()
        result["idle_without"] = idle_cost(cluster, args.window)
        result["delayed_launch_lag_ms"] = delayed_lags(cluster, args.probes)
        began = time.monotonic()
        beyond = PROBE_LEAD + args.probes * PROBE_GAP + args.window + 120  # no fire meanwhile
        bulk_schedules(cluster, args.schedules, first_in=beyond)
        result["setup_s"] = round(time.monotonic() - began, 1)
        time.sleep(SETTLE)  # one sweep: every worker has looked ahead once
        result["idle_with"] = idle_cost(cluster, args.window)
        result["schedule_lag_ms"] = probe_lags(cluster, args.probes)
        result["catch_up"] = catch_up(cluster, 1000)
        fires = total(cluster.metrics(), "shards_schedule_fires_total")
        result["fires_counted"] = fires
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
