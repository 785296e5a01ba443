"""The local base image: Debian bookworm minbase with python3, made by debootstrap (no registry).

``localhost/shards-base:<key>``, where the key hashes the recipe (suite, variant, package list,
what is stripped). Made once per machine (about 3 minutes) and kept as a docker-archive in the
cache, so a wiped buildah storage re-imports it in seconds.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

from ._common import ImageError, buildah, cache_root, digest, image_exists, log, run, step

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = ("python3", "python3-venv")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Paths removed from the rootfs: apt's caches and lists, docs, man pages, locales.
STRIP = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
         "usr/share/locale", "var/cache/debconf/*-old", "var/log/*")
ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")
RECIPE_VERSION = "1"  # bump when the steps below change what ends up in the image
DEBOOTSTRAP_TIMEOUT_S = 20 * 60
NAME = "localhost/shards-base"


def key() -> str:
    return digest([RECIPE_VERSION, SUITE, VARIANT, *PACKAGES, *STRIP, *ENV], length=12)


def ref() -> str:
    return f"{NAME}:{key()}"


def archive_path() -> Path:
    return cache_root() / "base" / f"shards-base-{key()}.tar"


def debian_mirror() -> str:
    """The first Debian mirror apt uses for ``SUITE`` (one-line and deb822 sources), else deb.debian.org."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.MULTILINE))
                suites = fields.get("Suites", "").split()
                if "deb" in fields.get("Types", "").split() and SUITE in suites:
                    for uri in fields.get("URIs", "").split():
                        if uri.rstrip("/").endswith("/debian"):
                            return uri.rstrip("/")
        else:
            for line in text.splitlines():
                match = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if match and match.group(2) == SUITE and match.group(1).rstrip("/").endswith("/debian"):
                    return match.group(1).rstrip("/")
    return DEFAULT_MIRROR


def ensure_base() -> str:
    """The base image in buildah's storage; returns its reference."""
    image = ref()
    if image_exists(image):
        log.info("base %s: present", image)
        return image
    archive = archive_path()
    if archive.exists():
        buildah("pull", "--quiet", f"docker-archive:{archive}", timeout=600,
                what=f"base {image}: imported {archive}")
        if not image_exists(image):
            raise ImageError(f"{archive} did not hold {image}; delete it to rebuild the base")
        return image
    _make_base(archive)
    return image


def _make_base(archive: Path) -> None:
    image = ref()
    archive.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="base-", dir=archive.parent))
    container: str | None = None
    try:
        rootfs = work / "rootfs"
        mirror = debian_mirror()
        with step(f"base {image}: debootstrap --variant={VARIANT} {SUITE} from {mirror} (1-3 min)"):
            run(["debootstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}", SUITE,
                 str(rootfs), mirror], timeout=DEBOOTSTRAP_TIMEOUT_S, what="debootstrap")
        for pattern in STRIP:
            for path in rootfs.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                    path.mkdir()
                else:
                    path.unlink()
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        python = rootfs / "usr/bin/python3"
        if not python.exists():
            raise ImageError(f"debootstrap made no {python}")
        with step(f"base {image}: commit"):
            container = buildah("from", "--quiet", "--pull=never", "scratch", timeout=60).stdout.strip()
            mount = Path(buildah("mount", container, timeout=60).stdout.strip())
            try:
                run(["cp", "-a", f"{rootfs}/.", f"{mount}/"], timeout=600)
            finally:
                buildah("umount", container, timeout=60)
            config = ["config", "--cmd", "/bin/bash", "--os", "linux", "--arch", "amd64"]
            for env in ENV:
                config += ["--env", env]
            buildah(*config, "--label", f"dev.shards.inputs={key()}", container, timeout=60)
            buildah("commit", "--quiet", "--rm", container, image, timeout=600)
            container = None
        partial = archive.with_suffix(".tar.partial")
        partial.unlink(missing_ok=True)
        started = time.monotonic()
        buildah("push", "--quiet", image, f"docker-archive:{partial}:{image}", timeout=600)
        partial.rename(archive)
        log.info("base %s: archived to %s (%.0f MB) in %.1fs", image, archive,
                 archive.stat().st_size / 1e6, time.monotonic() - started)
    finally:
        if container is not None:
            buildah("rm", container, timeout=60, quiet=True)
        shutil.rmtree(work, ignore_errors=True)
