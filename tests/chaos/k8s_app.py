"""The app of `make chaos-k8s`: worker Pods run it from a ConfigMap (/chaos/k8s_app.py:app).

Its processes count their own executions outside MongoDB: each execution POSTs `start`, a
`beat` every half second and `end` (completed or stopped) to the counter server the chaos run
serves on the node's address (args["counter"]), with its run id, attempt and Pod. The counter
stamps each event on arrival, so a SIGKILLed execution ends at its last beat. Plain stdlib: the
worker image has nothing else, and its root filesystem is read-only.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
import uuid

import shards

app = shards.App()

SLOTS = 48  # process ids counted-00 .. counted-47: one resource per slot at a time
BEAT = 0.5  # seconds between beats


def _tell(ctx: shards.ProcessContext, execution: str, event: str, outcome: str = "") -> None:
    body = json.dumps({
        "event": event, "execution": execution, "run": ctx.run_id, "attempt": ctx.attempt,
        "process": ctx.process_id, "pod": os.environ.get("POD_NAME") or socket.gethostname(),
        "outcome": outcome,
    }).encode()
    request = urllib.request.Request(str(ctx.args["counter"]), data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=2):
            pass
    except OSError:  # the counter is the test's: a lost beat only shortens the known interval
        pass


def counted(ctx: shards.ProcessContext) -> None:
    execution = uuid.uuid4().hex
    seconds = float(ctx.args.get("seconds", 5))
    _tell(ctx, execution, "start")
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if not ctx.should_continue():
            _tell(ctx, execution, "end", "stopped")
            return
        ctx.report_progress("counting", 1 - (until - time.monotonic()) / seconds)
        _tell(ctx, execution, "beat")
        time.sleep(BEAT)
    _tell(ctx, execution, "end", "completed")


for _slot in range(SLOTS):
    app.process(f"counted-{_slot:02d}", name=f"Counted work {_slot}")(counted)
