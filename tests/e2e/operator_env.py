"""The operator end to end: a real API server, the operator as an OS process authenticated with
the ServiceAccount token bound to deploy/'s RBAC (a missing permission fails the test), real
workers, and a Mongo database of the test's own."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from integration.harness import WAIT, ShardsHarness, wait_until
from tooling.cluster import KubeCluster
from tooling.harness import Child

API_VERSION = "shards.dev/v1alpha1"
SHEEP_APP = "examples/sheep.py:app"


class OperatorEnv:
    def __init__(self, cluster: KubeCluster, namespace: str, mongo_uri: str, workdir: Path,
                 service_account: tuple[str, str] = ("shards-system", "shards-operator")) -> None:
        """``service_account`` (namespace, name): whose token the operator runs with; by default
        deploy/'s, the Helm chart's in tests/e2e/test_chart.py."""
        self.cluster = cluster
        self.namespace = namespace
        self.shards = ShardsHarness(mongo_uri, workdir)
        self.workdir = workdir
        sa_namespace, sa_name = service_account
        token = cluster.kubectl("create", "token", sa_name, "-n", sa_namespace,
                                "--duration=2h").stdout.strip()
        self.kubeconfig = cluster.token_kubeconfig(token, workdir / "operator.kubeconfig")
        self.operator: Child | None = None
        self._operator_logs = 0

    # -- processes --------------------------------------------------------------------------
    def start_operator(self, *extra: str) -> Child:
        self._operator_logs += 1
        self.operator = self.shards.processes.start_operator(
            self.namespace, self.kubeconfig, *extra, log=f"operator-{self._operator_logs}.log")
        return self.operator

    def operator_log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("operator-*.log")))

    def stop_operator(self, sig: int = signal.SIGTERM) -> None:
        if self.operator is not None:
            self.operator.terminate(sig=sig)

    def start_workers(self, count: int = 1, app: str = SHEEP_APP) -> None:
        for _ in range(count):
            self.shards.start_worker(app)
        wait_until(lambda: len(self.shards.store.workers.alive()) >= count, what=f"{count} live workers")

    # -- resources --------------------------------------------------------------------------
    def apply(self, manifest: dict[str, Any] | str | Path) -> None:
        if isinstance(manifest, Path):
            self.cluster.kubectl("apply", "-n", self.namespace, "-f", str(manifest))
        else:
            text = manifest if isinstance(manifest, str) else json.dumps(manifest)
            self.cluster.kubectl("apply", "-n", self.namespace, "-f", "-", input=text)

    def shp(self, name: str, **spec: Any) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": "ShardProcess", "metadata": {"name": name}, "spec": spec}

    def get(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.cluster.kubectl_json("get", "shp", name, "-n", self.namespace)
        return obj

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def wait_status(self, name: str, what: str, check: Any, timeout: float = WAIT) -> dict[str, Any]:
        def described() -> str:
            status = json.dumps(self.status(name))[:600]
            return f"{name}: {what} (status is {status})\n{self.operator_log()[-3000:]}"

        result: dict[str, Any] = wait_until(
            lambda: (status := self.status(name)) and check(status) and status, timeout, described
        )
        return result

    def wait_state(self, name: str, *states: str, timeout: float = WAIT) -> dict[str, Any]:
        return self.wait_status(name, f"state in {states}", lambda s: s.get("state") in states, timeout)

    def condition(self, status: dict[str, Any], kind: str) -> dict[str, Any]:
        return next((c for c in status.get("conditions", []) if c["type"] == kind), {})

    def events(self, name: str) -> list[str]:
        listed = self.cluster.kubectl_json(
            "get", "events", "-n", self.namespace, "--field-selector", f"involvedObject.name={name}"
        )
        return [str(item.get("reason")) for item in listed.get("items", [])]  # type: ignore[union-attr]

    def event_messages(self, name: str, reason: str) -> list[str]:
        selector = f"involvedObject.name={name},reason={reason}"
        listed = self.cluster.kubectl_json("get", "events", "-n", self.namespace, "--field-selector",
                                           selector)
        return [str(item.get("message")) for item in listed.get("items", [])]  # type: ignore[union-attr]

    def close(self) -> None:
        self.stop_operator()
        self.shards.close()
