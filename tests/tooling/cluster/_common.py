"""Shared bits of the local control plane tooling: paths, logging, bounded waits."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

LOG_PREFIX = "[shards-cluster]"
log = logging.getLogger("shards.cluster")

PACKAGE_DIR = Path(__file__).resolve().parent
GO_MODULE_DIR = PACKAGE_DIR / "gotools"
REPO_ROOT = PACKAGE_DIR.parents[2]

T = TypeVar("T")


class ClusterError(RuntimeError):
    """The control plane could not be built, started, reached or stopped."""


def state_dir() -> Path:
    """Runtime state (certificates, kubeconfig, etcd data, pids, logs); git-ignored."""
    return Path(os.environ.get("SHARDS_CLUSTER_DIR", REPO_ROOT / ".cluster")).resolve()


def tools_cache_root() -> Path:
    """Built binaries live outside the work tree so fresh clones on this machine reuse them."""
    default = Path.home() / ".cache" / "shards" / "tools"
    return Path(os.environ.get("SHARDS_TOOLS_CACHE", default)).expanduser().resolve()


def configure_cli_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format=f"{LOG_PREFIX} %(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 0.25,
    fail_fast: Callable[[], str | None] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None, for at most ``timeout`` s.

    ``fail_fast`` is checked between tries; a non-None message aborts the wait at once
    (e.g. the process being waited on died).
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
        except Exception as exc:  # probes are network calls: keep trying until the deadline
            last_error = exc
            result = None
        if result is not None:
            return result
        if fail_fast is not None:
            reason = fail_fast()
            if reason is not None:
                raise ClusterError(f"gave up waiting for {what}: {reason}")
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)
