"""The operator end to end: `kubectl apply` runs a process, `kubectl get shp` shows it live."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.operator_env import OperatorEnv
from e2e.resources import DEPLOY
from integration.harness import wait_until
from tooling.cluster import KubeCluster

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(kube_cluster: KubeCluster, kube_namespace: str, operator_rbac: str, mongo_db_uri: str,
        tmp_path: Path) -> Iterator[OperatorEnv]:
    operator_env = OperatorEnv(kube_cluster, kube_namespace, mongo_db_uri, tmp_path)
    try:
        yield operator_env
    finally:
        operator_env.close()


def test_apply_the_example_runs_it_to_done(env: OperatorEnv) -> None:
    env.start_workers(1)
    env.start_operator()
    env.apply(DEPLOY / "examples" / "process.yaml")
    status = env.wait_state("count-sheep", "Done")
    assert status["progress"]["percent"] == 100
    assert status["scope"] == env.namespace
    assert env.condition(status, "Complete")["status"] == "True"
    table = env.cluster.kubectl("get", "shp", "-n", env.namespace, "-o", "wide").stdout
    assert "count-sheep" in table and "Done" in table and "100" in table
    runs = env.shards.controller.history(env.namespace, "count-sheep")
    assert [run.state.value for run in runs] == ["Done"]
    wait_until(lambda: {"Launched", "Done"} <= set(env.events("count-sheep")), what="the events")
