"""The lease guard of a run's own OS process: idle in a standby (no run, no deadlines), it asks
its run to stop at the first deadline once the run's job has armed it. (Its exit at the second
deadline, code 71, is tests/integration/test_frozen_worker.py's.)"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from shards_worker.run_process import LeaseGuard
from tooling.harness import wait_until


class FakeRun:
    def __init__(self) -> None:
        self.run_id = "r1"
        self.asked: list[str] = []

    def ask_stop(self, reason: str = "") -> bool:
        self.asked.append(reason)
        return True


class FakeReporter:
    def __init__(self, run: FakeRun) -> None:
        self.run = run

    def executions(self) -> list[FakeRun]:
        return [self.run]


def test_an_unarmed_guard_does_nothing_and_an_armed_one_asks_its_run_to_stop() -> None:
    run = FakeRun()
    guard = LeaseGuard(cast(Any, FakeReporter(run)))
    threading.Thread(target=guard.hold, daemon=True).start()
    time.sleep(0.2)  # a standby: no deadlines yet, whatever the time
    assert run.asked == []
    now = time.monotonic()
    guard.arm("w1", (now - 1.0, now + 3600.0))  # the stop deadline has passed, the exit's is far
    wait_until(lambda: run.asked, 10, "the run asked to stop")
    assert run.asked == ["stopped: worker w1 could not renew its lease"]
