"""Root fixtures: the MongoDB server the integration tests talk to, and a fresh database per test.

- `SHARDS_TEST_MONGO_URI` set: that server is used (kind "external") and nothing is started.
- otherwise `SHARDS_TEST_MONGO_SERVER` names the server to start: `nx` (default) or `java`.

The server is started lazily, once per session, by the first test that asks for it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration.harness import ShardsHarness
from pymongo import MongoClient
from pymongo.database import Database
from tooling.mongo_servers import (
    KINDS,
    SERVER_ENV,
    MongoServerInfo,
    external_uri,
    start_server,
    unique_db_name,
    with_database,
)


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServerInfo]:
    uri = external_uri()
    if uri is not None:
        yield MongoServerInfo(uri=uri, kind="external")
        return
    kind = os.environ.get(SERVER_ENV, "").strip() or "nx"
    if kind not in KINDS:
        raise pytest.UsageError(f"{SERVER_ENV}={kind!r}: expected one of {', '.join(KINDS)}")
    workdir: Path = tmp_path_factory.mktemp(f"mongo-{kind}")
    handle = start_server(kind, workdir)
    try:
        yield MongoServerInfo(uri=handle.uri, kind=handle.kind)
    finally:
        handle.stop()


@pytest.fixture
def mongo_db_uri(mongo_server: MongoServerInfo, request: pytest.FixtureRequest) -> str:
    """A URI naming a fresh database that only this test uses."""
    return with_database(mongo_server.uri, unique_db_name(request.node.name))


@pytest.fixture
def mongo_db(mongo_db_uri: str) -> Iterator[Database]:
    """A pymongo `Database` (tz-aware client) for `mongo_db_uri`, dropped after the test."""
    client: MongoClient = MongoClient(mongo_db_uri, tz_aware=True)
    db: Database = client.get_default_database()
    try:
        yield db
    finally:
        with contextlib.suppress(Exception):  # best effort: never hide the test's own outcome
            client.drop_database(db.name)
        client.close()


@pytest.fixture
def shards_env(mongo_db_uri: str, tmp_path: Path) -> Iterator[ShardsHarness]:
    """The real CLI and real worker processes on this test's database."""
    harness = ShardsHarness(mongo_db_uri, tmp_path)
    try:
        yield harness
    finally:
        harness.close()
