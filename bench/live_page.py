"""Figure 9: the dashboard (issue 13). A local embedded server with a defined scope of 1,000
processes (bench/app.py), one worker, and `shards dashboard` as an OS process with 10 open pages
(Server-Sent Events clients, as a browser's EventSource reads them):

- latency: a record's progress written straight to MongoDB (pymongo, as a worker writes it) until
  each page has the event that carries it; markers spaced 100-300 ms apart, so the dashboard's
  change stream is sometimes hot, sometimes backed off (target p50 and p99 <= 100 ms on loopback);
- CPU: the dashboard's CPU (% of one core, from /proc) over a window in which one process of the
  scope reports progress without pause (written every 0.5 s, the worker's --progress-interval)
  and a "storm" rewrites every one of the 1,000 records once a second, with the 10 pages open;
  and the messages the pages received (coalescing: far fewer than the changes)."""

from __future__ import annotations

import http.client
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from cluster import DATABASE, SCOPE, Cluster
from pymongo import MongoClient
from stats import latency
from tooling.harness import Child, cpu_seconds

TARGET_MS = 100.0


class Page(threading.Thread):
    """One SSE client: notes when each marker message first reaches it."""

    def __init__(self, port: int, seen: dict[str, float]) -> None:
        super().__init__(daemon=True)
        self.port, self.seen = port, seen
        self.messages = 0
        self.ready = threading.Event()
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def run(self) -> None:
        self.conn.request("GET", f"/api/scopes/{SCOPE}/events")
        response = self.conn.getresponse()
        try:
            for raw in response:
                line = raw.decode()
                if not line.startswith("data:"):
                    continue
                self.messages += 1
                self.ready.set()
                now = time.perf_counter()
                for found in re.finditer(r'"message":"(mark-\d+)"', line):
                    self.seen.setdefault(found.group(1), now)
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            return  # closed by the harness

    def close(self) -> None:
        self.conn.close()


def start_dashboard(cluster: Cluster) -> tuple[Child, int]:
    child, address = cluster.processes.start_dashboard("--scope", SCOPE, log="dashboard.log", timeout=60)
    return child, int(address.rpartition(":")[2])


def measure(markers: int, pages: int, window: float) -> Callable[[int], dict[str, Any]]:
    def one(rep: int) -> dict[str, Any]:
        with Cluster("dashboard") as cluster:
            cluster.start_workers(1)
            cluster.ready()
            proc, port = start_dashboard(cluster)
            client: MongoClient[dict[str, Any]] = MongoClient(cluster.uri)
            records = client[DATABASE]["processes"]
            per_page: list[dict[str, float]] = [{} for _ in range(pages)]
            clients = [Page(port, seen) for seen in per_page]
            for page in clients:
                page.start()
            for page in clients:
                page.ready.wait(30)
            try:
                samples = marker_latency(records, per_page, markers)
                result = {"latency_ms": latency(samples), "pages": pages, "markers": markers,
                          "missed": markers * pages - len(samples)}
                result.update(busy_cpu(cluster, records, proc.pid, clients, window))
                return result
            finally:
                for page in clients:
                    page.close()
                client.close()
    return one


def marker_latency(records: Any, per_page: list[dict[str, float]], markers: int) -> list[float]:
    rng = random.Random(9)
    written: dict[str, float] = {}
    for n in range(markers):
        mark = f"mark-{n}"
        written[mark] = time.perf_counter()
        records.update_one({"scopeId": SCOPE, "processId": f"noop-{n % 1000}"},
                           {"$set": {"progress.message": mark, "progress.rate": 0.5}})
        time.sleep(rng.uniform(0.1, 0.3))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(len(seen) < markers for seen in per_page):
        time.sleep(0.05)
    return [(seen[mark] - at) * 1000 for seen in per_page for mark, at in written.items() if mark in seen]


def busy_cpu(cluster: Cluster, records: Any, pid: int, clients: list[Page], window: float) -> dict[str, Any]:
    """The chatty process plus a once-a-second storm over all 1,000 records, `window` seconds."""
    assert cluster.controller is not None
    cluster.ctl.launch(SCOPE, "progress", args={"n": 1000, "spread_s": window + 5})
    time.sleep(1.0)
    messages_before = sum(page.messages for page in clients)
    cpu_before, began = cpu_seconds(pid), time.monotonic()
    storms = 0
    while time.monotonic() - began < window:
        records.update_many({"scopeId": SCOPE, "processId": {"$regex": "^noop-"}},
                            {"$set": {"progress.message": f"storm {storms}"}})
        storms += 1
        time.sleep(max(0.0, began + storms - time.monotonic()))
    elapsed = time.monotonic() - began
    cpu = cpu_seconds(pid) - cpu_before
    messages = sum(page.messages for page in clients) - messages_before
    return {"busy_cpu_pct": round(100 * cpu / elapsed, 1), "busy_window_s": round(elapsed, 1),
            "storm_changes": storms * 1000,
            "messages_per_page_per_s": round(messages / len(clients) / elapsed, 2)}


def figure9(plan: Any, repeat: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    notes = [f"{plan.f9_markers} progress writes straight to MongoDB, 100-300 ms apart, until each of "
             f"{plan.f9_pages} open pages (SSE clients) has the event; then {plan.f9_window:g} s with one "
             "process reporting progress and all 1,000 records rewritten once a second: the dashboard's CPU "
             "(% of one core) and the messages each page got (coalesced, at most 10/s)"]
    configs = {"dashboard": measure(plan.f9_markers, plan.f9_pages, plan.f9_window)}
    return {"configs": repeat(plan.repeats, configs), "notes": notes}

