"""Benchmark of the Kubernetes path (`make bench`): ShardProcess resources through a real API
server, the `shards operator` process on the operator ServiceAccount's token, 4 workers and a
private embedded MongoDB. Not a test: it measures, prints a table and writes
bench/results/operator.json.

1. apply -> Running latency over 100 resources created one at a time: from a client-side
   timestamp taken just before the create call to the run's `startedAt` in the run history
   (written by the worker). Both clocks are this machine's. Split into apply -> launch (the
   operator's pickup: the run's `requestedAt`) and launch -> start (a worker's claim).
2. a burst of 500 resources in one `kubectl apply -f` of a List: time until every one shows
   status.state Done, resources per second, and status patches per resource from the operator's
   `shards_operator_status_patches_total`.

Bounded: every wait has a deadline. The control plane is reused when one runs in
$SHARDS_CLUSTER_DIR (default .cluster), else started here and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client as kube_client
from kubernetes import config as kube_config
from shards_controller import Controller
from shards_store import connect
from shards_store.embedded import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the cluster tooling, the harness
from cluster import start_app_workers  # bench/ is this script's directory
from stats import percentile
from tooling.cluster import KubeCluster, down, running, up
from tooling.harness import Child, EmbeddedMongo, Processes, cpu_seconds, reap, shards_env, wait_until

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CRD_FILE = REPO / "crds" / "shardprocesses.shards.dev.yaml"
DEPLOY = REPO / "deploy"
OPERATOR_SA = "system:serviceaccount:shards-system:shards-operator"
GROUP, VERSION, PLURAL = "shards.dev", "v1alpha1", "shardprocesses"

WORKERS, CONCURRENCY = 4, 4
STATUS_INTERVAL = 1.0
JOBS_PER_SCOPE = 200  # bench/app.py: noop-0 .. noop-199
WARMUP, LATENCY_RUNS, BURST = 3, 100, 500
SMOKE_LATENCY_RUNS, SMOKE_BURST = 10, 50  # --smoke: checks the path, not the numbers
BURST_SCOPES = math.ceil(BURST / JOBS_PER_SCOPE)  # one process id per resource: none waits its turn
LATENCY_TIMEOUT = 30.0  # per resource
BURST_TIMEOUT = 180.0
STOP_TIMEOUT = 30.0  # SIGTERM -> SIGKILL at the end
STALL_S = 30.0  # the burst ends early when nothing moves for this long after the apply
TARGETS = {"p50_ms": 300.0, "p99_ms": 1000.0, "burst_s": 60.0, "patches_per_resource": 8.0}


def log(message: str) -> None:
    print(f"[bench-operator] {time.strftime('%H:%M:%S')} {message}", flush=True)


def shp(name: str, process: str, scope: str | None = None, phase: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"process": process}
    if scope:
        spec["scope"] = scope
    metadata: dict[str, Any] = {"name": name}
    if phase:
        metadata["labels"] = {"bench.shards.dev/phase": phase}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ShardProcess", "metadata": metadata, "spec": spec}


class Bench:
    def __init__(self, cluster: KubeCluster, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.namespace = f"bench-op-{uuid.uuid4().hex[:6]}"
        self.burst_scopes = [f"{self.namespace}-b{n}" for n in range(BURST_SCOPES)]
        self.metrics_port = free_port()
        self.mongo = EmbeddedMongo(workdir / "mongo", "bench", grace=STOP_TIMEOUT)
        self.uri = self.mongo.uri
        self.processes = Processes(workdir, shards_env(self.uri), grace=STOP_TIMEOUT, mongo=self.mongo)
        self.operator: Child | None = None
        self.operator_log = workdir / "operator.log"
        self.api = kube_client.CustomObjectsApi(
            kube_config.new_client_from_config(config_file=str(cluster.kubeconfig))
        )
        self.controller: Controller | None = None
        self.namespace_created = False

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self) -> None:
        kubectl = self.cluster.kubectl
        kubectl("apply", "-f", str(CRD_FILE))
        kubectl(
            "wait",
            "--for=condition=Established",
            "crd/shardprocesses.shards.dev",
            "--timeout=90s",
            timeout=120,
        )
        wait_until(lambda: kubectl("get", "shp", "-A", check=False).returncode == 0, 60,
                   "shardprocesses to be served", pause=0.25)
        kubectl("apply", "-f", str(DEPLOY / "namespace.yaml"), "-f", str(DEPLOY / "operator-rbac.yaml"))
        can_watch = ("auth", "can-i", "watch", "shardprocesses.shards.dev", "--all-namespaces",
                     f"--as={OPERATOR_SA}")
        wait_until(lambda: kubectl(*can_watch, check=False).stdout.strip() == "yes", 60,
                   "the operator's RBAC to take effect", pause=0.25)
        kubectl("create", "namespace", self.namespace)
        self.namespace_created = True
        token = kubectl(
            "create", "token", "shards-operator", "-n", "shards-system", "--duration=1h"
        ).stdout.strip()
        kubeconfig = self.cluster.token_kubeconfig(token, self.workdir / "operator.kubeconfig")

        self.mongo.start()
        self.controller = Controller(connect(self.uri))
        start_app_workers(self.processes, self.controller, [self.namespace, *self.burst_scopes],
                          workers=WORKERS, concurrency=CONCURRENCY)

        grant = f"{self.namespace}={','.join(self.burst_scopes)}"
        self.operator = self.processes.start_operator(
            self.namespace, kubeconfig, "--scope-grant", grant, "--metrics-port", str(self.metrics_port),
            status_interval=STATUS_INTERVAL, log=self.operator_log.name,
        )
        wait_until(lambda: self._metric_or_none() is not None, 60, "the operator's metrics", pause=0.25)

    # -- helpers ----------------------------------------------------------------------------------
    def _metric_or_none(self) -> float | None:
        if self.operator is not None and not self.operator.running:
            raise RuntimeError(f"the operator exited:\n{self.operator.output()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as reply:
                text = reply.read().decode()
        except OSError:
            return None
        found = re.search(r"^shards_operator_status_patches_total (\S+)$", text, re.M)
        return float(found.group(1)) if found else None

    def status_patches(self) -> float:
        value = self._metric_or_none()
        if value is None:
            raise RuntimeError("the operator's metrics are not served")
        return value

    def api_patches(self) -> dict[str, float]:
        """The API server's own count of PATCH requests on shardprocesses (status and not)."""
        text = self.cluster.kubectl("get", "--raw", "/metrics", timeout=60).stdout
        counts = {"status": 0.0, "object": 0.0}
        for line in text.splitlines():
            if (
                line.startswith("apiserver_request_total{")
                and 'resource="shardprocesses"' in line
                and 'verb="PATCH"' in line
            ):
                key = "status" if 'subresource="status"' in line else "object"
                counts[key] += float(line.rsplit(" ", 1)[1])
        return counts

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) used so far by each process of the set-up."""
        state = json.loads((self.cluster.state_dir / "state.json").read_text())
        usage = {record["name"]: cpu_seconds(int(record["pid"])) for record in state.get("processes", [])}
        usage["operator"] = cpu_seconds(self.operator.pid) if self.operator else 0.0
        usage["workers"] = sum(cpu_seconds(worker.pid) for worker in self.processes.workers)
        usage["mongo"] = cpu_seconds(self.mongo.pid)
        own = os.times()
        usage["bench+kubectl"] = own.user + own.system + own.children_user + own.children_system
        return usage

    def create(self, body: dict[str, Any]) -> tuple[datetime, str]:
        """Create through the API; the client-side time just before the call, and the uid."""
        before = datetime.now(UTC)
        created: Any = self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        return before, str(created["metadata"]["uid"])

    def wait_started(self, run_id: str, timeout: float) -> Any:
        assert self.controller is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.controller.store.runs.get(run_id)
            if run is not None and run.started_at is not None:
                return run
            if self.operator is not None and not self.operator.running:
                raise RuntimeError("the operator exited")
            time.sleep(0.01)
        raise TimeoutError(f"run {run_id} did not start within {timeout:.0f}s")

    def listed(self, phase: str) -> list[dict[str, Any]]:
        listed = self.cluster.kubectl_json(
            "get", "shp", "-n", self.namespace, "-l", f"bench.shards.dev/phase={phase}", timeout=60
        )
        return list(listed["items"])

    def states(self, phase: str) -> list[str]:
        return [str((item.get("status") or {}).get("state", "")) for item in self.listed(phase)]

    def not_done(self, phase: str) -> list[dict[str, Any]]:
        """What a resource that never showed Done says, and what MongoDB says of its run."""
        assert self.controller is not None
        found = []
        for item in self.listed(phase):
            status = item.get("status") or {}
            if status.get("state") == "Done":
                continue
            run_id = f"k8s-{item['metadata']['uid']}-1"
            run = self.controller.store.runs.get(run_id)
            record = self.controller.store.processes.get(
                status.get("scope") or item["spec"].get("scope"), item["spec"]["process"]
            )
            found.append(
                {
                    "name": item["metadata"]["name"],
                    "status_state": status.get("state"),
                    "status_run_id": status.get("runId"),
                    "status_runs": status.get("runs"),
                    "run_id": run_id,
                    "mongo_run_state": run.state.value if run else None,
                    "mongo_record_state": record.state.value if record else None,
                    "mongo_record_run_id": record.run_id if record else None,
                }
            )
        return found

    def wait_all_done(self, phase: str, count: int, timeout: float) -> tuple[bool, list[str]]:
        deadline = time.monotonic() + timeout
        while True:
            states = self.states(phase)
            if len(states) == count and set(states) == {"Done"}:
                return True, states
            if time.monotonic() >= deadline:
                return False, states
            time.sleep(1.0)

    # -- the measurements ---------------------------------------------------------------------------
    def latency(self) -> dict[str, Any]:
        for n in range(WARMUP):  # kopf's first watch, connections, imports: not measured
            _, uid = self.create(shp(f"warm-{n}", f"noop-{JOBS_PER_SCOPE - 1 - n}", phase="warmup"))
            self.wait_started(f"k8s-{uid}-1", 60)
        total, pickup, claim = [], [], []
        for n in range(LATENCY_RUNS):
            before, uid = self.create(shp(f"lat-{n}", f"noop-{n}", phase="latency"))
            run = self.wait_started(f"k8s-{uid}-1", LATENCY_TIMEOUT)
            total.append((run.started_at - before).total_seconds() * 1000)
            if run.requested_at is not None:
                pickup.append((run.requested_at - before).total_seconds() * 1000)
                claim.append((run.started_at - run.requested_at).total_seconds() * 1000)
        settled, _ = self.wait_all_done("latency", LATENCY_RUNS, 30)
        return {
            "runs": LATENCY_RUNS,
            "p50_ms": percentile(total, 50),
            "p99_ms": percentile(total, 99),
            "max_ms": max(total),
            "pickup_p50_ms": percentile(pickup, 50),
            "pickup_p99_ms": percentile(pickup, 99),
            "claim_p50_ms": percentile(claim, 50),
            "claim_p99_ms": percentile(claim, 99),
            "all_done_in_status": settled,
            "samples_ms": [round(v, 1) for v in total],
        }

    def burst(self) -> dict[str, Any]:
        assert self.controller is not None
        time.sleep(2 * STATUS_INTERVAL)  # the latency phase's last patches are out
        patches_before, api_before = self.status_patches(), self.api_patches()
        items = [
            shp(f"burst-{n}", f"noop-{n % JOBS_PER_SCOPE}", self.burst_scopes[n // JOBS_PER_SCOPE], "burst")
            for n in range(BURST)
        ]
        manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        cpu_before = self.cpu_seconds()
        started = time.monotonic()
        started_wall = datetime.now(UTC)
        # The apply runs while status is polled: the timeline covers the whole burst.
        apply_log = self.workdir / "kubectl-apply.log"
        with apply_log.open("wb") as sink:
            apply = subprocess.Popen(
                [str(self.cluster.bin_dir / "kubectl"), "apply", "-n", self.namespace, "-f", "-"],
                env=self.cluster.env(),
                stdin=subprocess.PIPE,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            return self._follow_burst(
                apply, apply_log, manifest, started, started_wall, cpu_before, patches_before, api_before
            )
        finally:
            reap(apply, grace=STOP_TIMEOUT, sig=signal.SIGKILL)

    def _follow_burst(
        self,
        apply: subprocess.Popen[bytes],
        apply_log: Path,
        manifest: str,
        started: float,
        started_wall: datetime,
        cpu_before: dict[str, float],
        patches_before: float,
        api_before: dict[str, float],
    ) -> dict[str, Any]:
        assert self.controller is not None and apply.stdin is not None
        apply.stdin.write(manifest.encode())
        apply.stdin.close()
        applied: float | None = None
        timeline: list[tuple[float, int, int]] = []  # (seconds since the apply began, created, Done)
        deadline = started + BURST_TIMEOUT
        stalled, last_change = False, started
        while True:
            if applied is None and apply.poll() is not None:
                applied = time.monotonic() - started
                if apply.returncode != 0:
                    raise RuntimeError(
                        f"kubectl apply failed: {apply_log.read_text(errors='replace')[-2000:]}"
                    )
            states = self.states("burst")
            now = time.monotonic()
            point = (round(now - started, 1), len(states), states.count("Done"))
            if not timeline or point[1:] != timeline[-1][1:]:
                last_change = now
            timeline.append(point)
            done = len(states) == BURST and set(states) == {"Done"}
            # No resource created or Done for STALL_S after the apply: waiting longer shows nothing.
            stalled = applied is not None and now - last_change >= STALL_S
            if done or stalled or now >= deadline:
                break
            time.sleep(1.0)
        elapsed = time.monotonic() - started
        cpu = {
            name: round(after - cpu_before.get(name, 0.0), 1) for name, after in self.cpu_seconds().items()
        }
        stuck = [] if done else self.not_done("burst")
        time.sleep(2 * STATUS_INTERVAL)  # any patch still queued is counted
        patches = self.status_patches() - patches_before
        api_after = self.api_patches()
        # When the runs themselves ended (MongoDB), apart from when status showed it.
        runs = self.controller.store.runs.collection.find({"scopeId": {"$in": self.burst_scopes}})
        ended = [int(r["endedAt"]) for r in runs if r.get("endedAt")]  # epoch milliseconds
        runs_end_s = (max(ended) / 1000 - started_wall.timestamp()) if ended else None
        return {
            "resources": BURST,
            "all_done": done,
            "done": states.count("Done"),
            "seen": len(states),
            "seconds": elapsed,
            "kubectl_apply_seconds": applied,
            "resources_per_second": states.count("Done") / elapsed,
            "runs_ended": len(ended),
            "last_run_ended_s": runs_end_s,
            "status_patches": patches,
            "status_patches_per_resource": patches / BURST,
            "api_status_patches_per_resource": (api_after["status"] - api_before["status"]) / BURST,
            "api_object_patches_per_resource": (api_after["object"] - api_before["object"]) / BURST,
            "done_timeline": timeline,
            "cpu_seconds": cpu,
            "stalled": stalled,
            "not_done": stuck,
        }

    # -- tear-down --------------------------------------------------------------------------------
    def close(self) -> None:
        self.processes.close()  # the operator, the workers, then the server
        if self.namespace_created:
            self._drop_namespace()

    def _drop_namespace(self) -> None:
        """The operator is gone: take its finalizer off every resource, then drop the namespace."""
        try:
            listed: Any = self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
            for item in listed.get("items", []):
                if item["metadata"].get("finalizers"):
                    self.api.patch_namespaced_custom_object(
                        GROUP,
                        VERSION,
                        self.namespace,
                        PLURAL,
                        item["metadata"]["name"],
                        {"metadata": {"finalizers": None}},
                    )
        except kube_client.ApiException as error:
            log(f"could not clear finalizers: {error.status} {error.reason}")
        self.cluster.kubectl(
            "delete", "namespace", self.namespace, "--wait=false", "--ignore-not-found", check=False
        )


def report(latency: dict[str, Any], burst: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    rows = [
        (
            "apply->Running p50",
            f"{latency['p50_ms']:.0f} ms",
            f"<= {TARGETS['p50_ms']:.0f} ms",
            latency["p50_ms"] <= TARGETS["p50_ms"],
        ),
        (
            "apply->Running p99",
            f"{latency['p99_ms']:.0f} ms",
            f"<= {TARGETS['p99_ms']:.0f} ms",
            latency["p99_ms"] <= TARGETS["p99_ms"],
        ),
        (
            f"burst of {BURST}: all Done",
            f"{burst['seconds']:.1f} s"
            + ("" if burst["all_done"] else f" (only {burst['done']}/{BURST} Done)"),
            f"<= {TARGETS['burst_s']:.0f} s",
            burst["all_done"] and burst["seconds"] <= TARGETS["burst_s"],
        ),
        ("burst: resources/s", f"{burst['resources_per_second']:.1f}", "", True),
        (
            "burst: status patches/resource",
            f"{burst['status_patches_per_resource']:.2f}",
            f"<= {TARGETS['patches_per_resource']:.0f}",
            burst["status_patches_per_resource"] <= TARGETS["patches_per_resource"],
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'figure'.ljust(width)}  {'value':>26}  {'target':>10}")
    for figure, value, target, ok in rows:
        mark = "" if not target else ("ok" if ok else "MISSED")
        print(f"{figure.ljust(width)}  {value:>26}  {target:>10}  {mark}")
    print(
        f"  (apply->launch p50 {latency['pickup_p50_ms']:.0f} ms / p99 {latency['pickup_p99_ms']:.0f} ms, "
        f"launch->start p50 {latency['claim_p50_ms']:.0f} ms / p99 {latency['claim_p99_ms']:.0f} ms; "
        f"burst: kubectl apply took {burst['kubectl_apply_seconds'] or float('nan'):.1f} s, the last run "
        f"ended {burst['last_run_ended_s'] or float('nan'):.1f} s after it began; "
        f"API server PATCHes per resource: status {burst['api_status_patches_per_resource']:.2f}, "
        f"object {burst['api_object_patches_per_resource']:.2f})"
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    global LATENCY_RUNS, BURST, BURST_SCOPES
    parser = argparse.ArgumentParser(description="The operator path's benchmark (figure 6 of bench/run.py).")
    parser.add_argument("--out", type=Path, default=RESULTS / "operator.json", help="where the JSON goes")
    parser.add_argument("--smoke", action="store_true",
                        help=f"{SMOKE_LATENCY_RUNS} resources one at a time and a burst of {SMOKE_BURST}")
    args = parser.parse_args(argv)
    if args.smoke:
        LATENCY_RUNS, BURST = SMOKE_LATENCY_RUNS, SMOKE_BURST
        BURST_SCOPES = math.ceil(BURST / JOBS_PER_SCOPE)
    cluster = running()
    started_cluster = cluster is None
    if cluster is None:
        log("starting a local control plane")
        cluster = up()
    workdir = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    bench = Bench(cluster, workdir)
    try:
        log(f"setting up: namespace {bench.namespace}, {WORKERS} workers x {CONCURRENCY}, the operator")
        bench.setup()
        log(f"apply->Running over {LATENCY_RUNS} resources, one at a time")
        latency = bench.latency()
        log(f"a burst of {BURST} resources in one kubectl apply")
        burst = bench.burst()
        rows = report(latency, burst)
        print(f"  burst CPU seconds by process: {burst['cpu_seconds']}")
        for stuck in burst["not_done"][:10]:
            print(f"  never Done in status: {stuck}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "setup": {"workers": WORKERS, "concurrency": CONCURRENCY, "status_interval_s": STATUS_INTERVAL,
                      "latency_runs": LATENCY_RUNS, "burst": BURST, "smoke": args.smoke},
            "targets": TARGETS,
            "latency": latency,
            "burst": burst,
            "met": {figure: ok for figure, _, target, ok in rows if target},
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        log(f"wrote {args.out} (operator log: {RESULTS / 'operator.log'})")
        return 0
    finally:
        bench.close()
        if started_cluster:
            log("stopping the control plane")
            down()
        if bench.operator_log.exists():  # kept for a look at where the time went
            RESULTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bench.operator_log, RESULTS / "operator.log")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
