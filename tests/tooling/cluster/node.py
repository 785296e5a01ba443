"""One node beside the local control plane, so Pods really run (``up --node``).

containerd + runc + CNI plugins from Debian, kubelet + kube-scheduler + kube-proxy from the
pinned module, a local pause image, a bridge link with no ports as the node address, and a
forwarder from that address to the loopback-only kube-apiserver for the ``kubernetes`` Service.

Everything the node changes on the host is recorded in the cluster's ``state.json`` (key
``node``) *before* it is changed, and :func:`teardown` undoes it from that record. Only one node
runs on a machine at a time: ``/run/shards-node.owner`` names the cluster folder that has it.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import programs
from . import host, pause, procs
from . import pki as pki_mod
from ._common import REPO_ROOT, ClusterError, log, wait_for
from .client import KubeCluster, write_kubeconfig

NODE_NAME = "shards-node"
NODE_LINK = "shards-node0"  # a bridge with no ports: this kernel has no "dummy" links
CNI_BRIDGE = "shards-cni0"
NODE_IP = "10.213.0.1"
POD_CIDR = "10.213.1.0/24"
RESERVED = ipaddress.ip_network("10.213.0.0/16")  # must not overlap anything on the host
# containerd's state and socket, runc's state, the kubelet's root: short paths (unix sockets
# are limited to 107 bytes); images, pod logs and configs are under the cluster folder.
RUN_DIR = Path("/run/shards-node")
OWNER_FILE = Path("/run/shards-node.owner")
CNI_BIN_DIR = "/usr/lib/cni"

CONTAINERD_TIMEOUT_S = 30.0
NODE_READY_TIMEOUT_S = 90.0
POD_DELETE_TIMEOUT_S = 30


@dataclass(frozen=True)
class KubeNode:
    """A running node: its name and address, and its containerd (to load images)."""

    name: str
    ip: str
    pod_cidr: str
    containerd_socket: Path
    state_dir: Path

    def ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        argv = ["ctr", "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ClusterError(f"{' '.join(argv[5:])} failed: {(proc.stderr or proc.stdout).strip()[:1000]}")
        return proc

    def load_image(self, archive: Path | str) -> list[str]:
        """Import a docker-archive into the node's containerd; returns the image names it holds.

        A name without a registry (``shards-worker:0.1.0``) becomes
        ``docker.io/library/shards-worker:0.1.0``; Pods name it as ``shards-worker:0.1.0`` with
        ``imagePullPolicy: Never`` or ``IfNotPresent`` (no registry is reachable).
        """
        archive = Path(archive).resolve()
        stat = archive.stat()
        key = f"{archive}:{stat.st_size}:{stat.st_mtime_ns}"
        cache = self.state_dir / "node" / "loaded-images.json"
        try:
            loaded: dict[str, list[str]] = json.loads(cache.read_text())
        except (OSError, ValueError):
            loaded = {}
        if key in loaded and all(name in self.images() for name in loaded[key]):
            return loaded[key]
        started = time.monotonic()
        out = self.ctr("images", "import", "--snapshotter", "overlayfs", str(archive)).stdout
        names = [line.split()[1] for line in out.splitlines() if line.startswith("unpacking ")]
        log.info("loaded %s into the node in %.1fs", ", ".join(names), time.monotonic() - started)
        loaded[key] = names
        cache.write_text(json.dumps(loaded, indent=2) + "\n")
        return names

    def images(self) -> list[str]:
        return self.ctr("images", "list", "--quiet").stdout.split()


# --- checks and packages -------------------------------------------------------------------


def can_run_node() -> str | None:
    """None when this machine can run a node, else why not (for a test skip)."""
    if sys.platform != "linux":
        return "a node needs Linux"
    if os.geteuid() != 0:
        return "a node needs root (containerd, runc, network links, iptables, cgroups)"
    if not host.cgroup_mounts():
        return "no cgroup hierarchy is mounted"
    if not Path("/dev/kmsg").exists():
        return "the kubelet needs /dev/kmsg"
    if not Path("/proc/sys/net/ipv4/ip_forward").exists():
        return "no IPv4 networking sysctls (/proc/sys/net/ipv4)"
    return programs.why_not("node")


def ensure_packages() -> None:
    """Install the Debian packages the node needs when any is missing (tooling.programs' "node")."""
    try:
        programs.ensure("node", log=log)
    except programs.ProgramError as exc:
        raise ClusterError(str(exc)) from None


def _check_addresses() -> None:
    addrs = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True)
    for line in addrs.stdout.splitlines():
        addr = ipaddress.ip_interface(line.split()[3])
        if addr.network.overlaps(RESERVED) and line.split()[1] != NODE_LINK:
            raise ClusterError(f"{line.split()[1]} has {addr}, inside the node's range {RESERVED}")
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True)
    for line in routes.stdout.splitlines():
        dst = line.split()[0]
        if dst in ("default", "broadcast", "local", "multicast", "unreachable"):
            continue
        with contextlib.suppress(ValueError):
            ours = NODE_LINK in line or CNI_BRIDGE in line
            if ipaddress.ip_network(dst, strict=False).overlaps(RESERVED) and not ours:
                raise ClusterError(f"route '{line.strip()}' overlaps the node's range {RESERVED}")


# --- ownership (one node per machine) ------------------------------------------------------


@contextlib.contextmanager
def _owner_lock() -> Iterator[None]:
    with open(f"{OWNER_FILE}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def check_free(directory: Path) -> None:
    """Fail fast (before starting anything) when another cluster folder has the node."""
    with contextlib.suppress(FileNotFoundError, ValueError):
        other = Path(json.loads(OWNER_FILE.read_text())["state_dir"])
        state = _read_state(other) if other != directory else None
        if state and state.get("node"):
            raise ClusterError(
                f"a node already runs for the cluster in {other}; one node per machine: "
                f"stop it first (SHARDS_CLUSTER_DIR={other} make cluster-down)"
            )


def owner() -> Path | None:
    """The cluster folder whose node runs (or is recorded) on this machine, if any."""
    with contextlib.suppress(FileNotFoundError, ValueError):
        other = Path(json.loads(OWNER_FILE.read_text())["state_dir"])
        state = _read_state(other)
        if state and state.get("node"):
            return other
    return None


def _claim(directory: Path) -> None:
    """Record ``directory`` as the node's owner, or fail fast naming the cluster that has it."""
    with _owner_lock():
        with contextlib.suppress(FileNotFoundError, ValueError):
            other = Path(json.loads(OWNER_FILE.read_text())["state_dir"])
            if other != directory:
                state = _read_state(other)
                if state and state.get("node"):
                    raise ClusterError(
                        f"a node already runs for the cluster in {other}; one node per machine: "
                        f"stop it first (SHARDS_CLUSTER_DIR={other} make cluster-down)"
                    )
                if host.link_exists(NODE_LINK):
                    raise ClusterError(
                        f"leftovers of a node whose state folder {other} is gone: link {NODE_LINK} exists"
                    )
        OWNER_FILE.write_text(json.dumps({"state_dir": str(directory), "pid": os.getpid()}) + "\n")


def _release(directory: Path) -> None:
    with _owner_lock(), contextlib.suppress(FileNotFoundError, ValueError):
        if Path(json.loads(OWNER_FILE.read_text())["state_dir"]) == directory:
            OWNER_FILE.unlink()
    with contextlib.suppress(FileNotFoundError):
        if not OWNER_FILE.exists():
            Path(f"{OWNER_FILE}.lock").unlink()


# --- state helpers (shared with control_plane) ---------------------------------------------


def _read_state(directory: Path) -> dict[str, object] | None:
    from .control_plane import _read_state as read

    return read(directory)


def _write_state(directory: Path, state: dict[str, object]) -> None:
    from .control_plane import _write_state as write

    write(directory, state)


def _node_state(state: dict[str, object]) -> dict[str, object]:
    node = state.get("node")
    assert isinstance(node, dict)
    return node


def records(state: dict[str, object]) -> list[procs.ProcessRecord]:
    node = state.get("node")
    if not isinstance(node, dict):
        return []
    return [procs.ProcessRecord.from_json(r) for r in node.get("processes", [])]


def handle(directory: Path, state: dict[str, object]) -> KubeNode | None:
    node = state.get("node")
    if not isinstance(node, dict) or not node.get("complete"):
        return None
    return KubeNode(
        name=str(node["name"]),
        ip=str(node["ip"]),
        pod_cidr=str(node["pod_cidr"]),
        containerd_socket=Path(str(node["socket"])),
        state_dir=directory,
    )


# --- bring-up ------------------------------------------------------------------------------


def start(cluster: KubeCluster, state: dict[str, object]) -> KubeNode:
    """Add the node to a running control plane (the caller holds the state folder's lock).

    ``state`` is the cluster's state.json content; it is rewritten as each change is made.
    """
    reason = can_run_node()
    if reason is not None:
        raise ClusterError(f"cannot run a node here: {reason}")
    directory = cluster.state_dir
    check_free(directory)
    started = time.monotonic()
    ensure_packages()
    pause_archive = pause.ensure_pause_archive()
    _check_addresses()
    _claim(directory)
    root = directory / "node"
    socket = RUN_DIR / "containerd.sock"
    node: dict[str, object] = {
        "name": NODE_NAME, "ip": NODE_IP, "pod_cidr": POD_CIDR, "socket": str(socket),
        "root": str(root), "run_dir": str(RUN_DIR), "bridges": [NODE_LINK, CNI_BRIDGE],
        "host": host.snapshot(), "processes": [], "complete": False,
    }  # fmt: skip
    state["node"] = node
    _write_state(directory, state)  # the record exists before anything is changed

    def launch(name: str, argv: list[str], env: dict[str, str] | None = None) -> procs.ProcessRecord:
        record = procs.start(name, argv, directory / "logs" / f"{name}.log", env=env)
        processes = node["processes"]
        assert isinstance(processes, list)
        processes.append(record.to_json())
        _write_state(directory, state)
        return record

    for sub in ("containerd", "pod-logs", "cni/net.d", "cni/ipam", "opt", "plugins"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    # the kubelet's root holds unix sockets (pod-resources, plugins): a short path
    (RUN_DIR / "kubelet").mkdir(parents=True, exist_ok=True)

    if not host.link_exists(NODE_LINK):
        _ip("link", "add", NODE_LINK, "type", "bridge")
    _ip("addr", "replace", f"{NODE_IP}/32", "dev", NODE_LINK)
    _ip("link", "set", NODE_LINK, "up")

    pki = pki_mod.generate_node(cluster.pki_dir, NODE_NAME, NODE_IP)
    configs = _write_configs(cluster, root, socket, pki)

    containerd = launch("containerd", ["containerd", "--config", str(configs["containerd"])])
    node_handle = KubeNode(NODE_NAME, NODE_IP, POD_CIDR, socket, directory)
    wait_for(
        "containerd",
        lambda: True if socket.exists() and _ctr_ok(node_handle) else None,
        CONTAINERD_TIMEOUT_S,
        interval=0.1,
        fail_fast=lambda: procs.exit_reason(containerd),
    )
    node_handle.load_image(pause_archive)

    # The "kubernetes" Service: endpoints on the node address, forwarded to the loopback port.
    api_port = int(cluster.server.rsplit(":", 1)[1])
    forwarder = launch("apiserver-forwarder", [
        sys.executable, "-m", "tooling.cluster.forward", NODE_IP, str(api_port), "127.0.0.1", str(api_port),
    ], env=dict(os.environ, PYTHONPATH=str(REPO_ROOT / "tests")))  # fmt: skip
    node["api_port"] = api_port
    _publish_kubernetes_endpoints(cluster, api_port)

    scheduler = launch("kube-scheduler", [
        str(cluster.bin_dir / "kube-scheduler"), f"--kubeconfig={cluster.kubeconfig}",
        f"--authentication-kubeconfig={cluster.kubeconfig}",
        f"--authorization-kubeconfig={cluster.kubeconfig}",
        "--leader-elect=false", "--secure-port=0", "--profiling=false",
    ])  # fmt: skip
    kubelet = launch("kubelet", [
        str(cluster.bin_dir / "kubelet"), f"--config={configs['kubelet']}",
        f"--kubeconfig={configs['kubelet-kubeconfig']}", f"--root-dir={RUN_DIR / 'kubelet'}",
        f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
    ])  # fmt: skip
    proxy = launch("kube-proxy", [
        str(cluster.bin_dir / "kube-proxy"), f"--config={configs['kube-proxy']}",
    ])  # fmt: skip

    def any_exited() -> str | None:
        for record in (containerd, forwarder, scheduler, kubelet, proxy):
            reason = procs.exit_reason(record)
            if reason:
                return reason
        return None

    wait_for(
        f"node {NODE_NAME} Ready",
        lambda: _node_ready(cluster),
        NODE_READY_TIMEOUT_S,
        interval=0.25,
        fail_fast=any_exited,
    )
    node["complete"] = True
    _write_state(directory, state)
    seconds = time.monotonic() - started
    log.info("node %s Ready at %s (pods %s) in %.1fs", NODE_NAME, NODE_IP, POD_CIDR, seconds)
    return node_handle


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise ClusterError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def _ctr_ok(node: KubeNode) -> bool | None:
    try:
        node.ctr("version", timeout=5)
        return True
    except (ClusterError, subprocess.TimeoutExpired):
        return None


def _node_ready(cluster: KubeCluster) -> bool | None:
    proc = cluster.kubectl("get", "node", NODE_NAME, "-o", "json", check=False, timeout=10)
    if proc.returncode != 0:
        return None
    conditions = json.loads(proc.stdout).get("status", {}).get("conditions", [])
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return True if ready else None


def _publish_kubernetes_endpoints(cluster: KubeCluster, port: int) -> None:
    """Endpoints + EndpointSlice of the ``kubernetes`` Service (the apiserver's reconciler is off)."""
    ports = [{"name": "https", "port": port, "protocol": "TCP"}]
    objects = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": NODE_IP}], "ports": ports}],
            },
            {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "kubernetes"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
                "ports": ports,
            },
        ],
    }  # fmt: skip
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(objects))


def _write_configs(cluster: KubeCluster, root: Path, socket: Path, pki: pki_mod.Pki) -> dict[str, Path]:
    paths = {
        "containerd": root / "containerd.toml",
        "cni": root / "cni" / "net.d" / "10-shards.conflist",
        "kubelet": root / "kubelet.json",
        "kubelet-kubeconfig": root / "kubelet.kubeconfig",
        "kube-proxy": root / "kube-proxy.json",
        "kube-proxy-kubeconfig": root / "kube-proxy.kubeconfig",
    }
    cri = '[plugins."io.containerd.grpc.v1.cri"'
    paths["containerd"].write_text(f"""version = 2
root = "{root / 'containerd'}"
state = "{RUN_DIR / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root / 'opt'}"

{cri}]
  sandbox_image = "{pause.PAUSE_IMAGE}"
  # root here lacks CAP_SYS_RESOURCE: without this every sandbox fails in runc create
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{RUN_DIR / 'runc'}"

{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{paths['cni'].parent}"
  max_conf_num = 1
""")  # fmt: skip
    paths["cni"].write_text(json.dumps({
        "cniVersion": "0.4.0",
        "name": "shards-pods",
        "plugins": [
            {
                "type": "bridge", "bridge": CNI_BRIDGE, "isGateway": True, "hairpinMode": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(root / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2))  # fmt: skip
    write_kubeconfig(
        paths["kubelet-kubeconfig"], cluster.server, pki.ca_cert, f"system:node:{NODE_NAME}",
        client_cert=pki.cert("kubelet-client"), client_key=pki.key("kubelet-client"),
    )  # fmt: skip
    write_kubeconfig(
        paths["kube-proxy-kubeconfig"], cluster.server, pki.ca_cert, "system:kube-proxy",
        client_cert=pki.cert("kube-proxy"), client_key=pki.key("kube-proxy"),
    )  # fmt: skip
    from .control_plane import _free_ports

    healthz, proxy_healthz, proxy_metrics = _free_ports(3)
    paths["kubelet"].write_text(json.dumps({
        "kind": "KubeletConfiguration", "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "failCgroupV1": False,  # cgroup v1 hierarchies here; supported through 1.36
        "cgroupDriver": "cgroupfs",  # containerd 1.6 cannot tell the kubelet its driver
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{socket}",
        "address": NODE_IP, "port": 10250, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": healthz,
        "tlsCertFile": str(pki.cert("kubelet-serving")),
        "tlsPrivateKeyFile": str(pki.key("kubelet-serving")),
        "authentication": {
            "x509": {"clientCAFile": str(pki.ca_cert)},
            "webhook": {"enabled": True},
            "anonymous": {"enabled": False},
        },
        "authorization": {"mode": "Webhook"},
        "podLogsDir": str(root / "pod-logs"),
        "volumePluginDir": str(root / "plugins"),
        "makeIPTablesUtilChains": False,
        "serializeImagePulls": False,
        # no registry: images are imported, never pulled; never garbage-collect them
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        "resolvConf": "/etc/resolv.conf",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "oomScoreAdj": 0,
    }, indent=2))  # fmt: skip
    paths["kube-proxy"].write_text(json.dumps({
        "kind": "KubeProxyConfiguration", "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "clientConnection": {"kubeconfig": str(paths["kube-proxy-kubeconfig"])},
        "hostnameOverride": NODE_NAME,
        "healthzBindAddress": f"127.0.0.1:{proxy_healthz}",
        "metricsBindAddress": f"127.0.0.1:{proxy_metrics}",
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "nodePortAddresses": [f"{NODE_IP}/32"],
        "iptables": {"localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "0s"},
        # zero: kube-proxy leaves the conntrack sysctls alone
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s", "tcpBeLiberal": False,
                      "udpTimeout": "0s", "udpStreamTimeout": "0s"},
        "oomScoreAdj": 0,
    }, indent=2))  # fmt: skip
    return paths


# --- teardown ------------------------------------------------------------------------------


def teardown(directory: Path, state: dict[str, object], cluster: KubeCluster | None) -> list[str]:
    """Undo everything the node record in ``state`` says was changed; returns errors (if any).

    Order: Pods deleted through the API (the kubelet stops them) with the scheduler stopped, so
    nothing is recreated; kube-proxy stopped and ``--cleanup``; kubelet stopped; what is left in
    the kubepods cgroups and our containerd's shims killed by pid; containerd and the forwarder
    stopped; mounts under the private roots unmounted; links, chains, tables, cgroups deleted;
    sysctls restored; paths that were not there before removed; the ownership released.
    """
    node = state.get("node")
    if not isinstance(node, dict):
        return []
    errors: list[str] = []
    by_name = {r.name: r for r in records(state)}
    root = Path(str(node.get("root", directory / "node")))
    run_dir = str(node.get("run_dir", RUN_DIR))
    raw_host = node.get("host")
    before: dict[str, object] = raw_host if isinstance(raw_host, dict) else {}

    def stop(name: str) -> None:
        record = by_name.get(name)
        if record is not None:
            try:
                procs.stop(record)
            except ClusterError as exc:
                errors.append(str(exc))

    stop("kube-scheduler")
    kubelet = by_name.get("kubelet")
    if cluster is not None and kubelet is not None and procs.is_alive(kubelet) and cluster.readyz():
        proc = cluster.kubectl(
            "delete", "pods", "--all", "--all-namespaces", "--grace-period=1", "--wait=true",
            f"--timeout={POD_DELETE_TIMEOUT_S}s", check=False, timeout=POD_DELETE_TIMEOUT_S + 15,
        )  # fmt: skip
        if proc.returncode != 0:
            log.warning("deleting Pods: %s (continuing)", proc.stderr.strip()[:300])
    stop("kube-proxy")
    proxy_config = root / "kube-proxy.json"
    bin_dir = Path(str(state.get("bin_dir", "")))
    if (bin_dir / "kube-proxy").exists() and proxy_config.exists():
        cleanup = subprocess.run(
            [str(bin_dir / "kube-proxy"), f"--config={proxy_config}", "--cleanup"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if cleanup.returncode != 0:
            log.warning("kube-proxy --cleanup exited %d: %s", cleanup.returncode, cleanup.stderr[-300:])
    stop("kubelet")

    cgroups_before = _strs(before.get("cgroups"))
    ours = [c for c in host.kubepods_cgroups() if c not in cgroups_before]
    socket = str(node.get("socket", RUN_DIR / "containerd.sock"))
    for _ in range(3):
        pods = host.cgroup_pids(ours)
        shims = host.shims(socket)
        if not pods and not shims:
            break
        host.kill_pids(pods, "container process")
        host.kill_pids(set(shims), "containerd-shim")
        left = host.wait_pids_gone(pods | set(shims))
        if left:
            errors.append(f"processes survived SIGKILL: {sorted(left)}")
        for shim_socket in shims.values():
            Path(shim_socket).unlink(missing_ok=True)
    for record in reversed(list(by_name.values())):  # containerd, the forwarder, anything else
        stop(record.name)

    errors += host.unmount_all([str(root), run_dir])
    errors += host.delete_links(_strs(node.get("bridges")), _strs(before.get("links")))
    iptables = before.get("iptables")
    if isinstance(iptables, dict):
        errors += host.remove_iptables(iptables)
    if "nft_tables" in before:
        errors += host.remove_nft_tables(_strs(before.get("nft_tables")))
    errors += host.remove_cgroups(cgroups_before)
    sysctls = before.get("sysctls")
    if isinstance(sysctls, dict):
        errors += host.restore_sysctls(sysctls)
    if "paths" in before:
        errors += host.remove_new_paths(_strs(before.get("paths")))
    if not host.mounts_under([run_dir]):
        shutil.rmtree(run_dir, ignore_errors=True)
    if not host.mounts_under([str(root)]):
        shutil.rmtree(root, ignore_errors=True)
    if not errors:
        state.pop("node", None)
        _release(directory)
    return errors


def _strs(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []
