"""What a node changes on the host, recorded before it changes it, and undone afterwards.

Everything here works from a JSON-able record (``snapshot()``) taken before the node starts:
sysctl values, links, which well-known paths existed, ``kubepods*`` cgroups, iptables chains
and nftables tables. ``undo_*`` put back what the record says was there, and remove only
what was not (never another chain, link or cgroup that was there before).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ._common import ClusterError, log

# Set by the kubelet (kernel.*, vm.*), the CNI bridge plugin (ip_forward) or kube-proxy.
SYSCTLS = (
    "kernel.panic",
    "kernel.panic_on_oops",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    "net.netfilter.nf_conntrack_tcp_be_liberal",
    "net.ipv6.conf.all.forwarding",
    # restored first: writing it resets every interface's forwarding, restored after it
    "net.ipv4.ip_forward",
)
# Written by the kubelet, containerd or the CNI plugins whatever their private roots are.
WELL_KNOWN_PATHS = (
    "/var/lib/kubelet",
    "/var/lib/kubelet/device-plugins",  # when /var/lib/kubelet was there before
    "/var/log/containers",
    "/var/log/pods",
    "/run/containerd",  # containerd-shim sockets (/run/containerd/s) are not configurable in 1.6
    "/run/containerd/s",  # when /run/containerd was there before
    "/var/lib/cni",
    "/run/netns",
    "/opt/containerd",
    "/opt/cni",
    "/usr/libexec/kubernetes",
)
OUR_CHAIN = re.compile(r"^(KUBE-|CNI-)")
IPTABLES = ("iptables", "ip6tables")


def _run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[:500]}")
    return proc


# --- sysctls -----------------------------------------------------------------------------


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctls(keys: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key in keys:
        try:
            out[key] = _sysctl_path(key).read_text().strip()
        except OSError:
            out[key] = None
    return out


def forwarding_keys() -> list[str]:
    """Per-interface IPv4 forwarding of the links there now (ip_forward rewrites them all)."""
    conf = Path("/proc/sys/net/ipv4/conf")
    return sorted(f"net.ipv4.conf.{p.name}.forwarding" for p in conf.iterdir() if p.name != "all")


def restore_sysctls(before: dict[str, str | None]) -> list[str]:
    errors = []
    # ip_forward first (it rewrites every interface), then the rest, per-interface last
    order = sorted(before, key=lambda k: (k != "net.ipv4.ip_forward", ".conf." in k and "all" not in k))
    for key in order:
        value = before[key]
        path = _sysctl_path(key)
        if value is None or not path.exists():
            continue
        with contextlib.suppress(OSError):
            if path.read_text().strip() == value:
                continue
        try:
            path.write_text(value + "\n")
            log.info("restored sysctl %s = %s", key, value)
        except OSError as exc:
            errors.append(f"sysctl {key}: {exc}")
    return errors


# --- links -------------------------------------------------------------------------------


def links() -> list[str]:
    out = _run("ip", "-o", "link", "show").stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line)


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def delete_links(bridges: list[str], before: list[str]) -> list[str]:
    """Delete the ports of ``bridges`` (the CNI's veths) that were not there before, then them."""
    errors = []
    for bridge in bridges:
        brif = Path(f"/sys/class/net/{bridge}/brif")
        ports = sorted(p.name for p in brif.iterdir()) if brif.exists() else []
        for port in ports:
            if port in before:
                continue
            proc = _run("ip", "link", "delete", port, check=False)
            if proc.returncode != 0 and link_exists(port):
                errors.append(f"ip link delete {port}: {proc.stderr.strip()}")
    for bridge in bridges:
        if bridge in before or not link_exists(bridge):
            continue
        proc = _run("ip", "link", "delete", bridge, check=False)
        if proc.returncode != 0 and link_exists(bridge):
            errors.append(f"ip link delete {bridge}: {proc.stderr.strip()}")
        else:
            log.info("deleted link %s", bridge)
    return errors


# --- paths -------------------------------------------------------------------------------


def existing_paths() -> list[str]:
    return [p for p in WELL_KNOWN_PATHS if os.path.lexists(p)]


def remove_new_paths(existed: list[str]) -> list[str]:
    errors = []
    for path in WELL_KNOWN_PATHS:
        if path in existed or not os.path.lexists(path):
            continue
        if mounts_under([path]):
            errors.append(f"{path} still has mounts; left in place")
            continue
        try:
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
            log.info("removed %s (not there before)", path)
        except OSError as exc:
            errors.append(f"remove {path}: {exc}")
    return errors


# --- mounts ------------------------------------------------------------------------------


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(roots: list[str]) -> list[str]:
    """Mount points at or below any of ``roots``, innermost (latest) first."""
    found = []
    prefixes = [r.rstrip("/") for r in roots]
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            found.append(point)
    return list(reversed(found))


def unmount_all(roots: list[str]) -> list[str]:
    """Unmount everything below ``roots`` (a few passes: stacked and propagated mounts)."""
    for _ in range(10):
        points = mounts_under(roots)
        if not points:
            return []
        for point in points:
            if _run("umount", point, check=False).returncode != 0:
                _run("umount", "-l", point, check=False)
    left = mounts_under(roots)
    return [f"still mounted: {', '.join(left[:5])}"] if left else []


# --- cgroups -----------------------------------------------------------------------------


def cgroup_mounts() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0] in ("cgroup", "cgroup2"):
            points.append(_unescape(left.split()[4]))
    return points


def kubepods_cgroups() -> list[str]:
    out = []
    for mount in cgroup_mounts():
        with contextlib.suppress(OSError):
            out += [str(p) for p in Path(mount).iterdir() if p.name.startswith("kubepods") and p.is_dir()]
    return sorted(out)


def cgroup_pids(roots: list[str]) -> set[int]:
    pids: set[int] = set()
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):
                    pids |= {int(x) for x in Path(dirpath, "cgroup.procs").read_text().split()}
    return pids


def remove_cgroups(before: list[str]) -> list[str]:
    """rmdir the ``kubepods*`` trees that were not there before, deepest first."""
    errors = []
    for root in kubepods_cgroups():
        if root in before:
            continue
        dirs = [d for d, _, _ in os.walk(root)]
        for directory in sorted(dirs, key=lambda d: d.count("/"), reverse=True):
            for attempt in range(20):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if attempt == 19:
                        errors.append(f"rmdir {directory}: {exc}")
                    time.sleep(0.1)
    return errors


def kill_pids(pids: set[int], what: str) -> None:
    for pid in sorted(pids):
        if pid == os.getpid():
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            log.info("killed %s pid %d", what, pid)


def shims(address: str) -> dict[int, str]:
    """containerd-shims serving the containerd at ``address`` (and no other): pid -> the shim's
    socket file, ``/run/containerd/s/<sha256 of address/namespace/id>`` in containerd 1.6 (not
    configurable; a killed shim leaves it behind)."""
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            exe = os.readlink(proc / "exe")
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if "containerd-shim" not in os.path.basename(exe):
            continue
        args = [a.decode(errors="replace") for a in argv]
        opts = dict(itertools.pairwise(args))
        if opts.get("-address") != address:
            continue
        key = os.path.join(address, opts.get("-namespace", ""), opts.get("-id", ""))
        found[int(proc.name)] = f"/run/containerd/s/{hashlib.sha256(key.encode()).hexdigest()}"
    return found


def wait_pids_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    left = set(pids)
    while left and time.monotonic() < deadline:
        left = {p for p in left if Path(f"/proc/{p}").exists() and _state(p) not in ("Z", None)}
        if left:
            time.sleep(0.1)
    return left


def _state(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()[0]


# --- iptables / nftables -----------------------------------------------------------------


def iptables_chains() -> dict[str, dict[str, list[str]]]:
    """``{"iptables": {"filter": [chains...]}, "ip6tables": {...}}`` as iptables-save shows them."""
    out: dict[str, dict[str, list[str]]] = {}
    for tool in IPTABLES:
        tables: dict[str, list[str]] = {}
        proc = _run(f"{tool}-save", check=False)
        table = None
        for line in proc.stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
                tables[table] = []
            elif line.startswith(":") and table is not None:
                tables[table].append(line[1:].split()[0])
        out[tool] = tables
    return out


def nft_tables() -> list[str]:
    if shutil.which("nft") is None:
        return []
    proc = _run("nft", "list", "tables", check=False)
    return sorted(line.removeprefix("table ").strip() for line in proc.stdout.splitlines() if line.strip())


def remove_iptables(before: dict[str, dict[str, list[str]]]) -> list[str]:
    """Delete the KUBE-*/CNI-* chains that were not there before and the rules jumping to them."""
    errors = []
    for tool in IPTABLES:
        if shutil.which(tool) is None:
            continue
        for table, chains in iptables_chains().get(tool, {}).items():
            old = set(before.get(tool, {}).get(table, []))
            ours = [c for c in chains if OUR_CHAIN.match(c) and c not in old]
            if not ours:
                continue
            rules = _run(tool, "-w", "-t", table, "-S", check=False).stdout.splitlines()
            for rule in rules:
                parts = shlex.split(rule)  # comments are quoted
                if len(parts) < 2 or parts[0] != "-A" or parts[1] in ours:
                    continue
                if any(parts[i - 1] in ("-j", "-g") and parts[i] in ours for i in range(1, len(parts))):
                    delete = ["-D", *parts[1:]]
                    proc = subprocess.run([tool, "-w", "-t", table, *delete], capture_output=True, text=True)
                    if proc.returncode != 0:
                        errors.append(f"{tool} -t {table} {' '.join(delete)}: {proc.stderr.strip()}")
            for chain in ours:
                _run(tool, "-w", "-t", table, "-F", chain, check=False)
            for chain in ours:
                proc = _run(tool, "-w", "-t", table, "-X", chain, check=False)
                if proc.returncode != 0:
                    errors.append(f"{tool} -t {table} -X {chain}: {proc.stderr.strip()}")
    return errors


def remove_nft_tables(before: list[str]) -> list[str]:
    """Delete nftables tables that appeared and hold no rules now (iptables-nft leaves them)."""
    errors = []
    for table in nft_tables():
        if table in before:
            continue
        family, _, name = table.partition(" ")
        proc = _run("nft", "-j", "list", "table", family, name, check=False)
        try:
            items = json.loads(proc.stdout or "{}").get("nftables", [])
        except ValueError:
            items = []
        rules = [i for i in items if "rule" in i]
        if rules and not name.startswith("kube-"):
            errors.append(f"nft table {table} appeared and holds {len(rules)} rules; left in place")
            continue
        proc = _run("nft", "delete", "table", family, name, check=False)
        if proc.returncode != 0:
            errors.append(f"nft delete table {table}: {proc.stderr.strip()}")
        else:
            log.info("deleted nft table %s (not there before)", table)
    return errors


def snapshot() -> dict[str, object]:
    """The record taken before a node starts (stored in the cluster's state.json)."""
    return {
        "sysctls": read_sysctls([*SYSCTLS, *forwarding_keys()]),
        "links": links(),
        "paths": existing_paths(),
        "cgroups": kubepods_cgroups(),
        "iptables": iptables_chains(),
        "nft_tables": nft_tables(),
    }
