"""Build the pinned kube-apiserver, kubectl, kube-controller-manager, etcd, helm and the node's
kubelet, kube-scheduler and kube-proxy.

The pins are the Go module in ``gotools/`` (go.mod + go.sum). Binaries are cached outside
the work tree under ``$SHARDS_TOOLS_CACHE`` (default ``~/.cache/shards/tools``) in a folder
named by a hash of the pins and build flags, so they are built once per machine and reused
by every clone until a pin changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO

from ._common import GO_MODULE_DIR, ClusterError, log, tools_cache_root

BINARIES = (
    "etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm",
    # the node (``up --node``): same k8s.io/kubernetes module
    "kubelet", "kube-scheduler", "kube-proxy",
)  # fmt: skip
# Everything that goes into the build; a change to any of these gives a new cache key.
PIN_FILES = ("go.mod", "go.sum", "cmd/etcd/main.go")
BUILD_TIMEOUT_S = 75 * 60
LOCK_TIMEOUT_S = BUILD_TIMEOUT_S + 60
BUILD_FLAGS_VERSION = "1"  # bump when the go build invocation below changes


def module_version(module: str) -> str:
    """The version of ``module`` pinned in gotools/go.mod."""
    text = (GO_MODULE_DIR / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
    if match is None:
        raise ClusterError(f"{module} is not pinned in {GO_MODULE_DIR / 'go.mod'}")
    return match.group(1)


def pins() -> dict[str, str]:
    return {
        "kubernetes": module_version("k8s.io/kubernetes"),
        "etcd": module_version("go.etcd.io/etcd/server/v3"),
        "helm": module_version("helm.sh/helm/v3"),
    }


def _ldflags() -> str:
    versions = pins()
    kube = versions["kubernetes"]
    major, minor = kube.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={kube}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    flags += [
        f"-X helm.sh/helm/v3/internal/version.version={versions['helm']}",
        "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
    ]
    # As helm's own release build does: without a cluster (`helm template`, `helm lint`) helm
    # assumes this Kubernetes version, else 1.20, which the chart's kubeVersion refuses.
    for pkg in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        flags += [f"-X {pkg}.k8sVersionMajor={major}", f"-X {pkg}.k8sVersionMinor={minor}"]
    return " ".join(flags)


def pins_hash() -> str:
    digest = hashlib.sha256()
    for name in PIN_FILES:
        digest.update(name.encode() + b"\0" + (GO_MODULE_DIR / name).read_bytes() + b"\0")
    digest.update(f"flags={BUILD_FLAGS_VERSION} {_ldflags()}".encode())
    return digest.hexdigest()[:16]


def bin_dir() -> Path:
    """Where the binaries for the current pins are (or will be once built)."""
    return tools_cache_root() / pins_hash() / "bin"


def is_built(directory: Path | None = None) -> bool:
    directory = directory or bin_dir()
    return all(os.access(directory / name, os.X_OK) for name in BINARIES)


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ClusterError("the Go toolchain ('go') is needed to build the test tools")
    return go


def go_build_env() -> dict[str, str]:
    """How every pinned tool is built: static, with this machine's Go, only from go.mod/go.sum."""
    return dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-mod=readonly -buildvcs=false")


def _build_into(target: Path) -> float:
    env = go_build_env()
    cmd = [
        _go(), "build", "-trimpath", "-ldflags", _ldflags(),
        "-o", f"{target}{os.sep}", "tool", "./cmd/etcd",
    ]  # fmt: skip
    log.info("building %s into %s (cold: several minutes)", ", ".join(BINARIES), target)
    started = time.monotonic()
    try:
        subprocess.run(cmd, cwd=GO_MODULE_DIR, env=env, check=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.CalledProcessError as exc:
        raise ClusterError(f"go build failed with exit code {exc.returncode}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"go build did not finish within {BUILD_TIMEOUT_S}s") from exc
    return time.monotonic() - started


def ensure_tools() -> Path:
    """Return the bin folder of the pinned tools, building them first if needed."""
    final = bin_dir()
    if is_built(final):
        log.info("tools up to date in %s", final)
        return final
    key_dir = final.parent
    key_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = key_dir.parent / f"{key_dir.name}.lock"
    with lock_path.open("w") as lock:
        acquire_build_lock(lock, lock_path)
        if is_built(final):  # another process built them while we waited
            log.info("tools built by another process in %s", final)
            return final
        staging = key_dir.parent / f"{key_dir.name}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            seconds = _build_into(staging / "bin")
            missing = [n for n in BINARIES if not (staging / "bin" / n).exists()]
            if missing:
                raise ClusterError(f"go build did not produce {', '.join(missing)}")
            info = {"pins": pins(), "build_seconds": round(seconds, 1), "built_at": time.time()}
            (staging / "pins.json").write_text(json.dumps(info, indent=2) + "\n")
            shutil.rmtree(key_dir, ignore_errors=True)
            staging.rename(key_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("built tools in %.0fs into %s", seconds, final)
    return final


def acquire_build_lock(lock: IO[str], lock_path: Path) -> None:
    """Hold `lock` (a file of `lock_path`) exclusively: one build of a set of pins at a time."""
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    announced = False
    while True:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if not announced:
                log.info("waiting for another build holding %s", lock_path)
                announced = True
            if time.monotonic() >= deadline:
                raise ClusterError(f"timed out waiting for build lock {lock_path}") from None
            time.sleep(2)
