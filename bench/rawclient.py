"""Bare-pymongo clients, the baselines' worker side, each run as its own process:

  python bench/rawclient.py pickup --uri U --mode tight|adaptive --ready FILE
      watches `raw_requests` for inserts (watch() + try_next()); per event, claims the inserted
      document by _id with find_one_and_update and writes a Running marker (`runningAt`, epoch ms).
      tight: no pause between empty polls. adaptive: the workers' wait, a pause that starts at
      --pause-min right after an event and doubles up to --pause-max while idle.
  python bench/rawclient.py floor --uri U --slot S --concurrency C --ready FILE
      the throughput floor's worker: woken by a change stream filtered to its slot, it does the
      six worker-side writes of a run (claim, Running, history started, request deleted, Done,
      history ended) on a pool of C threads.

Only pymongo here; bounded by --limit seconds; loopback only (the URI the bench gives)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pymongo import MongoClient, ReturnDocument

PENDING, TAKEN = "Pending", "Taken"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def follow(stream: Any, handle: Callable[[dict[str, Any]], None], mode: str, pause_min: float,
           pause_max: float, limit: float, hot_for: float = 0.0) -> None:
    """The wait loop: try_next() and, when nothing came, no pause (tight) or the adaptive one
    (hot_for: seconds after an event that the pause stays at its shortest, as the workers')."""
    deadline = time.monotonic() + limit
    pause, hot_until = pause_min, 0.0
    while time.monotonic() < deadline:
        change = stream.try_next()
        if change is None:
            if mode == "adaptive":
                time.sleep(pause)
                if time.monotonic() >= hot_until:
                    pause = min(pause * 2, pause_max)
            continue
        pause, hot_until = pause_min, time.monotonic() + hot_for
        # NX-27017 sends an ObjectId inside fullDocument as {"__neosqlite_objectid__": ...};
        # documentKey carries the real _id.
        handle({**change["fullDocument"], "_id": change["documentKey"]["_id"]})


def pickup(args: argparse.Namespace) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(args.uri, tz_aware=True)
    requests = client.get_default_database()["raw_requests"]
    me = f"raw-{args.mode}"

    def claim(doc: dict[str, Any]) -> None:
        taken = requests.find_one_and_update(
            {"_id": doc["_id"], "state": PENDING},
            {"$set": {"state": TAKEN, "takenBy": me, "takenAt": now_ms()}},
            return_document=ReturnDocument.AFTER,
        )
        if taken is not None:
            requests.update_one({"_id": doc["_id"]}, {"$set": {"runningAt": now_ms()}})

    stream = requests.watch([{"$match": {"operationType": "insert"}}])
    Path(args.ready).write_text("ready")
    follow(stream, claim, args.mode, args.pause_min, args.pause_max, args.limit)


def floor(args: argparse.Namespace) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(args.uri, tz_aware=True, maxPoolSize=50)
    db = client.get_default_database()
    requests, processes, runs = db["requests"], db["processes"], db["runs"]
    me = f"floor-{args.slot}"

    def run(request: dict[str, Any]) -> None:
        key = {"scopeId": request["scopeId"], "processId": request["processId"]}
        run_id = request["runId"]
        claimed = requests.find_one_and_update(  # (3) the claim, by _id
            {"_id": request["_id"], "state": PENDING},
            {"$set": {"state": TAKEN, "takenBy": me, "takenAt": now_ms()}},
            return_document=ReturnDocument.AFTER,
        )
        if claimed is None:
            return
        started = now_ms()
        running = {"state": "Running", "error": "", "runningSince": started, "doneAt": None,
                   "duration": None, "stoppedAt": None, "failedAt": None}
        processes.find_one_and_update(  # (4) Scheduled -> Running, guarded
            {**key, "runId": run_id, "status.state": {"$in": ["Scheduled"]}},
            {"$set": {"runId": run_id, "workerId": me, "parentRunId": "", "status": running,
                      "progress": {"message": "Starting...", "rate": 0.0}}},
            return_document=ReturnDocument.AFTER,
        )
        on_insert = {**key, "args": request.get("args", {}), "parentRunId": "", "requestedAt": started,
                     "error": ""}
        runs.update_one(  # (5) history: started
            {"_id": run_id},
            {"$set": {"state": "Running", "workerId": me, "startedAt": started},
             "$setOnInsert": on_insert},
            upsert=True,
        )
        requests.delete_one({"_id": request["_id"]})  # (6)
        ended = now_ms()
        duration = round((ended - started) / 1000, 3)
        done = {**running, "state": "Done", "doneAt": ended, "duration": duration}
        processes.find_one_and_update(  # (7) Running -> Done, guarded
            {**key, "runId": run_id, "status.state": {"$in": ["Running", "StopRequested", "Stopping"]}},
            {"$set": {"status": done, "progress": {"message": "All done", "rate": 1.0}, "workerId": ""}},
            return_document=ReturnDocument.AFTER,
        )
        runs.update_one(  # (8) history: ended
            {"_id": run_id},
            {"$set": {"state": "Done", "endedAt": ended, "duration": duration, "error": ""},
             "$setOnInsert": {k: v for k, v in on_insert.items() if k != "error"}},
            upsert=True,
        )

    pool = ThreadPoolExecutor(max_workers=args.concurrency)
    stream = requests.watch(
        [{"$match": {"operationType": "insert", "fullDocument.slot": args.slot}}],
        full_document="updateLookup", max_await_time_ms=250,
    )
    Path(args.ready).write_text("ready")
    def hand_over(doc: dict[str, Any]) -> None:
        pool.submit(run, doc)

    try:
        follow(stream, hand_over, "adaptive", args.pause_min, args.pause_max, args.limit, args.hot_for)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=["pickup", "floor"])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--ready", required=True, help="written once the change stream is open")
    parser.add_argument("--mode", choices=["tight", "adaptive"], default="adaptive")
    parser.add_argument("--pause-min", type=float, default=0.002)
    parser.add_argument("--pause-max", type=float, default=0.1)
    parser.add_argument("--hot-for", type=float, default=0.0,
                        help="seconds after an event the pause stays at --pause-min (the workers' PollPace)")
    parser.add_argument("--slot", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--limit", type=float, default=1800.0, help="seconds before it exits anyway")
    args = parser.parse_args()
    if not args.uri.startswith("mongodb://127.0.0.1:"):
        parser.error("loopback URIs only")
    (pickup if args.role == "pickup" else floor)(args)


if __name__ == "__main__":
    main()
