"""Integration fixtures: a harness per test, on its own database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tooling.harness import EmbeddedMongo
from tooling.mongo_servers import SERVER_ENV, external_uri

from integration.harness import ShardsHarness


@pytest.fixture
def outage_env(tmp_path: Path) -> Iterator[tuple[ShardsHarness, EmbeddedMongo]]:
    """A harness on a server of this test's own, which the test may kill and restart.

    Outage tests always use NX-27017 (it keeps its data across a restart), so they run once,
    in the NX pass, and not against an external server the suite must not kill.
    """
    if external_uri() is not None or os.environ.get(SERVER_ENV, "nx") not in ("", "nx"):
        pytest.skip("outage tests kill and restart their own NX-27017 server; they run in the NX pass")
    server = EmbeddedMongo(tmp_path / "mongo", "shards_outage").start()
    harness = ShardsHarness(server.uri, tmp_path)
    try:
        yield harness, server
    finally:
        if not server.up:
            server.start()  # workers leave the registry only with the server up
        harness.close()
        server.stop()
