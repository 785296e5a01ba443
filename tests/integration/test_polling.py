"""Against a server without change streams, workers poll (with a warning) and still serve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from shards.states import State
from tooling.mongo_servers import MongoServerHandle, start_java_without_change_streams

from integration.harness import ShardsHarness, wait_until


@pytest.fixture
def no_change_streams(tmp_path: Path) -> Iterator[MongoServerHandle]:
    server = start_java_without_change_streams(tmp_path / "server")
    try:
        yield server
    finally:
        server.stop()


def test_workers_fall_back_to_polling(no_change_streams: MongoServerHandle, tmp_path: Path) -> None:
    harness = ShardsHarness(f"{no_change_streams.uri}/polling", tmp_path)
    try:
        [worker] = harness.start_workers(1)
        harness.define("farm")
        harness.ok("launch", "quick", "--scope", "farm")
        harness.wait_state("farm", "quick", State.DONE)
        harness.ok("launch", "wait-for-stop", "--scope", "farm")
        harness.wait_state("farm", "wait-for-stop", State.RUNNING)
        harness.ok("stop", "wait-for-stop", "--scope", "farm")
        harness.wait_state("farm", "wait-for-stop", State.STOPPED)
        wait_until(lambda: "polling every" in worker.output(), what="the polling warning")
        assert " WARNING shards.worker no change stream on requests" in worker.output()
    finally:
        harness.close()
