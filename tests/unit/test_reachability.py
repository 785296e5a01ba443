"""Issue 12: which URIs get the fast loopback probe, the timeout setting, and pymongo's error
cut to its first cause."""

from __future__ import annotations

import pytest
from pymongo.errors import ServerSelectionTimeoutError
from shards.errors import ShardsError
from shards_store.reachability import TIMEOUT_ENV, brief, loopback_nodes, mongo_timeout


@pytest.mark.parametrize(("uri", "nodes"), [
    ("mongodb://127.0.0.1:27018/x", [("127.0.0.1", 27018)]),
    ("mongodb://u:p@localhost/x", [("localhost", 27017)]),
    ("mongodb://[::1]:1,127.0.0.2:2/x?replicaSet=r", [("::1", 1), ("127.0.0.2", 2)]),
    ("mongodb://127.0.0.1:1,mongo.example:2/x", []),   # one remote host: the full timeout
    ("mongodb://mongo.example/x", []),
    ("mongodb+srv://cluster.example/x", []),            # DNS-seeded: never probed
    ("not a uri", []),                                  # pymongo says what is wrong with it
])
def test_only_an_all_loopback_uri_is_probed(uri: str, nodes: list[tuple[str, int]]) -> None:
    assert loopback_nodes(uri) == nodes


def test_the_timeout_is_the_callers_else_the_environment_else_five(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert mongo_timeout(None) == 5.0
    monkeypatch.setenv(TIMEOUT_ENV, "20")
    assert mongo_timeout(None) == 20.0
    assert mongo_timeout(30) == 30
    for bad in ("soon", "0", "-1"):
        monkeypatch.setenv(TIMEOUT_ENV, bad)
        with pytest.raises(ShardsError, match=TIMEOUT_ENV):
            mongo_timeout(None)


def test_the_topology_dump_is_cut() -> None:
    dump = ("mongo.example:27017: timed out (configured timeouts: socketTimeoutMS: 5000.0ms, "
            "connectTimeoutMS: 5000.0ms), Timeout: 5.0s, Topology Description: <TopologyDescription "
            "id: 1, topology_type: Unknown, servers: [...]>")
    assert brief(ServerSelectionTimeoutError(dump)) == "mongo.example:27017: timed out"
