"""Integration fixtures: a harness per test, on its own database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.harness import ShardsHarness


@pytest.fixture
def shards_env(mongo_db_uri: str, tmp_path: Path) -> Iterator[ShardsHarness]:
    harness = ShardsHarness(mongo_db_uri, tmp_path)
    try:
        yield harness
    finally:
        harness.close()
