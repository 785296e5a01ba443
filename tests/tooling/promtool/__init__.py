"""promtool, pinned in ``gotools/go.mod`` and built from the Go module proxy the way the cluster's
tools are (tests/tooling/cluster/tools.py): cached outside the work tree in a folder named by a hash
of the pins, built once per machine by the first test that needs it (``ensure``).

``python -m tooling.promtool`` builds it (if needed) and prints its path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from tooling.cluster._common import ClusterError, log, tools_cache_root
from tooling.cluster.tools import acquire_build_lock, go_build_env

MODULE_DIR = Path(__file__).resolve().parent / "gotools"
PIN_FILES = ("go.mod", "go.sum")
BUILD_TIMEOUT_S = 30 * 60
BUILD_FLAGS = ("-trimpath", "-ldflags", "-s -w")


def binary() -> Path:
    """Where promtool for the current pins is (or will be once built)."""
    digest = hashlib.sha256()
    for name in PIN_FILES:
        digest.update(name.encode() + b"\0" + (MODULE_DIR / name).read_bytes() + b"\0")
    digest.update(" ".join(BUILD_FLAGS).encode())
    return tools_cache_root() / f"promtool-{digest.hexdigest()[:16]}" / "promtool"


def ensure() -> Path:
    """The pinned promtool, built first if this machine has not built it yet."""
    target = binary()
    if os.access(target, os.X_OK):
        return target
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent.with_suffix(".lock")
    with lock_path.open("w") as lock:
        acquire_build_lock(lock, lock_path)
        if os.access(target, os.X_OK):  # another process built it while we waited
            return target
        go = shutil.which("go")
        if go is None:
            raise ClusterError("the Go toolchain ('go') is needed to build promtool")
        staging = target.parent.with_name(f"{target.parent.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        log.info("building promtool into %s (cold: a few minutes)", target.parent)
        started = time.monotonic()
        try:
            subprocess.run([go, "build", *BUILD_FLAGS, "-o", f"{staging}{os.sep}", "tool"],
                           cwd=MODULE_DIR, env=go_build_env(), check=True, timeout=BUILD_TIMEOUT_S)
            if not (staging / "promtool").exists():
                raise ClusterError("go build did not produce promtool")
            shutil.rmtree(target.parent, ignore_errors=True)
            staging.rename(target.parent)
        except subprocess.CalledProcessError as exc:
            raise ClusterError(f"go build of promtool failed with exit code {exc.returncode}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"go build of promtool did not finish within {BUILD_TIMEOUT_S}s") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("built promtool in %.0fs", time.monotonic() - started)
    return target
