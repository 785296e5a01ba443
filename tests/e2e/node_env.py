"""Helpers for the e2e tests that run Pods on the local node (tests/e2e/test_node.py).

``host_snapshot()`` is deliberately independent of tooling/cluster/host.py (the code it checks):
plain ``sysctl``-like reads, ``ip -o link``, ``iptables-save``/``nft list ruleset``, mountinfo,
cgroup folders and /proc.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from tooling import programs
from tooling.cluster import KubeCluster

SYSCTLS = (
    "kernel.panic",
    "kernel.panic_on_oops",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max",
)
# Created by the kubelet, containerd or the CNI plugins whatever their private roots are.
HOST_PATHS = (
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/run/containerd",
    "/var/lib/cni",
    "/run/netns",
    "/opt/containerd",
    "/opt/cni",
    "/run/shards-node",
    "/run/shards-node.owner",
)
NODE_EXES = ("containerd", "kubelet", "kube-proxy", "kube-scheduler")


def _sysctls() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key in SYSCTLS:
        try:
            out[key] = Path("/proc/sys", *key.split(".")).read_text().strip()
        except OSError:
            out[key] = None
    return out


def _links() -> list[str]:
    """``name <FLAGS> mtu N state S`` per link (indexes and addresses of new links vary)."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    links = []
    for line in out.splitlines():
        m = re.match(r"\d+: (\S+): (<[^>]*>) mtu (\d+) .*?state (\S+)", line)
        links.append(" ".join(m.groups()) if m else line)
    return sorted(links)


def _ruleset() -> dict[str, list[str]]:
    """iptables-save / ip6tables-save / nft list ruleset, without comments, counters and handles.

    A tool that is not installed shows an empty set: on a machine that never had a node, no
    program has made rules of that kind yet (the node fixture installs the tools first anyway).
    """
    out: dict[str, list[str]] = {}
    for argv in (["iptables-save"], ["ip6tables-save"], ["nft", "list", "ruleset"]):
        exe = programs.BY_NAME[argv[0]].location()
        if exe is None:
            out[argv[0]] = []
            continue
        proc = subprocess.run([exe, *argv[1:]], capture_output=True, text=True)
        lines = []
        for line in proc.stdout.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            line = re.sub(r"\[\d+:\d+\]", "", line)
            line = re.sub(r"\s+# handle \d+", "", line)
            lines.append(line.rstrip())
        out[argv[0]] = lines
    return out


def _mounts(roots: list[str]) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if any(point == r or point.startswith(r.rstrip("/") + "/") for r in roots):
            points.append(point)
    return sorted(points)


def _cgroups() -> list[str]:
    found = []
    for base in Path("/sys/fs/cgroup").iterdir():
        if not base.is_dir():
            continue
        found += [str(p) for p in base.glob("kubepods*")]
        found += [str(p) for p in base.glob("*/kubepods*")]
    found += [str(p) for p in Path("/sys/fs/cgroup").glob("kubepods*")]
    return sorted(set(found))


def _node_processes() -> list[str]:
    procs = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.path.basename(os.readlink(entry / "exe"))
        except OSError:
            continue
        exe = exe.removesuffix(" (deleted)")
        if exe in NODE_EXES or exe.startswith("containerd-shim"):
            procs.append(f"{entry.name} {exe}")
    return sorted(procs)


def host_snapshot(private_roots: list[str]) -> dict[str, object]:
    return {
        "sysctls": _sysctls(),
        "links": _links(),
        "rules": _ruleset(),
        "mounts": _mounts([*private_roots, *HOST_PATHS]),
        "cgroups": _cgroups(),
        "paths": [p for p in HOST_PATHS if os.path.lexists(p)],
        "processes": _node_processes(),
    }


def wait_pod(
    cluster: KubeCluster, namespace: str, name: str, phases: tuple[str, ...], timeout: float = 90
) -> dict[str, object]:
    """Wait until Pod ``name`` is in one of ``phases``; fail early when it is in another end state."""
    deadline = time.monotonic() + timeout
    pod: dict[str, object] = {}
    while time.monotonic() < deadline:
        proc = cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json", check=False)
        if proc.returncode == 0:
            pod = json.loads(proc.stdout)
            status = pod.get("status", {})
            assert isinstance(status, dict)
            phase = status.get("phase")
            if phase in phases:
                return pod
            if phase in ("Succeeded", "Failed"):
                raise AssertionError(f"pod {name} ended {phase}: {json.dumps(status)[:2000]}")
        time.sleep(0.25)
    raise AssertionError(f"pod {name} not {phases} after {timeout}s: {json.dumps(pod.get('status'))[:2000]}")


def pod_manifest(
    name: str, image: str, command: list[str], *, restart: str = "Never", labels: dict[str, str] | None = None
) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {"name": "main", "image": image, "imagePullPolicy": "Never", "command": command},
            ],
        },
    }
