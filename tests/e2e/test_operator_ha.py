"""Two operators with leader election against a real API server: one acts, the other stands by
(Ready); SIGKILL of the leader mid-burst -> the standby takes over once the Lease expires, and
every resource still runs exactly once, its status never going backwards; SIGTERM of the leader ->
it releases the Lease and the standby takes over. The operators are local OS processes with
deploy/'s ServiceAccount token; the Lease is deploy/'s (shards-system/shards-operator)."""

from __future__ import annotations

import json
import signal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from e2e.operator_env import OperatorEnv
from integration.harness import wait_until
from tooling.harness import DEPLOY_LEASE, Child, answers

pytestmark = pytest.mark.e2e

TEST_APP = "tests/integration/apps/testapp.py:app"
LEASE_NAMESPACE, LEASE_NAME = DEPLOY_LEASE
STATE_ORDER = {"": 0, "Idle": 0, "Scheduled": 1, "Running": 2, "Done": 3}
TAKEOVER = 90.0  # bound of a wait that includes the 15 s lease and a busy 2-core machine


class Operators:
    """Operator processes named a, b, ... with leader election on deploy/'s Lease."""

    def __init__(self, env: OperatorEnv) -> None:
        self.env = env
        self.children: dict[str, Child] = {}
        self.health: dict[str, str] = {}
        env.cluster.kubectl("delete", "lease", LEASE_NAME, "-n", LEASE_NAMESPACE, "--ignore-not-found")

    def start(self, name: str) -> Child:
        child, self.health[name] = self.env.shards.processes.start_candidate(
            self.env.namespace, self.env.kubeconfig, name, log=f"operator-{name}.log")
        self.children[name] = child
        return child

    def start_leader_and_standby(self) -> None:
        """a leads (the Lease names it), then b stands by (its health endpoint answers)."""
        self.start("a")
        self.wait_leader({"a"})
        self.start("b")
        wait_until(lambda: self.healthy("b"), what="the standby's health endpoint")

    def lease(self) -> dict[str, Any]:
        found = self.env.cluster.kubectl("get", "lease", LEASE_NAME, "-n", LEASE_NAMESPACE, "-o", "json",
                                         check=False)
        return dict(json.loads(found.stdout).get("spec") or {}) if found.returncode == 0 else {}

    def holder(self) -> str:
        """The name (a, b, ...) of the operator holding the Lease, "" when none does."""
        return str(self.lease().get("holderIdentity") or "").split("_")[0]

    def wait_leader(self, among: set[str]) -> str:
        return str(wait_until(lambda: (holder := self.holder()) in among and holder, TAKEOVER,
                              lambda: f"a leader among {among}: lease {self.lease()}\n{self.logs()}"))

    def healthy(self, name: str) -> bool:
        return answers(self.health[name])

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{child.output()[-2500:]}" for name, child in self.children.items())



class StatusWatch:
    """Every status the test saw, per resource, in order: states must never go backwards."""

    def __init__(self, env: OperatorEnv, names: list[str]) -> None:
        self.env, self.names = env, names
        self.seen: dict[str, list[str]] = {name: [] for name in names}

    def look(self) -> dict[str, str]:
        listed = self.env.cluster.kubectl_json("get", "shp", "-n", self.env.namespace)
        states = {item["metadata"]["name"]: str((item.get("status") or {}).get("state") or "")
                  for item in listed["items"]}
        for name in self.names:
            if not self.seen[name] or self.seen[name][-1] != states.get(name, ""):
                self.seen[name].append(states.get(name, ""))
        return states

    def all_done(self) -> bool:
        return all(state == "Done" for state in self.look().values()) and len(self.look()) == len(self.names)

    def backwards(self) -> dict[str, list[str]]:
        return {name: seen for name, seen in self.seen.items()
                if any(STATE_ORDER.get(a, 9) > STATE_ORDER.get(b, 9) for a, b in pairwise(seen))}


def burst(env: OperatorEnv, tmp_path: Path, prefix: str, count: int) -> list[str]:
    names = [f"{prefix}-{i}" for i in range(count)]
    manifests = [env.shp(name, process="quick", args={"log": str(tmp_path / f"{name}.runs"), "pause": 0.3})
                 for name in names]
    env.apply({"apiVersion": "v1", "kind": "List", "items": manifests})
    return names


def assert_ran_once_each(env: OperatorEnv, tmp_path: Path, names: list[str]) -> None:
    """Each resource's one launch ran once: one execution (the process logs its run id), the
    first attempt of the resource's launch id; the process "quick" has no other run."""
    uids = {name: env.get(name)["metadata"]["uid"] for name in names}
    executions = {name: [line.split()[0] for line in (tmp_path / f"{name}.runs").read_text().splitlines()]
                  for name in names}
    assert executions == {name: [f"k8s-{uids[name]}-1"] for name in names}
    runs = env.shards.controller.history(env.namespace, "quick", limit=10 * len(names))
    assert sorted(run.run_id for run in runs) == sorted(f"k8s-{uid}-1" for uid in uids.values())
    assert {run.state.value for run in runs} == {"Done"}


def test_both_replicas_are_ready_and_only_the_leader_acts(env: OperatorEnv, tmp_path: Path) -> None:
    env.start_workers(1, app=TEST_APP)
    operators = Operators(env)
    operators.start("a")
    leader = operators.wait_leader({"a"})
    operators.start("b")
    wait_until(lambda: operators.healthy("a") and operators.healthy("b"), what="both health endpoints")
    names = burst(env, tmp_path, "calm", 4)
    watch = StatusWatch(env, names)
    wait_until(watch.all_done, TAKEOVER, lambda: f"all Done: {watch.look()}\n{operators.logs()}")
    assert operators.holder() == leader == "a"
    assert "stands by" in operators.children["b"].output()
    assert "now leads" not in operators.children["b"].output()
    assert_ran_once_each(env, tmp_path, names)
    assert not watch.backwards()
    # A standby stops at once on SIGTERM, and cleanly.
    assert operators.children["b"].terminate(sig=signal.SIGTERM) == 0


def test_sigkill_of_the_leader_mid_burst_hands_over_with_one_launch_each(
    env: OperatorEnv, tmp_path: Path
) -> None:
    env.start_workers(2, app=TEST_APP)
    operators = Operators(env)
    operators.start_leader_and_standby()
    before = int(operators.lease().get("leaseTransitions") or 0)
    names = burst(env, tmp_path, "burst", 12)
    watch = StatusWatch(env, names)
    # Mid-burst: some resources launched by a, not all of them Done yet.
    wait_until(lambda: any(state for state in watch.look().values()), TAKEOVER,
               lambda: f"a first launch: {watch.look()}\n{operators.logs()}")
    operators.children["a"].send_signal(signal.SIGKILL)
    at_kill = watch.look()
    assert list(at_kill.values()).count("Done") < len(names), "the burst ended before the kill"
    assert operators.wait_leader({"b"}) == "b"
    wait_until(watch.all_done, TAKEOVER, lambda: f"all Done: {watch.look()}\n{operators.logs()}")
    assert_ran_once_each(env, tmp_path, names)
    assert not watch.backwards(), watch.seen
    lease = operators.lease()
    assert int(lease["leaseTransitions"]) == before + 1
    assert lease["leaseDurationSeconds"] == 15 and lease["acquireTime"] and lease["renewTime"]


def test_sigterm_of_the_leader_releases_the_lease_to_the_standby(
    env: OperatorEnv, tmp_path: Path
) -> None:
    env.start_workers(1, app=TEST_APP)
    operators = Operators(env)
    operators.start_leader_and_standby()
    first = burst(env, tmp_path, "first", 3)
    watch = StatusWatch(env, first)
    wait_until(watch.all_done, TAKEOVER, lambda: f"all Done: {watch.look()}\n{operators.logs()}")

    assert operators.children["a"].terminate(sig=signal.SIGTERM) == 0
    assert "released the lease" in operators.children["a"].output()
    assert operators.wait_leader({"b"}) == "b"
    second = burst(env, tmp_path, "second", 3)
    watch = StatusWatch(env, first + second)
    wait_until(watch.all_done, TAKEOVER, lambda: f"all Done: {watch.look()}\n{operators.logs()}")
    assert_ran_once_each(env, tmp_path, first + second)
    assert not watch.backwards(), watch.seen
    assert operators.children["b"].terminate(sig=signal.SIGTERM) == 0
    assert operators.lease().get("holderIdentity") in (None, "")  # released again


def test_a_leader_that_finds_another_holder_exits_at_once_and_a_standby_leads(
    env: OperatorEnv, tmp_path: Path
) -> None:
    env.start_workers(1, app=TEST_APP)
    operators = Operators(env)
    operators.start_leader_and_standby()
    # Someone else writes the Lease (as a leader on the other side of a partition would): a stops
    # acting at its next renewal, with client-go's OnStoppedLeading exit; b waits the Lease out.
    env.cluster.kubectl("patch", "lease", LEASE_NAME, "-n", LEASE_NAMESPACE, "--type", "merge",
                        "-p", json.dumps({"spec": {"holderIdentity": "intruder_0"}}))
    wait_until(lambda: not operators.children["a"].running, TAKEOVER,
               lambda: f"a to exit\n{operators.logs()}")
    assert operators.children["a"].returncode == 75
    assert "leadership lost" in operators.children["a"].output()
    assert operators.wait_leader({"b"}) == "b"
    names = burst(env, tmp_path, "after", 2)
    watch = StatusWatch(env, names)
    wait_until(watch.all_done, TAKEOVER, lambda: f"all Done: {watch.look()}\n{operators.logs()}")
    assert_ran_once_each(env, tmp_path, names)
