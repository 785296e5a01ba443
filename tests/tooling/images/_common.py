"""Shared bits of the image tooling: paths, logging, timed commands, the buildah invocation."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shlex
import subprocess
import time
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import programs

LOG_PREFIX = "[shards-images]"
log = logging.getLogger("shards.images")

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parents[2]
LOCK_TIMEOUT_S = 45 * 60


class ImageError(RuntimeError):
    """An image, its base or its wheels could not be built, or the machine cannot build them."""


def cache_root() -> Path:
    """Everything the tooling keeps: base archive, wheels, buildah storage, image archives.

    Outside the work tree (``$SHARDS_IMAGES_CACHE``, default ``~/.cache/shards/images``), so a
    fresh clone on the same machine (CI) reuses it.
    """
    default = Path.home() / ".cache" / "shards" / "images"
    return Path(os.environ.get("SHARDS_IMAGES_CACHE", default)).expanduser().resolve()


def project_version() -> str:
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def configure_cli_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format=f"{LOG_PREFIX} %(asctime)s %(message)s", datefmt="%H:%M:%S"
    )


def digest(parts: Iterable[str | bytes], length: int = 16) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()[:length]


def run(cmd: list[str], *, timeout: float, what: str | None = None, quiet: bool = False,
        env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``, bounded; raise ImageError with the tail of its output when it fails."""
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise ImageError(f"timed out after {timeout:.0f}s: {shlex.join(cmd)}") from exc
    except FileNotFoundError as exc:
        raise ImageError(f"not found: {cmd[0]}") from exc
    if proc.returncode != 0:
        tail = (proc.stdout[-2000:] + "\n" + proc.stderr[-3000:]).strip()
        raise ImageError(f"{what or shlex.join(cmd)} failed (exit {proc.returncode}):\n{tail}")
    if what and not quiet:
        log.info("%s: %.1fs", what, time.monotonic() - started)
    return proc


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    """Log ``what`` and how long it took."""
    started = time.monotonic()
    log.info("%s ...", what)
    yield
    log.info("%s: done in %.1fs", what, time.monotonic() - started)


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    """One build at a time per cache (parallel test sessions or make runs wait for each other)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ImageError(f"another image build held {root / '.lock'} for too long") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_host_tools(tools: tuple[str, ...] = ("images",)) -> None:
    """buildah, debootstrap and runc (tooling.programs' "images"), installed when missing."""
    try:
        programs.ensure(*tools, log=log)
    except programs.ProgramError as exc:
        raise ImageError(str(exc)) from None


def can_build() -> str | None:
    """None when this machine can build the images, else the reason it cannot."""
    if os.geteuid() != 0:
        return "building images needs root (debootstrap, buildah with chroot isolation and vfs storage)"
    return programs.why_not("images")


def buildah(*args: str, timeout: float = 600, what: str | None = None,
            quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """buildah on the tooling's private storage (vfs driver, its own root and runroot)."""
    return run(buildah_cmd(*args), timeout=timeout, what=what, quiet=quiet, env=buildah_env())


def runroot() -> Path:
    """buildah's transient state (locks, mounts) on tmpfs, one per storage root."""
    return Path(f"/run/shards-buildah-{digest([str(cache_root())], length=8)}")


def buildah_cmd(*args: str) -> list[str]:
    return ["buildah", "--root", str(cache_root() / "storage"), "--runroot", str(runroot()),
            "--storage-driver", "vfs", *args]


def buildah_env() -> dict[str, str]:
    return {**os.environ, "BUILDAH_ISOLATION": "chroot", "STORAGE_DRIVER": "vfs"}


def image_exists(ref: str) -> bool:
    proc = subprocess.run(buildah_cmd("inspect", "--type", "image", "--format", "{{.FromImageID}}", ref),
                          capture_output=True, text=True, env=buildah_env(), timeout=120)
    return proc.returncode == 0


def image_label(ref: str, label: str) -> str | None:
    proc = subprocess.run(
        buildah_cmd("inspect", "--type", "image", "--format",
                    f'{{{{index .OCIv1.Config.Labels "{label}"}}}}', ref),
        capture_output=True, text=True, env=buildah_env(), timeout=120,
    )
    if proc.returncode != 0:
        return None
    value = proc.stdout.strip()
    return value if value and value != "<no value>" else None
