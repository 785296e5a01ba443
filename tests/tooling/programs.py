"""Every program the tests, the demo, the bench and the tooling run, and who installs it.

A program comes with the machine (the image of this machine kind: Go, Java with Maven, gcc,
iproute2, git ...) or from a Debian package that the project installs itself, with
:func:`ensure`, before its first use. This table is the one place that says which; nothing else
runs ``apt-get``. ``tests/unit/test_programs.py`` fails when code names a program that is not in
it, and ``make fresh-check`` purges the project's packages to prove each is installed in time.

``python -m tooling.programs`` prints the table (``tests/tooling/README.md`` holds it);
``python -m tooling.programs ensure GROUP|PROGRAM ...`` installs what is missing. Standard
library only: ``make fresh-check`` runs it before any venv exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

APT_TIMEOUT_S = 1200
APT_LOCK = Path("/run/lock/shards-apt.lock")


class ProgramError(RuntimeError):
    """A program is missing and cannot be installed here (not root, no apt-get, apt failed)."""


@dataclass(frozen=True)
class Program:
    """One program: how it is found, which Debian package has it, and who puts it there."""

    name: str
    package: str
    by_project: bool  # False: the machine's image has it (never purged by make fresh-check)
    used_for: str
    installed_by: str  # the fixture, target or function that runs ensure() before first use
    path: str = ""  # a file outside PATH (CNI plugins); empty: ``name`` looked up on PATH

    def location(self) -> str | None:
        if self.path:
            return self.path if os.path.exists(self.path) else None
        return shutil.which(self.name, path=_search_path())


NODE = "node fixture (tests/e2e/conftest.py `node_host`), `make cluster-up NODE=1`"
IMAGES = "image build (`tooling.images`: `make images`, `kube_node`, tests/e2e/test_images.py)"
BROWSER = "`make browser` (before the integration tests), `ensure_chromium()` in dashboard_harness"
IMAGE = "the machine's image"

PROGRAMS: tuple[Program, ...] = (
    # The local node (tests/tooling/cluster/node.py, host.py; tests/e2e/node_env.py).
    Program("containerd", "containerd", True, "the node's container runtime", NODE),
    Program("ctr", "containerd", True, "loading images into the node", NODE),
    Program("containerd-shim-runc-v2", "containerd", True, "the node's Pod sandboxes", NODE),
    Program("runc", "runc", True, "the node's containers; running built images (tests)", f"{NODE}; {IMAGES}"),
    Program("bridge", "containernetworking-plugins", True, "the node's pod network (CNI)", NODE,
            path="/usr/lib/cni/bridge"),
    Program("host-local", "containernetworking-plugins", True, "the node's pod addresses (CNI)", NODE,
            path="/usr/lib/cni/host-local"),
    Program("portmap", "containernetworking-plugins", True, "the node's hostPorts (CNI)", NODE,
            path="/usr/lib/cni/portmap"),
    Program("iptables", "iptables", True, "kube-proxy, portmap; undoing their chains", NODE),
    Program("iptables-save", "iptables", True, "recording the host's chains before a node", NODE),
    Program("ip6tables", "iptables", True, "kube-proxy; undoing its chains", NODE),
    Program("ip6tables-save", "iptables", True, "recording the host's chains before a node", NODE),
    Program("nft", "nftables", True, "removing the tables iptables-nft leaves behind", NODE),
    Program("conntrack", "conntrack", True, "kube-proxy", NODE),
    # Container images (tests/tooling/images/).
    Program("buildah", "buildah", True, "building the images", IMAGES),
    Program("debootstrap", "debootstrap", True, "the images' Debian base", IMAGES),
    # The dashboard's browser tests (tests/integration/test_dashboard_browser.py).
    Program("chromium", "chromium", True, "the dashboard's browser tests", BROWSER),
    Program("chromedriver", "chromium-driver", True, "the dashboard's browser tests", BROWSER),
    # What this machine kind ships with (/work/.library/env): used, never installed or purged.
    Program("go", "", False, "building the cluster's binaries and promtool", IMAGE),
    Program("java", "openjdk-17-jre-headless", False, "mongo-java-server", IMAGE),
    Program("mvn", "maven", False, "building mongo-java-server's launcher", IMAGE),
    Program("gcc", "gcc", False, "the node's static pause image", f"{IMAGE}; {NODE}"),
    Program("libc-dev", "libc6-dev", False, "static linking of the pause image", f"{IMAGE}; {NODE}",
            path="/usr/include/stdio.h"),
    Program("git", "git", False, "versions and fresh clones (bench, fresh-check)", IMAGE),
    Program("make", "make", False, "the developer entry points", IMAGE),
    Program("ip", "iproute2", False, "the node's links and addresses; host snapshots", IMAGE),
    Program("mount", "mount", False, "host snapshots' private roots", IMAGE),
    Program("umount", "mount", False, "undoing the node's and the image build's mounts", IMAGE),
    Program("setsid", "util-linux", False, "the demos' children in their own sessions", IMAGE),
    Program("sleep", "coreutils", False, "a stand-in process in the cluster harness' tests", IMAGE),
    Program("javac", "openjdk-17-jdk-headless", False, "building mongo-java-server's launcher", IMAGE),
    Program("cp", "coreutils", False, "copying the image build's base", IMAGE),
    Program("chmod", "coreutils", False, "make fresh-check (Go's read-only module cache)", IMAGE),
    Program("bash", "bash", False, "make fresh-check running .ci/run", IMAGE),
    Program("apt-get", "apt", False, "installing (this module) and purging (fresh-check) packages", IMAGE),
    Program("dpkg-query", "dpkg", False, "make fresh-check: which project packages are installed", IMAGE),
    Program("apt-mark", "apt", False, "make fresh-check: which packages were dependencies only", IMAGE),
)

BY_NAME = {program.name: program for program in PROGRAMS}
GROUPS: dict[str, tuple[str, ...]] = {
    "node": ("containerd", "ctr", "containerd-shim-runc-v2", "runc", "bridge", "host-local", "portmap",
             "iptables", "iptables-save", "ip6tables", "ip6tables-save", "nft", "conntrack",
             "gcc", "libc-dev"),
    "images": ("buildah", "debootstrap", "runc"),
    "browser": ("chromium", "chromedriver"),
}


def project_packages() -> list[str]:
    """The Debian packages the project installs itself (what ``make fresh-check`` purges)."""
    return sorted({p.package for p in PROGRAMS if p.by_project})


def _search_path() -> str:
    # apt's programs live in sbin folders, which a non-login PATH may lack.
    path = os.environ.get("PATH", "")
    extra = [d for d in ("/usr/local/sbin", "/usr/sbin", "/sbin") if d not in path.split(os.pathsep)]
    return os.pathsep.join([path, *extra]) if path else os.pathsep.join(extra)


def _expand(names: tuple[str, ...]) -> list[Program]:
    programs: list[Program] = []
    for name in names:
        if name in GROUPS:
            programs += [BY_NAME[n] for n in GROUPS[name]]
        elif name in BY_NAME:
            programs.append(BY_NAME[name])
        else:
            raise ProgramError(f"unknown program or group {name!r} (tests/tooling/programs.py lists them)")
    return programs


def missing(*names: str) -> list[Program]:
    """The programs (or groups) of ``names`` that are not installed."""
    seen: dict[str, Program] = {}
    for program in _expand(names):
        if program.location() is None:
            seen[program.name] = program
    return list(seen.values())


def why_not(*names: str) -> str | None:
    """None when ``names`` are installed or :func:`ensure` can install them, else why not."""
    absent = missing(*names)
    if not absent:
        return None
    listed = ", ".join(p.name for p in absent)
    if any(not p.package for p in absent):
        return f"{listed} missing: the machine's image should have it (no package here provides it)"
    if os.geteuid() != 0:
        return f"{listed} missing and not root (as root: apt-get install {' '.join(_packages(absent))})"
    if shutil.which("apt-get", path=_search_path()) is None:
        return f"{listed} missing and no apt-get to install them"
    return None


def _packages(programs: list[Program]) -> list[str]:
    return sorted({p.package for p in programs})


@contextlib.contextmanager
def _apt_lock() -> Iterator[None]:
    """One install at a time from this tooling (pytest runs, make targets); apt's own lock waits too."""
    APT_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with APT_LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure(*names: str, log: logging.Logger | None = None) -> list[str]:
    """Install the Debian packages of the missing programs among ``names``; returns the packages.

    ``apt-get install`` first, ``apt-get update`` and again when it fails (a fresh machine has no
    or stale package lists). Raises :class:`ProgramError` in one line when that cannot work.
    """
    if not missing(*names):
        return []
    reason = why_not(*names)
    if reason is not None:
        raise ProgramError(reason)
    with _apt_lock():
        absent = missing(*names)  # another process may have installed them meanwhile
        if not absent:
            return []
        packages = _packages(absent)
        _say(log, f"installing {' '.join(packages)} (apt-get) for {', '.join(p.name for p in absent)}")
        started = time.monotonic()
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "PATH": _search_path()}
        argv = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
                "-o", "DPkg::Lock::Timeout=600", *packages]  # fmt: skip
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
        if proc.returncode != 0:
            subprocess.run(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=600"], env=env,
                           capture_output=True, timeout=APT_TIMEOUT_S, check=False)  # fmt: skip
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
        still = missing(*names)
        if proc.returncode != 0 or still:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            absent_now = ", ".join(p.name for p in still) or "none"
            raise ProgramError(f"apt-get install {' '.join(packages)} failed (still missing: {absent_now}): "
                               f"{detail[0]}")
        _say(log, f"installed {' '.join(packages)} in {time.monotonic() - started:.0f}s")
        return packages


def _say(log: logging.Logger | None, message: str) -> None:
    if log is not None:
        log.info("%s", message)
    else:
        print(f"[shards-programs] {message}", file=sys.stderr, flush=True)


def markdown_table() -> str:
    """The table ``tests/tooling/README.md`` shows (a unit test keeps the two equal)."""
    rows = ["| program | Debian package | installed by | used for |", "| --- | --- | --- | --- |"]
    for p in PROGRAMS:
        where = f"`{p.path}`" if p.path else f"`{p.name}`"
        package = p.package or "(not a Debian package)"
        rows.append(f"| {where} | {package} | {p.installed_by} | {p.used_for} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    if not argv:
        print(markdown_table(), end="")
        return 0
    if argv[0] == "packages":
        print(" ".join(project_packages()))
        return 0
    if argv[0] == "ensure" and argv[1:]:
        try:
            ensure(*argv[1:])
        except ProgramError as exc:
            print(f"tooling.programs: {exc}", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m tooling.programs [packages | ensure GROUP|PROGRAM ...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
