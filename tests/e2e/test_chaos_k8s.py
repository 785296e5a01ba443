"""Chaos on real Pods (tests/chaos/k8s.py): the chart on the local node, a seeded churn of
ShardProcess resources and a seeded schedule of faults; nothing lost, duplicated or stuck.

The small version runs in `make test`'s e2e pass: one fault of each kind but the 60 s MongoDB
outage. `make chaos-k8s` runs the full one (SHARDS_CHAOS_K8S=full, SEED=, DURATION=).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos.k8s import FAULT_KINDS, Config, report, run
from tooling.cluster import KubeCluster, KubeNode
from tooling.harness import EmbeddedMongo

pytestmark = pytest.mark.e2e

FULL = os.environ.get("SHARDS_CHAOS_K8S") == "full"
SEED = int(os.environ.get("SHARDS_CHAOS_SEED") or 1)
DURATION = float(os.environ.get("SHARDS_CHAOS_DURATION") or 600)
REPORT = os.environ.get("SHARDS_CHAOS_REPORT", "")


@pytest.fixture
def chaos_mongo(kube_node: KubeNode, tmp_path: Path) -> Iterator[EmbeddedMongo]:
    """The embedded MongoDB on the node's address, this test's alone: the faults kill it."""
    server = EmbeddedMongo(tmp_path / "mongo", host=kube_node.ip, grace=20).start()
    try:
        yield server
    finally:
        server.stop()


def _run(config: Config, kube_cluster: KubeCluster, kube_node: KubeNode, kube_namespace: str,
         chaos_mongo: EmbeddedMongo, tmp_path: Path) -> None:
    outcome = run(kube_cluster, kube_node, kube_namespace, chaos_mongo, tmp_path, config)
    table = report(outcome)
    print("\n" + table)
    if REPORT:
        Path(REPORT).write_text(table + "\n")
    assert outcome.faults, "no fault was injected"
    assert outcome.clean, table


@pytest.mark.timeout(900)
def test_chaos_on_real_pods_small(kube_cluster: KubeCluster, kube_node: KubeNode, kube_namespace: str,
                                  chaos_mongo: EmbeddedMongo, tmp_path: Path) -> None:
    if FULL:
        pytest.skip("the full run is test_chaos_on_real_pods_full")
    kinds = tuple(kind for kind in FAULT_KINDS if kind != "mongo-60s")
    config = Config(seed=SEED, duration=240, kinds=kinds, rounds=1, workers=2, concurrency=2, slots=8,
                    gap=(1.0, 2.0))
    _run(config, kube_cluster, kube_node, kube_namespace, chaos_mongo, tmp_path)


@pytest.mark.timeout(int(DURATION) + 1200)
def test_chaos_on_real_pods_full(kube_cluster: KubeCluster, kube_node: KubeNode, kube_namespace: str,
                                 chaos_mongo: EmbeddedMongo, tmp_path: Path) -> None:
    if not FULL:
        pytest.skip("make chaos-k8s runs it (SHARDS_CHAOS_K8S=full)")
    config = Config(seed=SEED, duration=DURATION, workers=3, concurrency=3, slots=24)
    _run(config, kube_cluster, kube_node, kube_namespace, chaos_mongo, tmp_path)
