"""The ground truth of `make chaos-k8s`: an HTTP server on the node's address that the app's
executions report to (tests/chaos/k8s_app.py), and what it tells independently of MongoDB.

An execution is one call of the process body in some Pod: `start`, `beat`s, maybe `end`. Its
interval runs from its start to its last event (a killed one stops beating). Per launch (the
run id without its `.<attempt>` suffix) the code may run to completion once, and no two
executions of it may overlap.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any


@dataclass
class Execution:
    id: str
    run: str
    attempt: int
    process: str
    pod: str
    started: float
    last: float
    outcome: str = ""  # "completed", "stopped", or "" (no end: killed, or still going)

    @property
    def launch(self) -> str:
        return launch_of(self.run, self.attempt)


def launch_of(run_id: str, attempt: int) -> str:
    """`k8s-<uid>-<n>` for attempt 1, `k8s-<uid>-<n>.<attempt>` after (sdk/shards/retries.py)."""
    return run_id.removesuffix(f".{attempt}") if attempt > 1 else run_id


class Counter:
    """`Counter(host).start()`; `.url` is what the processes POST to; `.executions()`."""

    def __init__(self, host: str) -> None:
        self._lock = threading.Lock()
        self._executions: dict[str, Execution] = {}
        self.bad_events = 0
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                    counter.record(body, time.time())
                except (ValueError, KeyError, TypeError):
                    with counter._lock:
                        counter.bad_events += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/event"
        self._thread = threading.Thread(target=self.server.serve_forever, name="chaos-counter", daemon=True)

    def start(self) -> Counter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def record(self, event: dict[str, Any], at: float) -> None:
        with self._lock:
            execution = self._executions.get(str(event["execution"]))
            if execution is None:
                execution = Execution(str(event["execution"]), str(event["run"]), int(event["attempt"]),
                                      str(event["process"]), str(event["pod"]), at, at)
                self._executions[execution.id] = execution
            execution.last = max(execution.last, at)
            if event["event"] == "end":
                execution.outcome = str(event.get("outcome") or "completed")

    def executions(self) -> list[Execution]:
        with self._lock:
            return sorted((Execution(**vars(e)) for e in self._executions.values()), key=lambda e: e.started)


def duplicates(executions: list[Execution]) -> list[str]:
    """Launches whose code ran to completion more than once, or whose executions overlapped."""
    by_launch: dict[str, list[Execution]] = defaultdict(list)
    for execution in executions:
        by_launch[execution.launch].append(execution)
    found = []
    for launch, group in sorted(by_launch.items()):
        completed = [e for e in group if e.outcome == "completed"]
        if len(completed) > 1:
            found.append(f"{launch}: completed {len(completed)} times "
                         f"({', '.join(f'attempt {e.attempt} on {e.pod}' for e in completed)})")
        group.sort(key=lambda e: e.started)
        for earlier, later in pairwise(group):
            if later.started < earlier.last:
                found.append(f"{launch}: attempt {later.attempt} on {later.pod} started "
                             f"{earlier.last - later.started:.2f} s before attempt {earlier.attempt} "
                             f"on {earlier.pod} last reported")
    return found


def live_at(executions: list[Execution], at: float, pod_prefix: str = "",
            slack: float = 1.5) -> list[Execution]:
    """Executions going at `at` (started before it, not ended, a beat within `slack` s)."""
    return [e for e in executions if e.started <= at and not e.outcome and e.last >= at - slack
            and e.pod.startswith(pod_prefix)]


def resumed_after(executions: list[Execution], launch: str, at: float) -> float | None:
    """When the launch's code started again after `at` (its next attempt), if it did."""
    starts = [e.started for e in executions if e.launch == launch and e.started > at]
    return min(starts) if starts else None
