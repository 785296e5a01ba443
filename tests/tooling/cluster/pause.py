"""The node's sandbox ("pause") image, made here: no registry is reachable.

A few lines of C (sleep until SIGTERM/SIGINT, reap children), linked with ``gcc -static``,
wrapped by hand as a one-layer docker-archive (what ``ctr -n k8s.io images import`` keeps the
name of). Cached next to the pinned binaries, keyed by the source and this recipe.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .. import programs
from ._common import ClusterError, log, tools_cache_root

PAUSE_IMAGE = "localhost/shards-pause:1"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
RECIPE_VERSION = "1"

PAUSE_C = r"""
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    signal(SIGCHLD, reap);
    for (;;) pause();
    return 0;
}
"""


def _key() -> str:
    return hashlib.sha256(f"{RECIPE_VERSION}\0{PAUSE_IMAGE}\0{PAUSE_C}".encode()).hexdigest()[:16]


def archive_path() -> Path:
    return tools_cache_root() / f"pause-{_key()}" / "pause.tar"


def ensure_pause_archive() -> Path:
    """The docker-archive of :data:`PAUSE_IMAGE`, built (about 0.3 s) when not cached."""
    final = archive_path()
    if final.exists():
        return final
    try:
        programs.ensure("gcc", "libc-dev", log=log)
    except programs.ProgramError as exc:
        raise ClusterError(f"the pause image needs gcc and libc6-dev: {exc}") from None
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shards-pause-") as tmp:
        src, binary = Path(tmp) / "pause.c", Path(tmp) / "pause"
        src.write_text(PAUSE_C)
        proc = subprocess.run(
            ["gcc", "-static", "-Os", "-s", "-o", str(binary), str(src)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if proc.returncode != 0:
            raise ClusterError(f"gcc -static failed (is libc6-dev installed?): {proc.stderr[-1500:]}")
        partial = final.with_suffix(f".tar.{os.getpid()}")
        _write_docker_archive(binary.read_bytes(), partial)
        partial.replace(final)
    log.info("built the pause image archive %s", final)
    return final


def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    return info, data


def _write_docker_archive(binary: bytes, dest: Path) -> None:
    layer = _tar_bytes([_file("pause", binary, 0o755)])
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": _ARCH.get(platform.machine(), platform.machine()), "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "shards pause (gcc -static)"}],
    }, sort_keys=True).encode()  # fmt: skip
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [PAUSE_IMAGE], "Layers": ["layer.tar"]}]
    ).encode()
    dest.write_bytes(_tar_bytes([
        _file(config_name, config), _file("layer.tar", layer), _file("manifest.json", manifest),
    ]))  # fmt: skip
