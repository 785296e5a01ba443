"""How long the operator is away when its leader goes (issue 22): two `shards operator` processes
with leader election on a real API server (deploy/'s RBAC and Lease), one worker, a private
embedded MongoDB. Not a test: it measures and prints.

Each trial: the leader is stopped (SIGKILL, or SIGTERM: the graceful stop that releases the
Lease), and right away a new ShardProcess is created; the figure is the time from the signal to
that resource's run being launched in MongoDB (the standby has taken the Lease, started kopf,
and acted). Also shown: signal -> the Lease names the standby. The stopped operator is then
started again as the new standby, and the next trial stops the other one.

    .venv/bin/python bench/operator_failover.py [--trials 5]

Bounded: every wait has a deadline. The control plane is reused when one runs, else started here.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kubernetes import client as kube_client
from kubernetes import config as kube_config
from shards_controller import Controller
from shards_store import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the cluster tooling, the harness
from stats import percentile  # bench/ is this script's directory
from tooling.cluster import KubeCluster, down, running, up
from tooling.harness import DEPLOY_LEASE, Child, EmbeddedMongo, Processes, answers, shards_env, wait_until

REPO = Path(__file__).resolve().parents[1]
CRD_FILE = REPO / "crds" / "shardprocesses.shards.dev.yaml"
DEPLOY = REPO / "deploy"
LEASE_NAMESPACE, LEASE_NAME = DEPLOY_LEASE
TARGETS = {"SIGKILL": 20.0, "SIGTERM": 3.0}  # seconds, signal -> the standby acts
WAIT = 90.0


def log(message: str) -> None:
    print(f"[bench-failover] {time.strftime('%H:%M:%S')} {message}", flush=True)


class Failover:
    def __init__(self, cluster: KubeCluster, workdir: Path) -> None:
        self.cluster, self.workdir = cluster, workdir
        self.namespace = f"bench-ha-{uuid.uuid4().hex[:6]}"
        self.mongo = EmbeddedMongo(workdir / "mongo", "bench", grace=30)
        self.processes = Processes(workdir, shards_env(self.mongo.uri), grace=30, mongo=self.mongo)
        self.operators: dict[str, Child] = {}
        self.kubeconfig = workdir / "operator.kubeconfig"
        self.controller: Controller | None = None
        self.count = 0
        self.leases = kube_client.CoordinationV1Api(
            kube_config.new_client_from_config(config_file=str(cluster.kubeconfig)))

    def setup(self) -> None:
        kubectl = self.cluster.kubectl
        kubectl("apply", "-f", str(CRD_FILE))
        kubectl("wait", "--for=condition=Established", "crd/shardprocesses.shards.dev", "--timeout=90s",
                timeout=120)
        kubectl("apply", "-f", str(DEPLOY / "namespace.yaml"), "-f", str(DEPLOY / "operator-rbac.yaml"))
        kubectl("create", "namespace", self.namespace)
        kubectl("delete", "lease", LEASE_NAME, "-n", LEASE_NAMESPACE, "--ignore-not-found")
        token = kubectl("create", "token", "shards-operator", "-n", "shards-system",
                        "--duration=1h").stdout.strip()
        self.cluster.token_kubeconfig(token, self.kubeconfig)
        self.mongo.start()
        self.controller = Controller(connect(self.mongo.uri))
        self.processes.start_worker("bench/app.py:app")
        store = self.controller.store
        wait_until(lambda: len(store.workers.alive()) >= 1, 60, "a live worker", pause=0.25)
        self.controller.wait_defined(self.controller.define(self.namespace), timeout=60)

    def start(self, name: str) -> None:
        self.operators[name], health = self.processes.start_candidate(
            self.namespace, self.kubeconfig, name, log=f"operator-{name}.log", append=True)
        wait_until(lambda: answers(health), 60, f"operator {name}'s health endpoint", pause=0.1)

    def holder(self) -> str:
        try:
            lease = self.leases.read_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE, _request_timeout=5)
        except kube_client.ApiException:
            return ""
        return str(lease.spec.holder_identity or "").split("_")[0]

    def create(self) -> str:
        """A new resource; its launch id (k8s-<uid>-1)."""
        self.count += 1
        body = {"apiVersion": "shards.dev/v1alpha1", "kind": "ShardProcess",
                "metadata": {"name": f"r-{self.count}"}, "spec": {"process": f"noop-{self.count}"}}
        created = self.cluster.kubectl("create", "-n", self.namespace, "-f", "-", "-o", "json",
                                       input=json.dumps(body))
        return f"k8s-{json.loads(created.stdout)['metadata']['uid']}-1"

    def launched(self, launch_id: str) -> bool:
        assert self.controller is not None
        return self.controller.store.runs.get(launch_id) is not None

    def trial(self, sig: signal.Signals) -> dict[str, float]:
        leader = wait_until(lambda: self.holder() or None, WAIT, "a leader", pause=0.1)
        standby = next(name for name in self.operators if name != leader)
        warm = self.create()  # the leader acts before it goes
        wait_until(lambda: self.launched(warm), WAIT, "the leader's launch", pause=0.05)
        began = time.monotonic()
        self.operators[leader].send_signal(sig)
        launch_id = self.create()
        seen: dict[str, float] = {}

        def done() -> bool:
            if "lease" not in seen and self.holder() == standby:
                seen["lease"] = time.monotonic() - began
            if self.launched(launch_id):
                seen["acts"] = time.monotonic() - began
            return "acts" in seen and "lease" in seen

        wait_until(done, WAIT, f"{standby} to act", pause=0.05)
        self.operators[leader].popen.wait(30)
        self.start(leader)  # back, as the standby
        return seen

    def close(self) -> None:
        self.processes.close()
        self.cluster.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="trials per signal")
    args = parser.parse_args(argv)
    cluster = running()
    started = cluster is None
    if cluster is None:
        log("starting a local control plane")
        cluster = up()
    bench = Failover(cluster, Path(tempfile.mkdtemp(prefix="bench-failover-")))
    results: dict[str, list[dict[str, float]]] = {}
    try:
        bench.setup()
        bench.start("a")
        wait_until(lambda: bench.holder() == "a", WAIT, "a to lead", pause=0.1)
        bench.start("b")
        for sig in (signal.SIGKILL, signal.SIGTERM):
            for number in range(args.trials):
                seen = bench.trial(sig)
                log(f"{sig.name} trial {number + 1}: lease {seen['lease']:.2f} s, acts {seen['acts']:.2f} s")
                results.setdefault(sig.name, []).append(seen)
    finally:
        bench.close()
        if started:
            down()
    print(f"\n{'signal':8} {'what':22} {'p50':>8} {'max':>8} {'target':>8}")
    for name, trials in results.items():
        for what in ("lease", "acts"):
            values = sorted(trial[what] for trial in trials)
            target = f"<= {TARGETS[name]:.0f} s" if what == "acts" else ""
            label = "-> lease names standby" if what == "lease" else "-> standby launches"
            print(f"{name:8} {label:22} {percentile(values, 50):7.2f}s {max(values):7.2f}s {target:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
