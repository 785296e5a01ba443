"""Chaos on real Pods (`make chaos-k8s`; a small version runs in `make test`'s e2e pass).

The chart runs on the local node (operator: 2 replicas electing a leader on a Lease; a worker pool
of a few Pods running tests/chaos/k8s_app.py from a ConfigMap), with the embedded MongoDB on the
node's address. A seeded driver creates, re-runs, stops, force-stops and deletes ShardProcess
resources while a seeded schedule injects faults one after another: worker Pods deleted, worker
containers SIGKILLed, the leading operator SIGKILLed or its Pod deleted, kube-apiserver and etcd
crashed and restarted, MongoDB killed for 5, 12 or 60 s, `helm upgrade`s that roll every Pod.
After each fault a probe resource measures how long until a new launch runs end to end again.

The executions are counted by the app itself (k8s_counter.py), outside MongoDB and Kubernetes.
Lost: a launch that never ends. Duplicated: a launch's code completed twice, or two executions
of it overlapped. Stuck: a record active at the end, or Running on a dead worker; a resource
whose status differs from MongoDB's record 10 s after everything settled.
"""

from __future__ import annotations

import json
import logging
import random
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shards.states import ACTIVE, FINAL, State
from shards_controller import Controller
from shards_store import connect
from tooling.cluster import KubeCluster, KubeNode, restart
from tooling.harness import EmbeddedMongo

from chaos.k8s_app import SLOTS
from chaos.k8s_counter import Counter, Execution, duplicates, live_at, resumed_after

log = logging.getLogger("chaos.k8s")

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VERSION = "0.1.0"
API_VERSION = "shards.dev/v1alpha1"
FINAL_NAMES = {state.value for state in FINAL}
PROBE_SLOTS = 8  # the last slots of the app are the probes'
SETTLE_TIMEOUT = 240.0
STATUS_LAG = 10.0  # every status equals its record this long after the records settled

FAULT_KINDS = (
    "worker-pod-delete", "worker-container-kill", "operator-leader-sigkill", "operator-pod-delete",
    "apiserver-etcd-restart", "mongo-5s", "mongo-12s", "mongo-60s", "helm-upgrade",
)


@dataclass
class Config:
    seed: int = 1
    duration: float = 600.0  # seconds of faults; the schedule stops injecting after it
    kinds: tuple[str, ...] = FAULT_KINDS
    rounds: int = 0  # 0: cycle through the kinds until `duration`; n: each kind n times at most
    workers: int = 3
    concurrency: int = 3
    slots: int = 24  # resources alive at once at most
    gap: tuple[float, float] = (2.0, 6.0)  # seconds between a fault's settling and the next


@dataclass
class FaultRecord:
    kind: str
    at: float
    recovered: float
    failover: float | None = None  # seconds until the component's duty was taken up again
    settle: float | None = None  # seconds from recovery until a new launch ran end to end
    detail: str = ""
    cut_off: list[str] = field(default_factory=list)  # launches executing where a worker fault hit


@dataclass
class Tracked:
    name: str
    slot: int
    uid: str = ""
    runs: int = 1
    launched: int = 0  # status.runs last seen
    stopped: bool = False
    deleted: bool = False
    gone: bool = False


@dataclass
class Outcome:
    config: Config
    faults: list[FaultRecord]
    executions: list[Execution]
    resources: list[Tracked]
    actions: dict[str, int]
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    settled_after: float = 0.0  # seconds from the last fault's recovery until every record was final
    status_lag: float | None = None  # then, seconds until every status equalled its record

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.stuck)


class ChaosRelease:
    """The chart installed in `namespace` for the chaos app (post-rendered to mount it)."""

    def __init__(self, cluster: KubeCluster, node: KubeNode, namespace: str, mongo: EmbeddedMongo,
                 work: Path, config: Config) -> None:
        self.cluster, self.node, self.namespace = cluster, node, namespace
        self.mongo, self.config = mongo, config
        self.name = f"shards-chaos-{uuid.uuid4().hex[:4]}"
        self.uri = f"{mongo.uri}/{self.name.replace('-', '_')}"
        self.controller = Controller(connect(self.uri))
        self.post_renderer = work / "post-render.sh"
        self.post_renderer.write_text(
            f"#!/bin/sh\nexec {sys.executable} {HERE / 'k8s_postrender.py'} chaos-app\n")
        self.post_renderer.chmod(0o755)
        self.rolls = 0

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60, input: str | None = None) -> str:
        done = self.cluster.kubectl("-n", self.namespace, *args, check=check, timeout=timeout, input=input)
        return done.stdout

    def helm(self, verb: str) -> None:
        values = [
            "--set", f"mongo.uri={self.uri}",
            "--set", f"operator.namespaces={{{self.namespace}}}",
            "--set", f"operator.image.tag={VERSION}", "--set", "operator.image.pullPolicy=Never",
            "--set", f"operator.podAnnotations.chaos/roll=r{self.rolls}",
            "--set", "workers[0].name=default", "--set", "workers[0].app=/chaos/k8s_app.py:app",
            "--set", "workers[0].image.repository=shards-worker",
            "--set", f"workers[0].image.tag={VERSION}", "--set", "workers[0].image.pullPolicy=Never",
            "--set", "workers[0].shutdownGraceSeconds=5",
            "--set", f"workers[0].replicas={self.config.workers}",
            "--set", f"workers[0].concurrency={self.config.concurrency}",
            "--set", f"workers[0].podAnnotations.chaos/roll=r{self.rolls}",
        ]
        self.cluster.helm(verb, self.name, str(REPO), "-n", self.namespace, "--post-renderer",
                          str(self.post_renderer), *values, timeout=300)

    def install(self) -> None:
        self.kubectl("create", "configmap", "chaos-app", f"--from-file=k8s_app.py={HERE / 'k8s_app.py'}")
        self.helm("install")
        self.rollout()
        wait(lambda: len(self.controller.store.workers.alive()) >= self.config.workers, 180,
             "every worker registered")
        wait(lambda: self.leader(), 120, "an operator leading")

    def rollout(self) -> None:
        for component in ("operator", "worker-default"):
            self.kubectl("rollout", "status", f"deploy/{self.name}-{component}", "--timeout=240s",
                         timeout=260)

    def upgrade(self) -> None:
        self.rolls += 1
        self.helm("upgrade")
        self.rollout()

    def pods(self, component: str) -> list[dict[str, Any]]:
        listed = json.loads(self.kubectl("get", "pods", "-l", f"app.kubernetes.io/component={component}",
                                         "-o", "json"))
        return [pod for pod in listed["items"] if not pod["metadata"].get("deletionTimestamp")
                and pod["status"].get("phase") == "Running"]

    def lease(self) -> dict[str, Any]:
        found = self.kubectl("get", "lease", f"{self.name}-operator", "-o", "json", check=False)
        return dict(json.loads(found).get("spec") or {}) if found else {}

    def leader(self) -> str:
        """holderIdentity of the operators' Lease ("" when none holds it)."""
        try:
            return str(self.lease().get("holderIdentity") or "")
        except ValueError:
            return ""

    def container_id(self, pod: dict[str, Any]) -> str:
        statuses = pod["status"].get("containerStatuses") or []
        return str(statuses[0].get("containerID", "")).removeprefix("containerd://") if statuses else ""

    def close(self) -> None:
        self.cluster.helm("uninstall", self.name, "-n", self.namespace, "--wait", "--timeout", "90s",
                          check=False, timeout=120)
        self.controller.store.close()


def wait(condition: Any, timeout: float, what: str, pause: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception as exc:
            log.debug("%s: %s", what, exc)
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not after {timeout:.0f} s: {what}")
        time.sleep(pause)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


class Driver:
    """Seeded, bounded churn of ShardProcess resources in the driver's slots."""

    def __init__(self, release: ChaosRelease, counter: Counter, rng: random.Random) -> None:
        self.release, self.counter, self.rng = release, counter, rng
        self.tracked: dict[str, Tracked] = {}
        self.actions: dict[str, int] = {}
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="chaos-driver", daemon=True)
        self._serial = 0
        self.lock = threading.Lock()

    def manifest(self, name: str, slot: int, seconds: float) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": "ShardProcess", "metadata": {"name": name},
                "spec": {"process": f"counted-{slot:02d}", "retries": 2, "retryBackoffSeconds": 0.5,
                         "args": {"counter": self.counter.url, "seconds": round(seconds, 1)}}}

    def create(self, slot: int, seconds: float, prefix: str = "p") -> Tracked | None:
        with self.lock:
            self._serial += 1
            name = f"{prefix}-{slot:02d}-{self._serial}"
        uid = self.release.kubectl("create", "-f", "-", "-o", "jsonpath={.metadata.uid}", check=False,
                                   input=json.dumps(self.manifest(name, slot, seconds))).strip()
        if not uid:
            return None
        tracked = Tracked(name, slot, uid)
        with self.lock:
            self.tracked[name] = tracked
        return tracked

    def listed(self) -> dict[str, dict[str, Any]]:
        out = self.release.kubectl("get", "shp", "-o", "json", check=False, timeout=20)
        if not out:
            return {}
        items = {item["metadata"]["name"]: item for item in json.loads(out)["items"]}
        with self.lock:
            for name, tracked in self.tracked.items():
                item = items.get(name)
                if item is None:
                    tracked.gone = tracked.gone or tracked.deleted
                else:
                    tracked.launched = max(tracked.launched, int((item.get("status") or {}).get("runs") or 0))
        return items

    def _act(self) -> None:
        items = self.listed()
        if not items and any(not t.gone for t in self.tracked.values()):
            return  # the API server is away: nothing to act on
        with self.lock:
            live = [t for t in self.tracked.values() if not t.deleted and t.slot < self.slots]
            busy = {t.slot for t in self.tracked.values() if not t.gone and t.slot < self.slots}
        free = [slot for slot in range(self.slots) if slot not in busy]

        def state(t: Tracked) -> str:
            return str((items.get(t.name, {}).get("status") or {}).get("state") or "")

        choices: list[tuple[str, Any]] = []
        if free:
            choices += [("create", self.rng.choice(free))] * 4
        ended = [t for t in live if state(t) in FINAL_NAMES and not t.stopped and t.runs < 4
                 and t.launched == t.runs]
        if ended:
            choices += [("rerun", self.rng.choice(ended))] * 3
        active = [t for t in live if state(t) in ("Running", "Scheduled") and not t.stopped]
        if active:
            choices += [("stop", self.rng.choice(active)), ("force-stop", self.rng.choice(active))]
        if live:
            choices += [("delete", self.rng.choice(live))]
        if not choices:
            return
        action, target = self.rng.choice(choices)
        self._apply(action, target)

    def _apply(self, action: str, target: Any) -> None:
        done: Any
        if action == "create":
            done = self.create(target, self.rng.uniform(2.0, 12.0))
        elif action == "rerun":
            done = self._patch(target, {"runs": target.runs + 1})
            if done:
                target.runs += 1
        elif action in ("stop", "force-stop"):
            done = self._patch(target, {"forceStop": True} if action == "force-stop" else {"stop": True})
            target.stopped = target.stopped or bool(done)
        else:
            done = self.release.kubectl("delete", "shp", target.name, "--wait=false", check=False)
            target.deleted = target.deleted or bool(done)
        if done:
            self.actions[action] = self.actions.get(action, 0) + 1

    def _patch(self, target: Tracked, spec: dict[str, Any]) -> str:
        return self.release.kubectl("patch", "shp", target.name, "--type", "merge",
                                    "-p", json.dumps({"spec": spec}), check=False)

    @property
    def slots(self) -> int:
        return min(self.release.config.slots, SLOTS - PROBE_SLOTS)

    def _loop(self) -> None:
        while not self.stop_event.wait(self.rng.uniform(0.5, 1.5)):
            try:
                self._act()
            except Exception:
                log.exception("driver tick")

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=120)


Injected = tuple[float | None, str, list[str]]  # failover (if known at once), what was hit, cut-off launches


class Faults:
    """Injects one fault of a kind and measures its failover and the settling after it."""

    def __init__(self, release: ChaosRelease, counter: Counter, driver: Driver, rng: random.Random) -> None:
        self.release, self.counter, self.driver, self.rng = release, counter, driver, rng
        self.probes = 0

    def inject(self, kind: str) -> FaultRecord:
        at = time.time()
        inject = {"worker": self._worker, "operator": self._operator,
                  "apiserver": self._apiserver_etcd_restart,
                  "mongo": self._mongo, "helm": self._helm_upgrade}[kind.split("-")[0]]
        failover, detail, cut_off = inject(kind)
        record = FaultRecord(kind, at, time.time(), failover, detail=detail, cut_off=cut_off)
        record.settle = self.probe(record)
        log.info("fault %s: %s failover %s settle %s", kind, detail, record.failover, record.settle)
        return record

    def _worker(self, kind: str) -> Injected:
        pods = wait(lambda: self.release.pods("worker"), 120, "a Running worker Pod")
        executions = self.counter.executions()
        now = time.time()
        pods.sort(key=lambda pod: -len(live_at(executions, now, pod["metadata"]["name"])))
        pod = pods[0]
        name = pod["metadata"]["name"]
        affected = {e.launch for e in live_at(executions, now, name)}
        if kind == "worker-pod-delete":
            self.release.kubectl("delete", "pod", name, "--wait=false")
        else:
            self.release.node.ctr("tasks", "kill", "--signal", "SIGKILL", self.release.container_id(pod))

        return None, f"{name} ({len(affected)} running)", sorted(affected)  # failover: see resumed()

    def _operator(self, kind: str) -> Injected:
        def leading() -> tuple[str, dict[str, Any]] | None:
            holder = self.release.leader()  # "<pod>_<random>": a new one for every process
            pods = [p for p in self.release.pods("operator") if p["metadata"]["name"] == holder.split("_")[0]]
            return (holder, pods[0]) if holder and pods else None

        holder, pod = wait(leading, 120, "a Running operator Pod leading")
        pod_name = pod["metadata"]["name"]
        at = time.time()
        if kind == "operator-leader-sigkill":
            self.release.node.ctr("tasks", "kill", "--signal", "SIGKILL", self.release.container_id(pod))
        else:
            self.release.kubectl("delete", "pod", pod_name, "--wait=false")
        wait(lambda: (now := self.release.leader()) and now != holder, 120, "another operator leading")
        return time.time() - at, pod_name, []

    def _apiserver_etcd_restart(self, kind: str) -> Injected:
        at = time.time()
        restart(("etcd", "kube-apiserver"))
        return time.time() - at, "SIGKILL + start", []

    def _mongo(self, kind: str) -> Injected:
        seconds = float(kind.split("-")[1].rstrip("s"))
        self.release.mongo.kill()
        time.sleep(seconds)
        self.release.mongo.start()
        return None, f"down {seconds:.0f} s", []

    def _helm_upgrade(self, kind: str) -> Injected:
        at = time.time()
        self.release.upgrade()
        return time.time() - at, f"roll r{self.release.rolls}", []

    def probe(self, record: FaultRecord) -> float | None:
        """A new resource, launched at once after the fault: seconds until it is Done."""
        slot = SLOTS - PROBE_SLOTS + self.probes % PROBE_SLOTS
        self.probes += 1
        start = time.time()
        tracked = wait(lambda: self.driver.create(slot, 1.0, prefix="probe"), SETTLE_TIMEOUT,
                       f"the probe after {record.kind} created")

        def done() -> bool:
            out = self.release.kubectl("get", "shp", tracked.name, "-o", "jsonpath={.status.state}",
                                       check=False, timeout=20)
            return out == "Done"

        try:
            wait(done, SETTLE_TIMEOUT, f"the probe after {record.kind} Done", pause=0.2)
        except TimeoutError:
            return None
        tracked.deleted = True
        settled = time.time() - start
        self.release.kubectl("delete", "shp", tracked.name, "--wait=false", check=False)
        return settled


def schedule(config: Config, rng: random.Random) -> list[str]:
    rounds = config.rounds or 1000
    kinds: list[str] = []
    for _ in range(rounds):
        batch = list(config.kinds)
        rng.shuffle(batch)
        kinds += batch
    return kinds


def run(cluster: KubeCluster, node: KubeNode, namespace: str, mongo: EmbeddedMongo, work: Path,
        config: Config) -> Outcome:
    rng = random.Random(config.seed)
    counter = Counter(node.ip).start()
    release = ChaosRelease(cluster, node, namespace, mongo, work, config)
    try:
        release.install()
        driver = Driver(release, counter, random.Random(rng.random()))
        faults = Faults(release, counter, driver, random.Random(rng.random()))
        driver.start()
        records: list[FaultRecord] = []
        began = time.monotonic()
        try:
            time.sleep(rng.uniform(*config.gap) + 5)  # some runs going before the first fault
            for kind in schedule(config, rng):
                if time.monotonic() - began > config.duration:
                    break
                records.append(faults.inject(kind))
                time.sleep(rng.uniform(*config.gap))
        finally:
            driver.stop()
        outcome = Outcome(config, records, [], list(driver.tracked.values()), driver.actions)
        check(release, driver, counter, outcome)
        return outcome
    finally:
        counter.stop()
        release.close()


def check(release: ChaosRelease, driver: Driver, counter: Counter, outcome: Outcome) -> None:
    last = max((f.recovered for f in outcome.faults), default=time.time())
    store = release.controller.store
    processes = [f"counted-{slot:02d}" for slot in range(SLOTS)]

    def records() -> list[Any]:
        found = [store.processes.get(release.namespace, process) for process in processes]
        return [record for record in found if record is not None]

    def settled() -> bool:
        items = driver.listed()
        resources_final = all(
            str((item.get("status") or {}).get("state") or "") in FINAL_NAMES
            and int((item.get("status") or {}).get("runs") or 0) >= int(item["spec"].get("runs", 1))
            for item in items.values() if not item["metadata"].get("deletionTimestamp")
            and not item["spec"].get("stop") and not item["spec"].get("forceStop"))
        return resources_final and not [r for r in records() if r.state in ACTIVE]

    try:
        wait(settled, SETTLE_TIMEOUT, "every resource and record final", pause=0.5)
    except TimeoutError as exc:
        outcome.lost.append(str(exc))
    outcome.settled_after = time.time() - last
    alive = {worker.worker_id for worker in store.workers.alive()}
    for record in records():
        if record.state in ACTIVE:
            owner = "its worker alive" if record.worker_id in alive else "no live owner"
            outcome.stuck.append(f"{record.process_id}: {record.state.value} run {record.run_id} ({owner})")
    for tracked in driver.tracked.values():
        _check_launches(store, tracked, outcome)
    mismatched = _status_lag(release, driver, outcome)
    outcome.stuck += [f"status differs from MongoDB {STATUS_LAG:.0f} s after settling: {m}"
                      for m in mismatched]
    outcome.executions = counter.executions()
    outcome.duplicated = duplicates(outcome.executions)
    asked = {t.uid: ("deleted" if t.deleted else "stop asked" if t.stopped else "")
             for t in outcome.resources}
    for fault in outcome.faults:
        resumed_at(fault, outcome.executions, store, asked)


def resumed_at(fault: FaultRecord, executions: list[Execution], store: Any, asked: dict[str, str]) -> None:
    """A worker fault's failover: until every launch it cut off ran again (its next attempt
    started, by the app's count). A cut-off launch that never ran again ended otherwise (a stop,
    a delete, or retries used up): its last attempt's state is noted in the detail."""
    if not fault.cut_off:
        return
    times, ended = [], []
    for launch in fault.cut_off:
        again = resumed_after(executions, launch, fault.at)
        if again is not None:
            times.append(again - fault.at)
        else:
            last = _last_attempt(store, launch)
            uid = launch.removeprefix("k8s-").rsplit("-", 1)[0]
            why = f" ({asked[uid]})" if asked.get(uid) else ""
            state, error = (last.state.value, last.error) if last else ("?", "")
            ended.append(f"{launch}{why} {state}: {error}"[:200])
    fault.failover = max(times) if times else None
    if ended:
        fault.detail += f"; not run again: {'; '.join(ended)}"


def _last_attempt(store: Any, launch: str) -> Any:
    last = None
    for attempt in range(1, 50):
        entry = store.runs.get(launch if attempt == 1 else f"{launch}.{attempt}")
        if entry is None:
            break
        last = entry
    return last


def _check_launches(store: Any, tracked: Tracked, outcome: Outcome) -> None:
    """Every launch the operator made for the resource ended (its last attempt is final)."""
    for number in range(1, tracked.launched + 1):
        launch = f"k8s-{tracked.uid}-{number}"
        last = _last_attempt(store, launch)
        if last is None and not tracked.deleted:
            outcome.lost.append(f"{tracked.name}: launch {launch} has no run in MongoDB")
        elif last is not None and last.state not in FINAL:
            outcome.lost.append(f"{tracked.name}: launch {launch} ends {last.state.value} ({last.run_id})")


def _status_lag(release: ChaosRelease, driver: Driver, outcome: Outcome) -> list[str]:
    store = release.controller.store
    start = time.time()

    def mismatches() -> list[str]:
        found = []
        for name, item in driver.listed().items():
            status = item.get("status") or {}
            run_id = str(status.get("runId") or "")
            if not run_id:
                continue
            record = store.processes.get(release.namespace, item["spec"]["process"])
            if record is not None and record.run_id == run_id:
                state: State | None = record.state
            else:
                entry = store.runs.get(run_id)
                state = entry.state if entry is not None else None
            if state is None or status.get("state") != state.value:
                mongo = state.value if state is not None else None
                found.append(f"{name}: status {status.get('state')}, MongoDB {mongo} ({run_id})")
        return found

    found = mismatches()
    while found and time.time() - start < STATUS_LAG:
        time.sleep(0.5)
        found = mismatches()
    outcome.status_lag = None if found else time.time() - start
    return found


def report(outcome: Outcome) -> str:
    runs = {e.launch for e in outcome.executions}
    kinds: dict[str, list[FaultRecord]] = {}
    for fault in outcome.faults:
        kinds.setdefault(fault.kind, []).append(fault)

    def stats(values: list[float | None]) -> str:
        known = [v for v in values if v is not None]
        if not known:
            return f"{'-':>7} {'-':>7}"
        return f"{statistics.median(known):6.1f}s {percentile(known, 0.99):6.1f}s"

    lines = [
        f"seed {outcome.config.seed}, {len(outcome.faults)} faults, {len(outcome.resources)} resources, "
        f"actions {dict(sorted(outcome.actions.items()))}",
        f"launches executed {len(runs)}, executions {len(outcome.executions)} "
        f"(completed {sum(e.outcome == 'completed' for e in outcome.executions)}, "
        f"stopped {sum(e.outcome == 'stopped' for e in outcome.executions)}, "
        f"cut off {sum(not e.outcome for e in outcome.executions)})",
        f"records final {outcome.settled_after:.1f} s after the last fault; statuses equal MongoDB's "
        + (f"{outcome.status_lag:.1f} s later" if outcome.status_lag is not None else "NOT within 10 s"),
        f"LOST {len(outcome.lost)}   DUPLICATED {len(outcome.duplicated)}   STUCK {len(outcome.stuck)}",
        f"{'fault':<24}{'injected':>8}  {'failover p50/p99':>16}  {'settle p50/p99':>16}  unsettled",
    ]
    for kind, faults in sorted(kinds.items()):
        unsettled = sum(f.settle is None for f in faults)
        lines.append(f"{kind:<24}{len(faults):>8}  {stats([f.failover for f in faults])}  "
                     f"{stats([f.settle for f in faults])}  {unsettled:>9}")
    lines += [f"{fault.kind} at +{fault.at - outcome.faults[0].at:.0f} s: {fault.detail}"
              for fault in outcome.faults if "not run again" in fault.detail]
    for title, items in (("lost", outcome.lost), ("duplicated", outcome.duplicated),
                         ("stuck", outcome.stuck)):
        lines += [f"{title}: {item}" for item in items[:20]]
    return "\n".join(lines)
