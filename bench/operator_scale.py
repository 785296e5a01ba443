"""Figure 10 (issue 24): the operator at platform scale, measured against a bare kopf operator in
the same run. Not a test: it measures, prints a table and writes bench/results/operator_scale.json.

The floor (bench/floor_operator.py: kopf alone, no MongoDB, one status patch per resource on
create) runs first on its own namespaces (`fl<tag>-000`..), then is stopped; then Shards (the
`shards operator` process, a private embedded MongoDB, 2 workers x 8 running bench/app.py) on
others (`sc<tag>-000`..). Both on the operator ServiceAccount's token, both watching their
namespaces by a glob, both followed by the same watch of the resources (one per side, by label).

1. existing population: N resources created through the API (16 threads, retry on 429/5xx),
   the creation rate, the time until all are Done (Shards) / patched (floor); the operator's RSS
   at 0, ~N/10 and N resources; idle CPU of the operator, kube-apiserver and etcd over 30 s.
2. steady arrivals: R resources/s for S s (clock-paced); per resource apply (client time just
   before the create) -> Running (the run's startedAt in MongoDB) and apply -> Done in status
   (the watch); the floor's apply -> patched; p50/p99.
3. burst: B resources in one `kubectl apply -f -` of a List: the apply's time, the time until all
   are Done / patched, the API server's write rate and its 429 answers.
4. restart: with everything present (and A active runs on the Shards side: sleepy-N for 120 s,
   launched and not ended; 2 x 8 of them run, the rest wait Scheduled) the operator is killed
   (SIGKILL), half the active runs are stopped through MongoDB while it is down, and it is
   started again: time until it has taken up every resource (its gauge
   shards_operator_resources; the floor's resume counter), until every status agrees with
   MongoDB, the launches it made (must be 0) and the API requests of the window.
5. cost per run, over the burst: API requests by verb and resource (apiserver_request_total),
   status patches and Events per run, MongoDB operations per run (serverStatus opcounters, all
   clients: operator and workers).
6. `kubectl get shp -A` with everything present: wall time and bytes (JSON and table), and the
   largest status.

Bounded: every wait has a deadline and ends early when nothing moves for STALL_S. The control plane
is reused when one runs in $SHARDS_CLUSTER_DIR (default .cluster), else started here and stopped
at the end.

  python bench/operator_scale.py            # 10,000 existing over 100 namespaces (20-40 min)
  python bench/operator_scale.py --smoke    # checks the harness, not the numbers
  python bench/operator_scale.py --existing 2000 --namespaces 20 --burst 1000 --active 50
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client as kube_client
from kubernetes import config as kube_config
from kubernetes import watch as kube_watch
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
CRD_FILES = (
    REPO / "crds" / "shardprocesses.shards.dev.yaml",
    REPO / "crds" / "shardschedules.shards.dev.yaml",
)
DEPLOY = REPO / "deploy"
OPERATOR_SA = "system:serviceaccount:shards-system:shards-operator"
GROUP, VERSION, PLURAL = "shards.dev", "v1alpha1", "shardprocesses"
SIDE_LABEL, PHASE_LABEL = "bench.shards.dev/side", "bench.shards.dev/phase"

WORKERS, CONCURRENCY = 2, 8
STATUS_INTERVAL = 1.0
NOOPS, SLEEPY = 1000, 200  # bench/app.py: noop-0..999, sleepy-0..199 in every scope
ACTIVE_SECONDS = 120.0
CREATE_THREADS, ARRIVAL_THREADS = 16, 8
CREATE_RETRIES = 12
STOP_TIMEOUT = 30.0
FINAL_STATES = ("Stopped", "Done", "Failed")
TICK = 0.2  # seconds between looks at the watch's view
TARGETS = {
    "running_p99_ms": 1000.0,
    "running_p99_vs_floor": 2.0,
    "burst_vs_floor": 1.5,
    "restart_s": 60.0,
    "restart_vs_floor": 2.0,
    "restart_launches": 0,
    "rss_mb": 400.0,
    "patches_per_run": 3.0,
}


def log(message: str) -> None:
    print(f"[bench-scale] {time.strftime('%H:%M:%S')} {message}", flush=True)


@dataclass
class Plan:
    existing: int = 10_000
    namespaces: int = 100
    arrival_rate: float = 20.0
    arrival_seconds: float = 60.0
    burst: int = 2_000
    active: int = 200
    smoke: bool = False
    idle_s: float = 30.0
    stall_s: float = 90.0
    timeout_s: float = 1200.0  # the bound of any one wait

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        if args.smoke:
            plan = cls(
                existing=100,
                namespaces=4,
                arrival_rate=10.0,
                arrival_seconds=2.0,
                burst=40,
                active=10,
                smoke=True,
                idle_s=3.0,
                stall_s=30.0,
                timeout_s=180.0,
            )
        else:
            plan = cls()
        for name in ("existing", "namespaces", "arrival_rate", "arrival_seconds", "burst", "active"):
            value = getattr(args, name)
            if value is not None:
                setattr(plan, name, type(getattr(plan, name))(value))
        return plan

    @property
    def arrivals(self) -> int:
        return round(self.arrival_rate * self.arrival_seconds)


# -- small readers ------------------------------------------------------------------------------------
def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat): the part no process of this bench
    used is the machine's other load."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    found = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = LINE.match(line)
        if match:
            with contextlib.suppress(ValueError):
                found.append(
                    (match.group(1), dict(LABEL.findall(match.group(2) or "")), float(match.group(3)))
                )
    return found


def scrape(port: int) -> list[tuple[str, dict[str, str], float]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return parse_metrics(reply.read().decode())
    except OSError:
        return None


def metric(samples: list[tuple[str, dict[str, str], float]] | None, name: str) -> float | None:
    if samples is None:
        return None
    values = [value for found, _, value in samples if found == name]
    return sum(values) if values else None


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before.get(key, 0.0) for key in after if after[key] - before.get(key, 0.0)}


def quantiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 1),
        "p99_ms": round(percentile(values, 99), 1),
        "max_ms": round(max(values), 1),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else round(a / b, 2)


# -- the watch: every resource of one side as the API server last said it ------------------------------
@dataclass
class Seen:
    namespace: str
    name: str
    phase: str
    process: str = ""
    state: str = ""
    running_at: float | None = None  # time.time() the watch first saw status.state Running
    done_at: float | None = None  # ... Done
    status_bytes: int = 0


class Watcher:
    """One watch of all the resources of a side (by label), cluster-wide: its list, then its
    events; a 410 relists. The bench's only look at the resources while it measures."""

    def __init__(self, api: kube_client.ApiClient, side: str) -> None:
        self.custom = kube_client.CustomObjectsApi(api)
        self.selector = f"{SIDE_LABEL}={side}"
        self.lock = threading.Lock()
        self.items: dict[str, Seen] = {}
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.relists = 0
        self.regressions: list[dict[str, Any]] = []  # statuses that left a final state
        self.modified = 0  # MODIFIED events seen: a patch that changed nothing makes none
        self.thread = threading.Thread(target=self._run, name=f"watch-{side}", daemon=True)

    def start(self) -> Watcher:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=40)

    def _run(self) -> None:
        version = ""
        while not self.stopping.is_set():
            try:
                if not version:
                    version = self._list()
                    self.relists += 1
                version = self._watch(version)
            except kube_client.ApiException as error:
                if error.status != 410:
                    self.errors.append(f"{error.status} {error.reason}")
                    time.sleep(1)
                version = ""
            except Exception as error:  # a dropped connection: watch again from where it was
                self.errors.append(f"{type(error).__name__}: {error}"[:200])
                time.sleep(1)

    def _list(self) -> str:
        token, version = None, ""
        while True:
            page: Any = self.custom.list_cluster_custom_object(
                GROUP,
                VERSION,
                PLURAL,
                label_selector=self.selector,
                limit=500,
                _continue=token,
                _request_timeout=(10, 120),
            )
            for item in page["items"]:
                self._see(item)
            version = page["metadata"]["resourceVersion"]
            token = page["metadata"].get("continue")
            if not token:
                return str(version)

    def _watch(self, version: str) -> str:
        stream = kube_watch.Watch()
        for event in stream.stream(
            self.custom.list_cluster_custom_object,
            GROUP,
            VERSION,
            PLURAL,
            label_selector=self.selector,
            resource_version=version,
            timeout_seconds=20,
            allow_watch_bookmarks=True,
            _request_timeout=(10, 60),
        ):
            kind, obj = event["type"], event["object"]
            if kind == "ERROR":
                return ""  # 410 Gone and the like: list again
            version = obj.get("metadata", {}).get("resourceVersion", version)
            if kind == "DELETED":
                with self.lock:
                    self.items.pop(obj["metadata"]["uid"], None)
            elif kind != "BOOKMARK":
                self.modified += kind == "MODIFIED"
                self._see(obj)
            if self.stopping.is_set():
                stream.stop()
        return version

    def _see(self, obj: dict[str, Any]) -> None:
        now = time.time()
        meta, status = obj["metadata"], obj.get("status") or {}
        state = str(status.get("state") or "")
        with self.lock:
            seen = self.items.get(meta["uid"])
            if seen is None:
                labels = meta.get("labels") or {}
                seen = self.items[meta["uid"]] = Seen(
                    meta["namespace"],
                    meta["name"],
                    labels.get(PHASE_LABEL, ""),
                    str((obj.get("spec") or {}).get("process", "")),
                )
            if seen.state and state != seen.state and seen.state in FINAL_STATES:
                # A status that moved away from a final state: a patch landed out of order.
                self.regressions.append(
                    {
                        "namespace": seen.namespace,
                        "name": seen.name,
                        "from": seen.state,
                        "to": state,
                        "at": round(now, 3),
                        "status": status,
                    }
                )
            seen.state = state
            seen.status_bytes = len(json.dumps(status, separators=(",", ":"))) if status else 0
            if state == "Running" and seen.running_at is None:
                seen.running_at = now
            if state == "Done" and seen.done_at is None:
                seen.done_at = now

    def count(self, phase: str | None = None, state: str | tuple[str, ...] | None = None) -> int:
        states = (state,) if isinstance(state, str) else state
        with self.lock:
            return sum(
                1
                for s in self.items.values()
                if (phase is None or s.phase == phase) and (states is None or s.state in states)
            )

    def snapshot(self) -> dict[str, Seen]:
        with self.lock:
            return {uid: Seen(**vars(seen)) for uid, seen in self.items.items()}


# -- the two sides ---------------------------------------------------------------------------------------
@dataclass
class Created:
    namespace: str
    name: str
    uid: str
    before: float  # time.time() just before the create call


@dataclass
class Side:
    """What differs between the floor and Shards: how the operator starts, what says it is ready
    and what it counts. The phases themselves are the Bench's."""

    name: str  # "floor" or "shards"
    prefix: str
    namespaces: list[str]
    metrics_port: int = field(default_factory=free_port)
    operator: Child | None = None
    starts: int = 0
    next_noop: dict[str, int] = field(default_factory=dict)

    @property
    def glob(self) -> str:
        return f"{self.prefix}-*"

    def noop(self, namespace: str) -> str:
        n = self.next_noop.get(namespace, 0)
        self.next_noop[namespace] = n + 1
        return f"noop-{n % NOOPS}"

    def metrics(self) -> list[tuple[str, dict[str, str], float]] | None:
        return scrape(self.metrics_port)

    def taken_up(self) -> float | None:
        """How many resources the running operator has taken up since it started."""
        samples = self.metrics()
        if self.name == "floor":
            created, resumed = metric(samples, "floor_created_total"), metric(samples, "floor_resumed_total")
            return None if created is None or resumed is None else created + resumed
        return metric(samples, "shards_operator_resources")

    def status_patches(self) -> float | None:
        name = "floor_created_total" if self.name == "floor" else "shards_operator_status_patches_total"
        return metric(self.metrics(), name)


def shp(
    name: str, namespace: str, process: str, side: str, phase: str, args: dict[str, Any] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"process": process}
    if args:
        spec["args"] = args
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ShardProcess",
        "metadata": {"name": name, "namespace": namespace, "labels": {SIDE_LABEL: side, PHASE_LABEL: phase}},
        "spec": spec,
    }


class Bench:
    def __init__(self, cluster: KubeCluster, workdir: Path, plan: Plan) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.plan = plan
        tag = uuid.uuid4().hex[:4]
        names = [f"{n:03d}" for n in range(plan.namespaces)]
        self.floor = Side("floor", f"fl{tag}", [f"fl{tag}-{n}" for n in names])
        self.shards = Side("shards", f"sc{tag}", [f"sc{tag}-{n}" for n in names])
        self.mongo = EmbeddedMongo(workdir / "mongo", "bench", grace=STOP_TIMEOUT)
        self.uri = self.mongo.uri
        self.processes = Processes(workdir, shards_env(self.uri), grace=STOP_TIMEOUT, mongo=self.mongo)
        configuration = kube_client.Configuration()
        kube_config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)
        configuration.connection_pool_maxsize = 48
        self.api_client = kube_client.ApiClient(configuration)
        self.custom = kube_client.CustomObjectsApi(self.api_client)
        self.controller: Controller | None = None
        self.kubeconfig: Path | None = None
        self.namespaces_created: list[str] = []
        self.client_429s = 0
        self.client_retries = 0
        self.logs: list[Path] = []
        self.notes: list[str] = []
        self.partial: dict[str, Any] = {}
        self.partial_path: Path | None = None  # FILE.partial.json beside --out
        self.stuck: list[dict[str, Any]] = []  # resources a wait gave up on, and why (what MongoDB says)

    # -- set-up -----------------------------------------------------------------------------------------
    def setup(self) -> None:
        kubectl = self.cluster.kubectl
        for crd in CRD_FILES:
            kubectl("apply", "-f", str(crd))
        kubectl(
            "wait",
            "--for=condition=Established",
            "crd/shardprocesses.shards.dev",
            "crd/shardschedules.shards.dev",
            "--timeout=90s",
            timeout=120,
        )
        wait_until(
            lambda: kubectl("get", "shp", "-A", check=False).returncode == 0,
            60,
            "shardprocesses to be served",
            pause=0.25,
        )
        kubectl("apply", "-f", str(DEPLOY / "namespace.yaml"), "-f", str(DEPLOY / "operator-rbac.yaml"))
        can_watch = (
            "auth",
            "can-i",
            "watch",
            "shardprocesses.shards.dev",
            "--all-namespaces",
            f"--as={OPERATOR_SA}",
        )
        wait_until(
            lambda: kubectl(*can_watch, check=False).stdout.strip() == "yes",
            60,
            "the operator's RBAC to take effect",
            pause=0.25,
        )
        namespaces = [*self.floor.namespaces, *self.shards.namespaces]
        manifest = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces
            ],
        }
        self.namespaces_created = namespaces
        kubectl("apply", "-f", "-", input=json.dumps(manifest), timeout=300)
        token = kubectl(
            "create", "token", "shards-operator", "-n", "shards-system", "--duration=3h"
        ).stdout.strip()
        self.kubeconfig = self.cluster.token_kubeconfig(token, self.workdir / "operator.kubeconfig")

    def start_shards_store(self) -> None:
        """MongoDB, the workers and the scopes: started only now, so that they cost the floor nothing."""
        self.mongo.start()
        self.controller = Controller(connect(self.uri))
        start_app_workers(self.processes, self.controller, self.shards.namespaces,
                          workers=WORKERS, concurrency=CONCURRENCY)

    # -- the operators -------------------------------------------------------------------------------------
    def start_operator(self, side: Side) -> Child:
        assert self.kubeconfig is not None
        side.starts += 1
        logname = f"{side.name}-operator-{side.starts}.log"
        self.logs.append(self.workdir / logname)
        if side.name == "floor":
            command = [
                sys.executable,
                str(REPO / "bench" / "floor_operator.py"),
                "--namespace",
                side.glob,
                "--metrics-port",
                str(side.metrics_port),
            ]
            child = self.processes.spawn(command, logname, env={"KUBECONFIG": str(self.kubeconfig)})
        else:
            child = self.processes.start_operator(
                side.glob,
                self.kubeconfig,
                "--metrics-port",
                str(side.metrics_port),
                status_interval=STATUS_INTERVAL,
                log=logname,
            )
        side.operator = child
        wait_until(
            lambda: self.alive(side) and side.metrics() is not None,
            60,
            f"the {side.name} operator's metrics",
            pause=0.1,
        )
        return child

    def alive(self, side: Side) -> bool:
        if side.operator is not None and not side.operator.running:
            raise RuntimeError(f"the {side.name} operator exited:\n{side.operator.output()[-3000:]}")
        return True

    def stop_operator(self, side: Side, sig: int = signal.SIGTERM) -> None:
        if side.operator is not None:
            reap(side.operator.popen, grace=STOP_TIMEOUT, sig=sig)
            self.processes.others.remove(side.operator)
            side.operator = None

    # -- measuring helpers --------------------------------------------------------------------------------
    def cpu(self, side: Side) -> dict[str, float]:
        state = json.loads((self.cluster.state_dir / "state.json").read_text())
        usage = {record["name"]: cpu_seconds(int(record["pid"])) for record in state.get("processes", [])}
        usage["operator"] = cpu_seconds(side.operator.pid) if side.operator else 0.0
        usage["workers"] = sum(cpu_seconds(worker.pid) for worker in self.processes.workers)
        usage["mongo"] = cpu_seconds(self.mongo.pid) if self.mongo.up else 0.0
        own = os.times()
        usage["bench+kubectl"] = own.user + own.system + own.children_user + own.children_system
        usage["machine_busy"] = machine_busy()  # everything, other users of the machine too
        return usage

    def api_requests(self) -> dict[str, float]:
        """The API server's apiserver_request_total, by 'VERB resource[/subresource] code'."""
        text = self.cluster.kubectl("get", "--raw", "/metrics", timeout=60).stdout
        counts: dict[str, float] = defaultdict(float)
        for name, labels, value in parse_metrics(text):
            if name == "apiserver_request_total":
                resource = labels.get("resource", "") + (
                    f"/{labels['subresource']}" if labels.get("subresource") else ""
                )
                counts[f"{labels.get('verb', '')} {resource} {labels.get('code', '')}"] += value
        return dict(counts)

    def mongo_ops(self) -> dict[str, float] | None:
        if self.controller is None:
            return None
        try:
            status = self.controller.store.client.admin.command("serverStatus")
            counters = {k: float(v) for k, v in (status.get("opcounters") or {}).items()}
        except Exception as error:
            note = f"MongoDB serverStatus opcounters unavailable: {type(error).__name__}: {error}"[:300]
            if note not in self.notes:
                self.notes.append(note)
            return None
        if not counters:
            note = "MongoDB operations per run: serverStatus has no opcounters (NX-27017); skipped"
            if note not in self.notes:
                self.notes.append(note)
            return None
        return counters

    def create(self, body: dict[str, Any]) -> Created:
        """Create through the API, retrying 429 and 5xx with backoff; the time just before the
        (last) call and the uid."""
        meta = body["metadata"]
        for attempt in range(CREATE_RETRIES):
            before = time.time()
            try:
                made: Any = self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, meta["namespace"], PLURAL, body
                )
                return Created(meta["namespace"], meta["name"], made["metadata"]["uid"], before)
            except kube_client.ApiException as error:
                if error.status == 409 and attempt:  # an earlier try got through
                    got: Any = self.custom.get_namespaced_custom_object(
                        GROUP, VERSION, meta["namespace"], PLURAL, meta["name"]
                    )
                    return Created(meta["namespace"], meta["name"], got["metadata"]["uid"], before)
                if error.status != 429 and (error.status or 0) < 500:
                    raise
                self.client_429s += error.status == 429
                self.client_retries += 1
                after = (error.headers or {}).get("Retry-After")
                time.sleep(float(after) if after and after.isdigit() else min(5.0, 0.1 * 2**attempt))
        raise RuntimeError(f"could not create {meta['namespace']}/{meta['name']} in {CREATE_RETRIES} tries")

    def create_many(self, bodies: list[dict[str, Any]], threads: int = CREATE_THREADS) -> list[Created]:
        with ThreadPoolExecutor(threads, thread_name_prefix="create") as pool:
            return list(pool.map(self.create, bodies))

    def bodies(
        self,
        side: Side,
        phase: str,
        count: int,
        args: dict[str, Any] | None = None,
        process: Callable[[int, str], str] | None = None,
    ) -> list[dict[str, Any]]:
        found = []
        for n in range(count):
            namespace = side.namespaces[n % len(side.namespaces)]
            name = process(n, namespace) if process else side.noop(namespace)
            found.append(shp(f"{phase}-{n}", namespace, name, side.name, phase, args))
        return found

    def follow(
        self,
        side: Side,
        watcher: Watcher,
        phase: str,
        count: int,
        started: float,
        state: str | tuple[str, ...] = "Done",
        on_tick: Callable[[int], None] | None = None,
        still_going: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:
        """Until `count` resources of `phase` show `state` (from `started`, a monotonic time), or
        nothing moves for STALL_S, or the plan's timeout."""
        timeline: list[tuple[float, int, int]] = []
        last, last_change = (-1, -1), time.monotonic()
        while True:
            self.alive(side)
            now = time.monotonic()
            point = (watcher.count(phase), watcher.count(phase, state))
            if point != last:
                last, last_change = point, now
                timeline.append((round(now - started, 2), *point))
            if on_tick is not None:
                on_tick(point[1])
            if point[1] >= count:
                return {
                    "all": True,
                    "seconds": round(now - started, 2),
                    "seen": point[0],
                    "reached": point[1],
                    "timeline": timeline[-400:],
                }
            busy = still_going is not None and still_going()
            if (not busy and now - last_change >= self.plan.stall_s) or now - started >= self.plan.timeout_s:
                log(f"  {side.name}/{phase}: gave up at {point[1]}/{count} {state} (stalled or timed out)")
                stuck = [
                    uid
                    for uid, seen in watcher.snapshot().items()
                    if seen.phase == phase
                    and seen.state not in ((state,) if isinstance(state, str) else state)
                ]
                described = self.describe(side, watcher, stuck[:20])
                self.stuck.append(
                    {
                        "side": side.name,
                        "phase": phase,
                        "wanted": state,
                        "count": len(stuck),
                        "examples": described,
                    }
                )
                return {
                    "all": False,
                    "stuck": described,
                    "seconds": round(now - started, 2),
                    "seen": point[0],
                    "reached": point[1],
                    "timeline": timeline[-400:],
                    "stalled": now - last_change >= self.plan.stall_s,
                }
            time.sleep(TICK)

    # -- 1. the existing population --------------------------------------------------------------------
    def existing(self, side: Side, watcher: Watcher) -> dict[str, Any]:
        assert side.operator is not None
        pid, plan = side.operator.pid, self.plan
        time.sleep(2)
        rss: dict[str, float | None] = {"0": rss_mb(pid)}
        bodies = self.bodies(side, "existing", plan.existing)
        tenth = max(1, plan.existing // 10)
        peak = [0.0]

        def sample(done: int) -> None:
            value = rss_mb(pid) or 0.0
            peak[0] = max(peak[0], value)
            if done >= tenth and "tenth" not in rss:
                rss["tenth"] = value

        creating = threading.Event()

        def sample_while_creating() -> None:  # the operator may keep up with the creates
            while not creating.wait(TICK):
                sample(watcher.count("existing", "Done"))

        sampler = threading.Thread(target=sample_while_creating, name="rss-sampler", daemon=True)
        populate_before = self.cpu(side)
        started = time.monotonic()
        sampler.start()
        try:
            created = self.create_many(bodies)
        finally:
            creating.set()
            sampler.join(timeout=10)
        creating_s = time.monotonic() - started
        log(
            f"  {side.name}: {len(created)} created in {creating_s:.1f} s ({len(created) / creating_s:.0f}/s)"
        )
        followed = self.follow(side, watcher, "existing", plan.existing, started, on_tick=sample)
        populate_after = self.cpu(side)
        time.sleep(2 * STATUS_INTERVAL)
        rss["all"] = rss_mb(pid)
        rss["peak"] = max(peak[0], rss["all"] or 0.0)
        before = self.cpu(side)
        time.sleep(plan.idle_s)
        after = self.cpu(side)
        idle = {name: round(100 * (after[name] - before.get(name, 0.0)) / plan.idle_s, 1) for name in after}
        return {
            "resources": plan.existing,
            "created_s": round(creating_s, 2),
            "created_per_s": round(len(created) / creating_s, 1),
            "client_429s": self.client_429s,
            "client_retries": self.client_retries,
            "all_done": followed["all"],
            "done_s": followed["seconds"],
            "done": followed["reached"],
            "rss_mb": rss,
            "idle_cpu_pct": idle,
            "cpu_seconds": {k: round(v - populate_before.get(k, 0.0), 1) for k, v in populate_after.items()},
            "timeline": followed["timeline"],
        }

    # -- 2. steady arrivals -------------------------------------------------------------------------------
    def arrivals(self, side: Side, watcher: Watcher) -> dict[str, Any]:
        plan = self.plan
        bodies = self.bodies(side, "arrival", plan.arrivals)
        created: list[Created] = []
        started = time.monotonic()
        lags = []
        with ThreadPoolExecutor(ARRIVAL_THREADS, thread_name_prefix="arrive") as pool:
            futures = []
            for n, body in enumerate(bodies):
                due = started + n / plan.arrival_rate
                time.sleep(max(0.0, due - time.monotonic()))
                lags.append(time.monotonic() - due)
                futures.append(pool.submit(self.create, body))
            created = [future.result() for future in futures]
        sent_s = time.monotonic() - started
        followed = self.follow(side, watcher, "arrival", len(created), started)
        seen = watcher.snapshot()
        done_ms = []
        for c in created:
            done_at = seen[c.uid].done_at if c.uid in seen else None
            if done_at is not None:
                done_ms.append((done_at - c.before) * 1000)
        result: dict[str, Any] = {
            "resources": len(created),
            "rate_asked": plan.arrival_rate,
            "rate_sent": round(len(created) / sent_s, 2),
            "pacing_lag_max_ms": round(max(lags, default=0) * 1000, 1),
            "all_done": followed["all"],
            "apply_to_done": quantiles(done_ms),
        }
        if side.name == "shards":
            assert self.controller is not None
            ids = {f"k8s-{c.uid}-1": c for c in created}
            runs = {
                doc["_id"]: doc
                for doc in self.controller.store.runs.collection.mongo.find(
                    {"_id": {"$in": list(ids)}}, {"startedAt": 1, "requestedAt": 1, "state": 1}
                )
            }
            running, launch, claim = [], [], []
            for run_id, c in ids.items():
                doc = runs.get(run_id)
                if doc and doc.get("startedAt"):
                    running.append(doc["startedAt"] - c.before * 1000)
                    if doc.get("requestedAt"):
                        launch.append(doc["requestedAt"] - c.before * 1000)
                        claim.append(doc["startedAt"] - doc["requestedAt"])
            result.update(
                {
                    "apply_to_running": quantiles(running),
                    "apply_to_launch": quantiles(launch),
                    "launch_to_running": quantiles(claim),
                    "runs_found": len(runs),
                }
            )
        return result

    # -- 3. the burst (and 5. its cost per run) ------------------------------------------------------------
    def burst(self, side: Side, watcher: Watcher) -> dict[str, Any]:
        plan = self.plan
        time.sleep(2 * STATUS_INTERVAL)
        items = self.bodies(side, "burst", plan.burst)
        manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        api_before, cpu_before = self.api_requests(), self.cpu(side)
        patches_before, ops_before = side.status_patches(), self.mongo_ops()
        apply_log = self.workdir / f"kubectl-apply-{side.name}.log"
        started = time.monotonic()
        with apply_log.open("wb") as sink:
            apply = subprocess.Popen(
                [str(self.cluster.bin_dir / "kubectl"), "apply", "-f", "-"],
                env=self.cluster.env(),
                stdin=subprocess.PIPE,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        applied: list[float] = []
        try:
            assert apply.stdin is not None
            apply.stdin.write(manifest.encode())
            apply.stdin.close()

            def applying() -> bool:
                if apply.poll() is None:
                    return True
                if not applied:
                    applied.append(time.monotonic() - started)
                    if apply.returncode != 0:
                        raise RuntimeError(
                            f"kubectl apply failed: {apply_log.read_text(errors='replace')[-2000:]}"
                        )
                return False

            followed = self.follow(side, watcher, "burst", plan.burst, started, still_going=applying)
            while applying() and time.monotonic() - started < plan.timeout_s:
                time.sleep(TICK)
        finally:
            reap(apply, grace=STOP_TIMEOUT, sig=signal.SIGKILL)
        seconds = followed["seconds"]
        cpu_after = self.cpu(side)
        time.sleep(2 * STATUS_INTERVAL)  # a patch still queued is counted
        api = diff(self.api_requests(), api_before)
        patches_after, ops_after = side.status_patches(), self.mongo_ops()
        per_run: dict[str, float] = defaultdict(float)
        for key, value in api.items():
            verb, resource, _code = key.split(" ")
            per_run[f"{verb} {resource}"] += value
        writes = sum(v for k, v in per_run.items() if k.split(" ")[0] in ("POST", "PATCH", "PUT", "DELETE"))
        result = {
            "resources": plan.burst,
            "all_done": followed["all"],
            "done": followed["reached"],
            "seconds": seconds,
            "kubectl_apply_s": round(applied[0], 2) if applied else None,
            "resources_per_s": round(followed["reached"] / seconds, 1) if seconds else None,
            "api_requests": {k: int(v) for k, v in sorted(api.items())},
            "api_requests_per_run": {k: round(v / plan.burst, 3) for k, v in sorted(per_run.items())},
            "api_writes_per_s": round(writes / seconds, 1) if seconds else None,
            "shp_patches_per_s": round(
                sum(v for k, v in per_run.items() if k.startswith("PATCH shardprocesses")) / seconds, 1
            )
            if seconds
            else None,
            "api_429s": int(sum(v for k, v in api.items() if k.endswith(" 429"))),
            "status_patches_per_run": (
                round((patches_after - patches_before) / plan.burst, 3)
                if patches_after is not None and patches_before is not None
                else None
            ),
            "events_per_run": round(per_run.get("POST events", 0.0) / plan.burst, 3),
            "cpu_seconds": {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 1) for k in cpu_after},
            "timeline": followed["timeline"],
        }
        if ops_before is not None and ops_after is not None:
            result["mongo_ops_per_run_all_clients"] = {
                k: round((ops_after[k] - ops_before.get(k, 0)) / plan.burst, 2) for k in ops_after
            }
        return result

    # -- 4. restart ----------------------------------------------------------------------------------------
    def make_active(self, side: Side, watcher: Watcher) -> dict[str, Any]:
        counters: dict[str, int] = {}

        def sleepy(_: int, namespace: str) -> str:
            counters[namespace] = counters.get(namespace, 0) + 1
            return f"sleepy-{(counters[namespace] - 1) % SLEEPY}"

        bodies = self.bodies(side, "active", self.plan.active, {"seconds": ACTIVE_SECONDS}, sleepy)
        started = time.monotonic()
        self.create_many(bodies)
        # Active: launched and not ended. Only WORKERS x CONCURRENCY run at once; the rest wait, Scheduled.
        followed = self.follow(
            side, watcher, "active", self.plan.active, started, state=("Scheduled", "Running")
        )
        return {
            "resources": self.plan.active,
            "all_active": followed["all"],
            "running": watcher.count("active", "Running"),
            "scheduled": watcher.count("active", "Scheduled"),
            "seconds": followed["seconds"],
        }

    def describe(self, side: Side, watcher: Watcher, uids: list[str]) -> list[dict[str, Any]]:
        """What the watch says of these resources, and (Shards) what MongoDB says of their runs."""
        seen = watcher.snapshot()
        found = []
        for uid in uids:
            item = seen.get(uid)
            if item is None:
                continue
            entry: dict[str, Any] = {
                "namespace": item.namespace,
                "name": item.name,
                "process": item.process,
                "status_state": item.state,
            }
            if side.name == "shards" and self.controller is not None:
                with contextlib.suppress(Exception):
                    run = self.controller.store.runs.collection.mongo.find_one({"_id": f"k8s-{uid}-1"}) or {}
                    entry.update(
                        {
                            "run_state": run.get("state"),
                            "run_started_ms": run.get("startedAt"),
                            "run_ended_ms": run.get("endedAt"),
                        }
                    )
                    record = self.controller.store.processes.get(item.namespace, item.process)
                    entry.update(
                        {
                            "record_state": record.state.value if record else None,
                            "record_run_id": record.run_id if record else None,
                        }
                    )
            found.append(entry)
        return found

    def consistent(self, watcher: Watcher) -> tuple[bool, list[str]]:
        """Whether every resource's status.state is its run's state in MongoDB; the uids that differ."""
        assert self.controller is not None
        store = self.controller.store
        runs = {
            doc["_id"]: doc.get("state")
            for doc in store.runs.collection.mongo.find({"_id": {"$regex": "^k8s-"}}, {"state": 1})
        }
        # A launch no worker has started yet has no run document: its process record says Scheduled.
        for doc in store.processes.collection.mongo.find(
            {"runId": {"$regex": "^k8s-"}}, {"runId": 1, "status": 1}
        ):
            runs.setdefault(doc["runId"], (doc.get("status") or {}).get("state"))
        differ = [uid for uid, seen in watcher.snapshot().items() if runs.get(f"k8s-{uid}-1") != seen.state]
        return not differ, differ

    def stop_while_down(self, watcher: Watcher) -> dict[str, Any]:
        """While the operator is down, half the active runs are stopped through the controller
        (MongoDB only): their statuses, Running, are then stale until the restarted operator
        catches up. Waits (bounded) until those runs have ended."""
        assert self.controller is not None
        active = [(uid, s) for uid, s in watcher.snapshot().items() if s.phase == "active"]
        chosen = active[: len(active) // 2]
        began = time.monotonic()
        for _, seen in chosen:
            with contextlib.suppress(Exception):  # already ended: nothing to stop
                self.controller.stop(seen.namespace, seen.process)
        ids = [f"k8s-{uid}-1" for uid, _ in chosen]
        runs = self.controller.store.runs.collection.mongo

        def ended() -> bool:
            final = runs.count_documents({"_id": {"$in": ids}, "state": {"$in": list(FINAL_STATES)}})
            return final == len(ids)

        with contextlib.suppress(AssertionError):
            wait_until(ended, 60, "the stopped runs to end", pause=0.2)
        return {
            "stopped_while_down": len(chosen),
            "stopped_ended": ended(),
            "stop_s": round(time.monotonic() - began, 2),
        }

    def restart(self, side: Side, watcher: Watcher) -> dict[str, Any]:
        plan = self.plan
        total = len(watcher.snapshot())
        result: dict[str, Any] = {"resources": total}
        if side.name == "shards":
            assert self.controller is not None
            agree, differ_before = self.consistent(watcher)
            result["consistent_before_kill"] = agree
            result["differing_before_kill"] = len(differ_before)
            result["differing_before_kill_examples"] = self.describe(side, watcher, differ_before[:20])
            runs_before = self.controller.store.runs.collection.mongo.count_documents({})
            killed_ms = int(time.time() * 1000)
        api_before, modified_before = self.api_requests(), watcher.modified
        assert side.operator is not None
        self.stop_operator(side, signal.SIGKILL)
        cpu_before = self.cpu(side)
        if side.name == "shards":
            result.update(self.stop_while_down(watcher))
        started = time.monotonic()
        self.start_operator(side)
        result["metrics_s"] = round(time.monotonic() - started, 2)
        ready_s = consistent_s = first_patch_s = None
        differ: list[str] = []
        while time.monotonic() - started < plan.timeout_s:
            self.alive(side)
            now = time.monotonic() - started
            taken = side.taken_up() or 0
            if ready_s is None and taken >= total:
                ready_s = now
            if side.name == "shards":
                if first_patch_s is None and (side.status_patches() or 0) > 0:
                    first_patch_s = now
                if ready_s is not None and consistent_s is None:
                    agree, differ = self.consistent(watcher)
                    if agree:
                        consistent_s = time.monotonic() - started
            elif ready_s is not None:
                consistent_s = ready_s
            if ready_s is not None and consistent_s is not None:
                break
            time.sleep(TICK if side.name == "floor" or ready_s is None else 1.0)
        time.sleep(5)  # what the restarted operator does right after: counted in the window
        cpu_after = self.cpu(side)
        result["cpu_seconds"] = {
            k: round(v - cpu_before.get(k, 0.0), 1) for k, v in cpu_after.items() if k != "operator"
        }
        result["cpu_seconds"]["operator"] = cpu_after["operator"]  # the new process, from its start
        api = diff(self.api_requests(), api_before)
        by_verb: dict[str, float] = defaultdict(float)
        for key, value in api.items():
            verb, resource, _code = key.split(" ")
            by_verb[f"{verb} {resource}"] += value
        result.update(
            {
                "ready_s": None if ready_s is None else round(ready_s, 2),
                "consistent_s": None if consistent_s is None else round(consistent_s, 2),
                "taken_up": side.taken_up(),
                "watch_modified_events": watcher.modified - modified_before,
                "api_requests": {k: int(v) for k, v in sorted(by_verb.items())},
            }
        )
        if side.name == "shards":
            assert self.controller is not None
            samples = side.metrics()
            result.update(
                {
                    "first_status_patch_s": None if first_patch_s is None else round(first_patch_s, 2),
                    "status_patches": metric(samples, "shards_operator_status_patches_total"),
                    "launches_metric": metric(samples, "shards_operator_launches_total"),
                    # Runs started in the window: launches queued before the kill starting on a free slot.
                    "runs_started": self.controller.store.runs.collection.mongo.count_documents({})
                    - runs_before,
                    # Launches requested in the window (the operator's launches after the restart).
                    "launches_runs": self.controller.store.runs.collection.mongo.count_documents(
                        {"requestedAt": {"$gte": killed_ms}}
                    ),
                    "differing_at_end": len(differ),
                    "differing_at_end_examples": self.describe(side, watcher, differ[:20]),
                }
            )
        return result

    # -- 6. kubectl get shp -A -----------------------------------------------------------------------------
    def listing(self, side: Side | None) -> dict[str, Any]:
        selector = ["-l", f"{SIDE_LABEL}={side.name}"] if side else []
        found: dict[str, Any] = {}
        for form, extra in (("table", []), ("json", ["-o", "json"])):
            started = time.monotonic()
            done = subprocess.run(
                [str(self.cluster.bin_dir / "kubectl"), "get", "shp", "-A", *selector, *extra],
                env=self.cluster.env(),
                capture_output=True,
                timeout=600,
                check=False,
            )
            found[f"{form}_s"] = round(time.monotonic() - started, 2)
            found[f"{form}_bytes"] = len(done.stdout)
            if form == "json" and done.returncode == 0:
                items = json.loads(done.stdout)["items"]
                found["resources"] = len(items)
                found["json_bytes_per_resource"] = round(len(done.stdout) / max(1, len(items)))
                found["largest_status_bytes"] = max(
                    (len(json.dumps(i.get("status") or {}, separators=(",", ":"))) for i in items), default=0
                )
        return found

    # -- a side's run ---------------------------------------------------------------------------------
    def save_partial(self, side: Side, result: dict[str, Any]) -> None:
        """What is measured so far, written after every phase: a run cut short still leaves it."""
        self.partial[side.name] = result
        if self.partial_path is not None:
            self.partial_path.parent.mkdir(parents=True, exist_ok=True)
            record = {"partial": True, "plan": vars(self.plan), "stuck": self.stuck, **self.partial}
            self.partial_path.write_text(json.dumps(record, indent=2, default=str) + "\n")

    def run_side(self, side: Side) -> dict[str, Any]:
        plan = self.plan
        watcher = Watcher(self.api_client, side.name).start()
        result: dict[str, Any] = {}

        def phase(name: str, measured: dict[str, Any]) -> None:
            measured["loadavg_1m_at_end"] = os.getloadavg()[0]
            result[name] = measured
            self.save_partial(side, result)

        try:
            self.client_429s = self.client_retries = 0
            log(f"{side.name}: starting the operator on {side.glob}")
            self.start_operator(side)
            log(f"{side.name}: 1. {plan.existing} existing resources over {plan.namespaces} namespaces")
            phase("existing", self.existing(side, watcher))
            log(f"{side.name}: 2. arrivals at {plan.arrival_rate}/s for {plan.arrival_seconds} s")
            phase("arrivals", self.arrivals(side, watcher))
            log(f"{side.name}: 3. a burst of {plan.burst} in one kubectl apply")
            phase("burst", self.burst(side, watcher))
            if side.name == "shards":
                log(f"{side.name}: {plan.active} active runs")
                phase("active", self.make_active(side, watcher))
            log(f"{side.name}: 4. restart (SIGKILL) with {len(watcher.snapshot())} resources")
            phase("restart", self.restart(side, watcher))
            result["rss_mb_after_restart"] = rss_mb(side.operator.pid) if side.operator else None
            result["watch_errors"] = watcher.errors[-10:]
            result["watch_relists"] = watcher.relists
            result["status_regressions"] = len(watcher.regressions)
            result["status_regression_examples"] = watcher.regressions[:20]
            return result
        finally:
            watcher.stop()

    # -- tear-down -----------------------------------------------------------------------------------
    def close(self, drop: bool) -> None:
        self.processes.close()  # the operators, the workers, then the server
        if drop and self.namespaces_created:
            self._drop_namespaces()

    def _drop_namespaces(self) -> None:
        """The operators are gone: take the finalizers off every resource, then drop the namespaces."""

        def unfinalize(item: dict[str, Any]) -> None:
            meta = item["metadata"]
            with contextlib.suppress(kube_client.ApiException):
                self.custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    meta["namespace"],
                    PLURAL,
                    meta["name"],
                    {"metadata": {"finalizers": None}},
                )

        try:
            for side in (self.floor, self.shards):
                token: str | None = None
                held: list[dict[str, Any]] = []
                while True:
                    page: Any = self.custom.list_cluster_custom_object(
                        GROUP,
                        VERSION,
                        PLURAL,
                        label_selector=f"{SIDE_LABEL}={side.name}",
                        limit=1000,
                        _continue=token,
                    )
                    held += [i for i in page["items"] if i["metadata"].get("finalizers")]
                    token = page["metadata"].get("continue")
                    if not token:
                        break
                with ThreadPoolExecutor(CREATE_THREADS) as pool:
                    list(pool.map(unfinalize, held))
        except kube_client.ApiException as error:
            log(f"could not clear finalizers: {error.status} {error.reason}")
        for chunk in batched(self.namespaces_created, 50):
            self.cluster.kubectl(
                "delete", "namespace", *chunk, "--wait=false", "--ignore-not-found", check=False
            )


def batched(items: list[str], size: int) -> Iterable[list[str]]:
    for n in range(0, len(items), size):
        yield items[n : n + size]


# -- the report ------------------------------------------------------------------------------------------
def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    floor, shards, plan = result["floor"], result["shards"], result["plan"]

    def get(side: dict[str, Any], *path: str) -> Any:
        value: Any = side
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def row(
        figure: str,
        s: Any,
        f: Any,
        unit: str = "",
        target: str = "",
        met: bool | None = None,
        digits: int = 1,
    ) -> dict[str, Any]:
        def cell(v: Any) -> str:
            return "n/a" if v is None else (f"{v:.{digits}f}{unit}" if isinstance(v, int | float) else str(v))

        r = ratio(s, f) if isinstance(s, int | float) and isinstance(f, int | float) else None
        return {
            "figure": figure,
            "shards": cell(s),
            "floor": cell(f),
            "ratio": "" if r is None else f"{r:.2f}x",
            "target": target,
            "met": met,
        }

    run_p99 = get(shards, "arrivals", "apply_to_running", "p99_ms")
    floor_p99 = get(floor, "arrivals", "apply_to_done", "p99_ms")
    burst_s, floor_burst_s = get(shards, "burst", "seconds"), get(floor, "burst", "seconds")
    burst_ok = bool(get(shards, "burst", "all_done")) and bool(get(floor, "burst", "all_done"))
    restart_s = get(shards, "restart", "consistent_s")
    floor_restart_s = get(floor, "restart", "consistent_s")
    launches = get(shards, "restart", "launches_runs")
    rss_all = get(shards, "existing", "rss_mb", "all")
    patches = get(shards, "burst", "status_patches_per_run")
    n, b = plan["existing"], plan["burst"]
    out = [
        row(
            f"existing {n}: created/s",
            get(shards, "existing", "created_per_s"),
            get(floor, "existing", "created_per_s"),
        ),
        row(
            f"existing {n}: all Done / patched",
            get(shards, "existing", "done_s"),
            get(floor, "existing", "done_s"),
            " s",
        ),
        row(
            f"operator RSS at 0 / {n // 10} / {n} (MB)",
            "/".join(f"{get(shards, 'existing', 'rss_mb', k) or 0:.0f}" for k in ("0", "tenth", "all")),
            "/".join(f"{get(floor, 'existing', 'rss_mb', k) or 0:.0f}" for k in ("0", "tenth", "all")),
            target=f"<= {TARGETS['rss_mb']:.0f} MB at {n}",
            met=None if rss_all is None else rss_all <= TARGETS["rss_mb"],
        ),
        row(
            f"idle CPU with {n}: operator",
            get(shards, "existing", "idle_cpu_pct", "operator"),
            get(floor, "existing", "idle_cpu_pct", "operator"),
            "%",
        ),
        row(
            f"idle CPU with {n}: kube-apiserver",
            get(shards, "existing", "idle_cpu_pct", "kube-apiserver"),
            get(floor, "existing", "idle_cpu_pct", "kube-apiserver"),
            "%",
        ),
        row(
            "arrivals: apply->Running p50 (floor: ->patched)",
            get(shards, "arrivals", "apply_to_running", "p50_ms"),
            get(floor, "arrivals", "apply_to_done", "p50_ms"),
            " ms",
            digits=0,
        ),
        row(
            "arrivals: apply->Running p99 (floor: ->patched)",
            run_p99,
            floor_p99,
            " ms",
            digits=0,
            target=f"<= {TARGETS['running_p99_ms']:.0f} ms, <= {TARGETS['running_p99_vs_floor']:.0f}x floor",
            met=None
            if run_p99 is None or floor_p99 is None
            else run_p99 <= TARGETS["running_p99_ms"]
            and run_p99 <= TARGETS["running_p99_vs_floor"] * floor_p99,
        ),
        row(
            "arrivals: apply->Done in status p50 / floor patched",
            get(shards, "arrivals", "apply_to_done", "p50_ms"),
            get(floor, "arrivals", "apply_to_done", "p50_ms"),
            " ms",
            digits=0,
        ),
        row(
            "arrivals: apply->Done in status p99 / floor patched",
            get(shards, "arrivals", "apply_to_done", "p99_ms"),
            floor_p99,
            " ms",
            digits=0,
        ),
        row(
            f"burst {b}: kubectl apply",
            get(shards, "burst", "kubectl_apply_s"),
            get(floor, "burst", "kubectl_apply_s"),
            " s",
        ),
        row(
            f"burst {b}: all Done / patched",
            burst_s,
            floor_burst_s,
            " s",
            target=f"<= {TARGETS['burst_vs_floor']}x floor",
            met=None
            if burst_s is None or not floor_burst_s
            else burst_ok and burst_s <= TARGETS["burst_vs_floor"] * floor_burst_s,
        ),
        row(
            "burst: API writes/s (all) ",
            get(shards, "burst", "api_writes_per_s"),
            get(floor, "burst", "api_writes_per_s"),
        ),
        row("burst: API 429s", get(shards, "burst", "api_429s"), get(floor, "burst", "api_429s"), digits=0),
        row(
            "burst: status patches per run",
            patches,
            1.0 if get(floor, "burst", "status_patches_per_run") else None,
            digits=2,
            target=f"<= {TARGETS['patches_per_run']:.0f}",
            met=None if patches is None else patches <= TARGETS["patches_per_run"],
        ),
        row(
            "burst: Events per run",
            get(shards, "burst", "events_per_run"),
            get(floor, "burst", "events_per_run"),
            digits=2,
        ),
        row(
            f"restart with {get(shards, 'restart', 'resources')}: taken up all",
            get(shards, "restart", "ready_s"),
            get(floor, "restart", "ready_s"),
            " s",
        ),
        row(
            "restart: taken up and consistent",
            restart_s,
            floor_restart_s,
            " s",
            target=f"<= {TARGETS['restart_s']:.0f} s, <= {TARGETS['restart_vs_floor']:.0f}x floor, "
            "0 launches",
            met=None
            if restart_s is None or floor_restart_s is None
            else restart_s <= TARGETS["restart_s"]
            and restart_s <= TARGETS["restart_vs_floor"] * floor_restart_s
            and launches == 0,
        ),
        row(
            "restart: launches (runs written)",
            launches,
            None,
            digits=0,
            target="0",
            met=None if launches is None else launches == 0,
        ),
        row("restart: status patches after", get(shards, "restart", "status_patches"), None, digits=0),
        row(
            "restart: statuses it changed (watch MODIFIED)",
            get(shards, "restart", "watch_modified_events"),
            get(floor, "restart", "watch_modified_events"),
            digits=0,
        ),
        row(
            "restart: active runs stopped while it was down",
            get(shards, "restart", "stopped_while_down"),
            None,
            digits=0,
        ),
        row(
            "kubectl get shp -A -l side (json)",
            get(shards, "listing", "json_s"),
            get(floor, "listing", "json_s"),
            " s",
            digits=2,
        ),
        row(
            "kubectl get shp -A -l side: bytes per resource (json)",
            get(shards, "listing", "json_bytes_per_resource"),
            get(floor, "listing", "json_bytes_per_resource"),
            digits=0,
        ),
        row(
            "largest status (bytes)",
            get(shards, "listing", "largest_status_bytes"),
            get(floor, "listing", "largest_status_bytes"),
            digits=0,
        ),
    ]
    return out


def render(table: list[dict[str, Any]]) -> str:
    head = ["figure", "Shards", "floor", "ratio", "target", "met"]
    cells = [
        [
            r["figure"],
            r["shards"],
            r["floor"],
            r["ratio"],
            r["target"],
            {True: "yes", False: "NO", None: "" if not r["target"] else "n/a"}[r["met"]],
        ]
        for r in table
    ]
    widths = [max(len(str(c[i])) for c in [head, *cells]) for i in range(len(head))]
    lines = [
        " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
        "-+-".join("-" * w for w in widths),
    ]
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join(lines)


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--existing", type=int, help="existing resources (default 10,000)")
    parser.add_argument("--namespaces", type=int, help="namespaces per side (default 100)")
    parser.add_argument("--arrival-rate", type=float, help="new resources per second (default 20)")
    parser.add_argument("--arrival-seconds", type=float, help="for how long (default 60)")
    parser.add_argument("--burst", type=int, help="resources in one kubectl apply (default 2,000)")
    parser.add_argument("--active", type=int, help="active runs at the restart (default 200)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "operator_scale.json", help="where the JSON goes"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny counts: checks the harness, not the numbers"
    )
    args = parser.parse_args(argv)
    plan = Plan.from_args(args)
    random.seed(1)
    # SIGTERM (and SIGINT, which a shell ignores for a background job) stop the run through its
    # `finally`: the operators, workers, server and control plane it started are stopped too.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _interrupted)
    cluster = running()
    started_cluster = cluster is None
    if cluster is None:
        log("starting a local control plane")
        cluster = up()
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    bench = Bench(cluster, workdir, plan)
    bench.partial_path = args.out.with_suffix(".partial.json")
    logs_dir = RESULTS / f"{args.out.stem}-logs"  # under bench/results/ even when the JSON goes elsewhere
    began = time.monotonic()
    try:
        log(f"set-up: {plan}")
        bench.setup()
        floor = bench.run_side(bench.floor)
        bench.stop_operator(bench.floor)
        log("shards: MongoDB, workers, scopes")
        bench.start_shards_store()
        shards = bench.run_side(bench.shards)
        log("6. kubectl get shp -A (each side by its label, then everything)")
        shards["listing"] = bench.listing(bench.shards)
        floor["listing"] = bench.listing(bench.floor)
        everything = bench.listing(None)
        result: dict[str, Any] = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "loadavg": list(os.getloadavg()),
            },
            "plan": vars(plan),
            "setup": {
                "workers": WORKERS,
                "concurrency": CONCURRENCY,
                "status_interval_s": STATUS_INTERVAL,
                "active_seconds": ACTIVE_SECONDS,
            },
            "targets": TARGETS,
            "floor": floor,
            "shards": shards,
            "listing_all": everything,
            "notes": bench.notes,
            "stuck": bench.stuck,
            "logs": str(logs_dir),
            "wall_s": round(time.monotonic() - began, 1),
        }
        table = rows(result)
        result["table"] = table
        result["met"] = {r["figure"]: r["met"] for r in table if r["target"]}
        print()
        print(render(table))
        for side in ("floor", "shards"):
            print(f"  {side} existing CPU seconds: {result[side]['existing'].get('cpu_seconds')}")
            print(f"  {side} burst CPU seconds: {result[side]['burst']['cpu_seconds']}")
            print(f"  {side} restart CPU seconds: {result[side]['restart'].get('cpu_seconds')}")
            print(f"  {side} burst API requests per run: {result[side]['burst']['api_requests_per_run']}")
            print(f"  {side} restart API requests: {result[side]['restart']['api_requests']}")
        print(f"  kubectl get shp -A, everything: {everything}")
        for note in bench.notes:
            print(f"  note: {note}")
        for side_name, side_result in (("floor", floor), ("shards", shards)):
            if side_result["status_regressions"]:
                print(
                    f"  {side_name}: {side_result['status_regressions']} statuses left a final state, e.g. "
                    f"{side_result['status_regression_examples'][:2]}"
                )
        for stuck in bench.stuck:
            print(
                f"  STUCK {stuck['side']}/{stuck['phase']}: {stuck['count']} never {stuck['wanted']}: "
                f"{stuck['examples'][:3]}"
            )
        before_kill = shards["restart"].get("differing_before_kill_examples") or []
        if before_kill:
            print(
                "  statuses differing from MongoDB before the kill: "
                f"{shards['restart']['differing_before_kill']}: {before_kill[:3]}"
            )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        bench.partial_path.unlink(missing_ok=True)  # the whole result is in --out
        log(f"wrote {args.out} (logs: {logs_dir})")
        return 0
    finally:
        bench.close(drop=not started_cluster)
        if started_cluster:
            log("stopping the control plane")
            down()
        logs_dir.mkdir(parents=True, exist_ok=True)
        for path in [*bench.logs, *workdir.glob("worker-*.log"), *workdir.glob("kubectl-apply-*.log")]:
            if path.exists():
                shutil.copyfile(path, logs_dir / path.name)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
