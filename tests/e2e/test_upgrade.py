"""`helm upgrade` from the previous release to the working tree, with runs active and launches
queued: every launch ends exactly once (docs/upgrades.md).

The test's controller is the working tree's: the previous release's workers run launches and
define scopes written by the new release (N-1 reads N), and the new release's workers take the
hand-offs and launches the previous one queued (N reads N-1). The previous release is a pinned
commit: its chart (its own tree) and its images, built by the same image tooling and cached by
commit under their own tag (tooling.images.previous)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.test_chart_pods import VERSION, WAIT, Release, node_mongo  # noqa: F401 - node_mongo: a fixture
from integration.harness import wait_until
from shards.records import SCHEMA_FIELD, SCHEMA_VERSION
from shards.requests import RequestState
from shards.states import FINAL, State
from tooling.cluster import KubeCluster, KubeNode

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]  # the images of two releases, built when missing

# The release an upgrade starts from: main when upgrades were first tested. Move it forward to
# the last release (SHARDS_UPGRADE_FROM overrides it); its images are built once per commit.
PREVIOUS = os.environ.get("SHARDS_UPGRADE_FROM", "ae4759c")


class Upgradable(Release):
    """A release installed from one chart and images, then upgraded to others."""

    def helm_to(self, verb: str, chart: Path, tag: str) -> None:
        values = [
            "--set", f"mongo.uri={self.uri}",
            "--set", f"operator.namespaces={{{self.namespace}}}",
            "--set", f"operator.image.tag={tag}", "--set", "operator.image.pullPolicy=Never",
            "--set", "workers[0].name=default", "--set", "workers[0].app=sheep:app",
            "--set", "workers[0].image.repository=shards-example-sheep",
            "--set", f"workers[0].image.tag={tag}", "--set", "workers[0].image.pullPolicy=Never",
            "--set", "workers[0].shutdownGraceSeconds=5",
            "--set", "workers[0].replicas=2", "--set", "workers[0].concurrency=2",
        ]
        self.cluster.helm(verb, self.name, str(chart), "-n", self.namespace, *values, timeout=240)

    def images(self, component: str) -> set[str]:
        out = self.kubectl("get", "pods", "-l", f"app.kubernetes.io/component={component}", "-o",
                           "jsonpath={.items[*].spec.containers[*].image}")
        return set(out.split())


@pytest.fixture
def upgradable(kube_node: KubeNode, kube_cluster: KubeCluster, kube_namespace: str,
               node_mongo: str) -> Iterator[Upgradable]:  # noqa: F811 - the imported fixture
    chart = Upgradable(kube_cluster, kube_node, kube_namespace, node_mongo)
    try:
        yield chart
    finally:
        chart.close()


def test_helm_upgrade_with_runs_active_ends_every_launch_exactly_once(
    upgradable: Upgradable, kube_node: KubeNode
) -> None:
    from tooling.images.previous import previous_release

    release = upgradable
    previous = previous_release(PREVIOUS)
    for archive in previous.archives.values():
        kube_node.load_image(archive)

    release.helm_to("install", previous.chart, previous.tag)
    release.available("operator")
    release.available("worker-default", replicas=2)
    old_pods = set(release.pods("worker"))
    # 4 slots, 9 launches: 4 run (about 15 s each), 5 wait; one of those was queued as a release
    # before pools wrote it (no `pool`), which no worker claimed before this upgrade.
    scopes = [f"farm-{n}" for n in range(9)]
    for scope in scopes:
        release.controller.wait_defined(release.controller.define(scope), timeout=WAIT)
    sheep = {"n": 75, "pause": 0.2}
    launches = {scope: release.controller.launch(scope, "count-sheep", args=sheep).run_id for scope in scopes}
    requests = release.controller.store.requests.collection.mongo
    unset = requests.update_one({"runId": launches[scopes[-1]], "state": RequestState.PENDING},
                                {"$unset": {"pool": ""}})
    assert unset.matched_count == 1, "the last launch was taken before it could be made pool-less"
    def running() -> int:
        return sum(release.controller.get(scope, "count-sheep").state is State.RUNNING for scope in scopes)

    wait_until(lambda: running() == 4, timeout=WAIT, what="4 runs Running on the previous release")

    # The working tree's CRD first (helm leaves crds/ alone on upgrade), then its chart and images.
    release.cluster.kubectl("apply", "-f", str(Path(__file__).resolve().parents[2] / "crds"))
    release.helm_to("upgrade", Path(__file__).resolve().parents[2], VERSION)
    release.available("operator")
    release.available("worker-default", replicas=2)
    wait_until(lambda: not old_pods & set(release.pods("worker")), timeout=WAIT,
               what="every worker pod replaced")
    assert release.images("worker") == {f"shards-example-sheep:{VERSION}"}
    # Two operator replicas now, rolled with maxUnavailable 0: the old one goes once both are Ready.
    wait_until(lambda: release.images("operator") == {f"shards-operator:{VERSION}"}, timeout=WAIT,
               what=f"every operator pod replaced: {release.images('operator')}")

    def states() -> dict[str, State]:
        return {scope: release.controller.get(scope, "count-sheep").state for scope in scopes}

    wait_until(lambda: all(state in FINAL for state in states().values()), timeout=2 * WAIT,
               what=f"every launch final: {states()}")
    assert set(states().values()) == {State.DONE}
    histories = {scope: release.controller.history(scope, "count-sheep") for scope in scopes}
    assert any(len(runs) > 1 for runs in histories.values()), "no run was active when its pod went"
    # The pool-less launch waited for the new release (the old one claims by pool) and ran there.
    [pool_less] = histories[scopes[-1]]
    assert not any(pool_less.worker_id.startswith(f"{pod}-") for pod in old_pods)
    for scope, launch_id in launches.items():
        runs = sorted(histories[scope], key=lambda run: run.attempt)
        # Exactly one final attempt per launch: attempts 1..k of that launch, all but the last
        # handed off by a worker the upgrade stopped, the last Done; and never two at once.
        assert [run.attempt for run in runs] == list(range(1, len(runs) + 1)), scope
        assert {run.launch_id for run in runs} == {launch_id}, scope
        assert [run.state for run in runs] == [State.STOPPED] * (len(runs) - 1) + [State.DONE], scope
        assert all("handed off" in run.error or "grace" in run.error for run in runs[:-1]), scope
        for earlier, later in itertools.pairwise(runs):
            assert earlier.ended_at is not None and later.started_at is not None
            overlap = f"{scope}: attempts {earlier.attempt} and {later.attempt} overlap"
            assert earlier.ended_at <= later.started_at, overlap
    # The new release's workers write versioned documents.
    assert all(w.get(SCHEMA_FIELD) == SCHEMA_VERSION for w in
               release.controller.store.workers.collection.mongo.find({"state": "Alive"}))
