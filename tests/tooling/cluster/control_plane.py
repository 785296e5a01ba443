"""Start and stop etcd + kube-apiserver (+ kube-controller-manager) on loopback, and a node.

State lives in ``.cluster/`` (see :func:`state_dir`): ``state.json`` records the server URL
and the pid + start time of every process started, so ``down`` stops exactly those. With a
node (``up(with_node=True)`` or :func:`add_node`), its record is the ``node`` key (node.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from . import node as node_mod
from . import pki as pki_mod
from . import procs, tools
from ._common import ClusterError, log, state_dir, wait_for
from .client import KubeCluster, admin_ssl_context, probe_readyz, write_kubeconfig

ETCD_TIMEOUT_S = 60.0
APISERVER_TIMEOUT_S = 180.0
CONTROLLER_MANAGER_TIMEOUT_S = 120.0
SERVICE_CIDR = "10.0.0.0/24"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
STATE_FILE = "state.json"


def _free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise up/down on one state folder (flock on the folder itself, bounded)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        wait_for(f"lock on {directory}", lambda: _try_flock(fd), timeout=600, interval=0.5)
        yield
    finally:
        os.close(fd)


def _try_flock(fd: int) -> bool | None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return None


def _read_state(directory: Path) -> dict[str, object] | None:
    try:
        data: dict[str, object] = json.loads((directory / STATE_FILE).read_text())
        return data
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_state(directory: Path, state: dict[str, object]) -> None:
    tmp = directory / f"{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(directory / STATE_FILE)


def _records(state: dict[str, object]) -> list[procs.ProcessRecord]:
    raw = state.get("processes", [])
    assert isinstance(raw, list)
    return [procs.ProcessRecord.from_json(item) for item in raw]


def _handle(directory: Path, state: dict[str, object]) -> KubeCluster:
    return KubeCluster(
        state_dir=directory,
        server=str(state["server"]),
        kubeconfig=Path(str(state["kubeconfig"])),
        bin_dir=Path(str(state["bin_dir"])),
        controller_manager=bool(state.get("controller_manager", False)),
    )


def running() -> KubeCluster | None:
    """The cluster recorded in the state folder, if all its processes run and it is ready.

    A recorded node counts: a half-started node, or one with a dead process, means not running.
    """
    directory = state_dir()
    state = _read_state(directory)
    if not state or not state.get("complete"):
        return None
    if not all(procs.is_alive(r) for r in _records(state)):
        return None
    if state.get("node") is not None:
        node_state = state["node"]
        if not isinstance(node_state, dict) or not node_state.get("complete"):
            return None
        if not all(procs.is_alive(r) for r in node_mod.records(state)):
            return None
    cluster = _handle(directory, state)
    return cluster if cluster.readyz() else None


def status() -> dict[str, object]:
    directory = state_dir()
    state = _read_state(directory) or {}
    cluster = running()
    return {
        "running": cluster is not None,
        "state_dir": str(directory),
        "server": state.get("server"),
        "kubeconfig": state.get("kubeconfig"),
        "bin_dir": state.get("bin_dir"),
        "controller_manager": state.get("controller_manager"),
        "node": node_info(state),
        "processes": {
            r.name: {"pid": r.pid, "alive": procs.is_alive(r), "log": r.log_file}
            for r in [*_records(state), *node_mod.records(state)]
        }
        if state
        else {},
    }


def node_info(state: dict[str, object]) -> dict[str, object] | None:
    node = state.get("node")
    if not isinstance(node, dict):
        return None
    return {k: node.get(k) for k in ("name", "ip", "pod_cidr", "socket", "complete")}


def running_node() -> node_mod.KubeNode | None:
    """The node of the running cluster, if it has one."""
    cluster = running()
    if cluster is None:
        return None
    state = _read_state(cluster.state_dir) or {}
    return node_mod.handle(cluster.state_dir, state)


def up(with_controller_manager: bool = True, with_node: bool = False) -> KubeCluster:
    """Start the control plane unless it already runs; return a handle once /readyz is ok.

    ``with_node``: also a node (node.py), added to an already running control plane if needed;
    returns once the Node is Ready.
    """
    directory = state_dir()
    with _locked(directory):
        cluster = running()
        if cluster is not None:
            log.info("already running at %s (kubeconfig %s)", cluster.server, cluster.kubeconfig)
            if with_node:
                _add_node_locked(cluster)
            return cluster
        if with_node:
            node_mod.check_free(directory)
        if _read_state(directory) is not None:
            log.info("found a stopped or half-started cluster in %s; cleaning it up", directory)
            _stop_all(directory)
        _wipe(directory)
        bin_dir = tools.ensure_tools()
        state: dict[str, object] = {"bin_dir": str(bin_dir), "processes": [], "complete": False}
        try:
            cluster = _start(directory, bin_dir, state, with_controller_manager)
            if with_node:
                node_mod.start(cluster, state)
        except BaseException:
            log.error("start failed; stopping what was started (logs kept in %s)", directory / "logs")
            _stop_all(directory)
            shutil.rmtree(directory / "etcd", ignore_errors=True)
            raise
        log.info("ready at %s; export KUBECONFIG=%s", cluster.server, cluster.kubeconfig)
        return cluster


def _start(directory: Path, bin_dir: Path, state: dict[str, object], with_kcm: bool) -> KubeCluster:
    pki = pki_mod.generate(directory / "pki")
    logs = directory / "logs"
    etcd_port, etcd_peer_port, api_port = _free_ports(3)
    etcd_url = f"https://127.0.0.1:{etcd_port}"
    server = f"https://127.0.0.1:{api_port}"
    kubeconfig = directory / "kubeconfig"
    state.update(server=server, kubeconfig=str(kubeconfig), etcd=etcd_url)
    started: list[dict[str, object]] = []
    state["processes"] = started

    def launch(name: str, argv: list[str]) -> procs.ProcessRecord:
        record = procs.start(name, argv, logs / f"{name}.log")
        started.append(record.to_json())
        _write_state(directory, state)
        return record

    peer = f"http://127.0.0.1:{etcd_peer_port}"  # single member: no peer traffic
    etcd = launch("etcd", [
        str(bin_dir / "etcd"), "--name=shards", f"--data-dir={directory / 'etcd'}",
        f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=shards={peer}", "--initial-cluster-state=new",
        f"--cert-file={pki.cert('etcd-server')}", f"--key-file={pki.key('etcd-server')}",
        f"--trusted-ca-file={pki.ca_cert}", "--client-cert-auth=true",
        "--unsafe-no-fsync=true", "--log-level=warn",
    ])  # fmt: skip
    wait_for(
        "etcd /health",
        lambda: _etcd_healthy(etcd_url, pki),
        ETCD_TIMEOUT_S,
        fail_fast=lambda: procs.exit_reason(etcd),
    )

    apiserver = launch("kube-apiserver", [
        str(bin_dir / "kube-apiserver"),
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        f"--secure-port={api_port}", f"--cert-dir={pki.root}",
        f"--tls-cert-file={pki.cert('apiserver')}",
        f"--tls-private-key-file={pki.key('apiserver')}",
        f"--client-ca-file={pki.ca_cert}",
        f"--etcd-servers={etcd_url}", f"--etcd-cafile={pki.ca_cert}",
        f"--etcd-certfile={pki.cert('apiserver-etcd-client')}",
        f"--etcd-keyfile={pki.key('apiserver-etcd-client')}",
        "--authorization-mode=Node,RBAC",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true", "--profiling=false",
        # Endpoints for the "kubernetes" Service may not be loopback: skip them. With a node
        # (node.py) they point at the node address, forwarded to this loopback port.
        "--endpoint-reconciler-type=none",
        # logs/exec/port-forward through a node's kubelet (harmless without a node).
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
        f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
        f"--kubelet-certificate-authority={pki.ca_cert}",
    ])  # fmt: skip
    wait_for(
        "kube-apiserver /readyz",
        lambda: probe_readyz(server, pki.root) or None,
        APISERVER_TIMEOUT_S,
        interval=0.5,
        fail_fast=lambda: procs.exit_reason(apiserver),
    )
    write_kubeconfig(
        kubeconfig,
        server,
        pki.ca_cert,
        "shards-admin",
        client_cert=pki.cert("admin"),
        client_key=pki.key("admin"),
    )
    state["controller_manager"] = with_kcm
    cluster = _handle(directory, state)
    if with_kcm:
        kcm_config = directory / "controller-manager.kubeconfig"
        write_kubeconfig(
            kcm_config,
            server,
            pki.ca_cert,
            "system:kube-controller-manager",
            client_cert=pki.cert("controller-manager"),
            client_key=pki.key("controller-manager"),
        )
        kcm = launch("kube-controller-manager", [
            str(bin_dir / "kube-controller-manager"), f"--kubeconfig={kcm_config}",
            "--leader-elect=false", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca_cert}",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.root / 'ca.key'}",
            "--cluster-name=shards-local", "--secure-port=0", "--profiling=false",
        ])  # fmt: skip
        # The ServiceAccount controller creating "default" shows the controllers work.
        wait_for(
            "kube-controller-manager (default ServiceAccount)",
            lambda: _has_default_sa(cluster),
            CONTROLLER_MANAGER_TIMEOUT_S,
            interval=1.0,
            fail_fast=lambda: procs.exit_reason(kcm),
        )
    state["complete"] = True
    _write_state(directory, state)
    return cluster


RESTART_BIND_TRIES = 60  # a freed port may be some client's ephemeral port for a moment


def restart(names: tuple[str, ...] = ("etcd", "kube-apiserver")) -> KubeCluster:
    """Crash and restart recorded control-plane processes in place (a chaos fault).

    Each named process is SIGKILLed (by its recorded pid), then started again in the recorded
    order with its own command line, so ports, certificates and etcd's data stay the same;
    state.json records the new pids (``down`` stops them). While a port is down another process's
    outgoing connection may take it as its local port: a start that fails with "address already
    in use" is tried again, once a second. Returns once /readyz answers again.
    """
    directory = state_dir()
    with _locked(directory):
        state = _read_state(directory)
        if not state or not state.get("complete"):
            raise ClusterError(f"no running cluster recorded in {directory}")
        records = _records(state)
        unknown = set(names) - {record.name for record in records}
        if unknown:
            raise ClusterError(f"no recorded process named {sorted(unknown)}")
        chosen = [record for record in records if record.name in names]
        argvs = {record.name: procs.argv_of(record) for record in chosen}
        for record in reversed(chosen):  # apiserver first, as down() does
            procs.kill(record)
        started: dict[str, procs.ProcessRecord] = {}
        tries = dict.fromkeys(argvs, 0)

        def launch(record: procs.ProcessRecord) -> None:
            tries[record.name] += 1
            started[record.name] = procs.start(record.name, argvs[record.name], Path(record.log_file))
            state["processes"] = [started.get(r.name, r).to_json() for r in records]
            _write_state(directory, state)

        def gone() -> str | None:
            """Start again what could not bind yet; say why a process died for another reason."""
            for record in chosen:
                reason = procs.exit_reason(started[record.name])
                if reason is None:
                    continue
                if "address already in use" not in reason or tries[record.name] >= RESTART_BIND_TRIES:
                    return reason
                time.sleep(1.0)
                launch(record)
            return None

        for record in chosen:  # etcd first
            launch(record)
        cluster = _handle(directory, state)
        wait_for("kube-apiserver /readyz after a restart", lambda: cluster.readyz() or None,
                 APISERVER_TIMEOUT_S, interval=0.2, fail_fast=gone)
    return cluster


def add_node(cluster: KubeCluster) -> node_mod.KubeNode:
    """Add a node to a running cluster (no-op if it has one); returns once the Node is Ready."""
    with _locked(cluster.state_dir):
        return _add_node_locked(cluster)


def _add_node_locked(cluster: KubeCluster) -> node_mod.KubeNode:
    directory = cluster.state_dir
    state = _read_state(directory)
    if state is None:
        raise ClusterError(f"no cluster recorded in {directory}")
    existing = node_mod.handle(directory, state)
    if existing is not None and all(procs.is_alive(r) for r in node_mod.records(state)):
        log.info("node %s already runs at %s", existing.name, existing.ip)
        return existing
    if state.get("node") is not None:
        log.info("found a stopped or half-started node; cleaning it up")
        _teardown_node(directory, state)
    try:
        return node_mod.start(cluster, state)
    except BaseException:
        log.error("node start failed; undoing it (logs kept in %s)", directory / "logs")
        _teardown_node(directory, state)
        raise


def _teardown_node(directory: Path, state: dict[str, object]) -> None:
    if state.get("node") is None:
        return
    cluster = _handle(directory, state) if state.get("server") else None
    errors = node_mod.teardown(directory, state, cluster)
    _write_state(directory, state)
    if errors:
        raise ClusterError("node teardown incomplete: " + "; ".join(errors))


def _etcd_healthy(url: str, pki: pki_mod.Pki) -> bool | None:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.cert("apiserver-etcd-client")), str(pki.key("apiserver-etcd-client")))
    with urllib.request.urlopen(f"{url}/health", timeout=5, context=ctx) as resp:
        return True if json.loads(resp.read()).get("health") == "true" else None


def _has_default_sa(cluster: KubeCluster) -> bool | None:
    url = f"{cluster.server}/api/v1/namespaces/default/serviceaccounts/default"
    try:
        ctx = admin_ssl_context(cluster.pki_dir)
        with urllib.request.urlopen(url, timeout=5, context=ctx) as resp:
            return True if resp.status == 200 else None
    except OSError:
        return None


def _stop_all(directory: Path) -> None:
    state = _read_state(directory)
    if not state:
        return
    errors = []
    try:
        _teardown_node(directory, state)  # first: it deletes Pods through the API server
    except ClusterError as exc:
        errors.append(str(exc))
    for record in reversed(_records(state)):  # controller-manager, apiserver, then etcd
        try:
            procs.stop(record)
        except ClusterError as exc:
            errors.append(str(exc))
    if errors:
        raise ClusterError("; ".join(errors))
    (directory / STATE_FILE).unlink(missing_ok=True)


def _wipe(directory: Path) -> None:
    """Remove everything inside the state folder (the folder itself stays: it is the lock)."""
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def down() -> None:
    """Stop the processes recorded by ``up`` (by pid) and delete all runtime state."""
    directory = state_dir()
    if not directory.exists():
        log.info("nothing to stop: %s does not exist", directory)
        return
    with _locked(directory):
        if _read_state(directory) is None:
            log.info("no cluster recorded in %s", directory)
        _stop_all(directory)
        _wipe(directory)
        directory.rmdir()
    log.info("stopped; removed %s", directory)
