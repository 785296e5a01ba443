"""Issue 12: with no MongoDB server, a CLI command fails at once, in one line that says what to do."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from shards_store.embedded import free_port

from integration.harness import REPO

# pymongo alone waits out its 5 s server selection; the loopback probe answers in milliseconds.
# The bound leaves room for interpreter start-up on a loaded machine.
FAIL_FAST_BOUND = 3.0


def test_a_refused_loopback_server_fails_fast_in_one_line() -> None:
    uri = f"mongodb://shards:hunter2@127.0.0.1:{free_port()}/x"
    env = {key: value for key, value in os.environ.items() if key != "SHARDS_MONGO_TIMEOUT"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "shards_cli", "status", "--mongo", uri],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=30,
    )
    took = time.monotonic() - started
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1, done.stderr
    assert uri.replace("hunter2", "***") in lines[0]
    assert "hunter2" not in lines[0]
    assert "shards mongo --port" in lines[0]
    assert took < FAIL_FAST_BOUND, f"took {took:.2f}s: {lines[0]}"
