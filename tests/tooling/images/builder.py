"""Build the three images with buildah and export each as a docker-archive.

- ``shards-worker`` (deploy/images/worker/Dockerfile) and ``shards-operator``
  (deploy/images/operator/Dockerfile) on the local base, from a context of wheels only;
- ``shards-example-sheep`` (examples/Dockerfile) on the worker image, from a context holding
  examples/sheep.py only.

Each is tagged ``localhost/<name>:<version>`` (pyproject's version) and ``localhost/<name>:dev``,
and labelled ``dev.shards.inputs=<key>``: a hash of its Dockerfile, its context and the key of what
it is built on. An image whose label matches its inputs, with an archive of the same key, is not
rebuilt. Archives are ``<cache>/archives/<name>.tar``, named ``<name>:<version>`` inside (what
``ctr -n k8s.io images import`` keeps, as ``docker.io/library/<name>:<version>``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from . import base, wheels
from ._common import (
    REPO_ROOT,
    ImageError,
    buildah,
    cache_lock,
    cache_root,
    digest,
    ensure_host_tools,
    image_exists,
    image_label,
    log,
    project_version,
    step,
)

LABEL = "dev.shards.inputs"
RECIPE_VERSION = "1"
BUILD_TIMEOUT_S = 20 * 60


@dataclass(frozen=True)
class ImageSpec:
    name: str
    dockerfile: Path
    files: tuple[Path, ...] = ()  # copied into the context besides the wheels
    wheels: bool = True           # the context holds wheels/
    on: str | None = None         # built on another of these images instead of the local base


IMAGES = (
    ImageSpec("shards-worker", REPO_ROOT / "deploy/images/worker/Dockerfile"),
    ImageSpec("shards-operator", REPO_ROOT / "deploy/images/operator/Dockerfile"),
    ImageSpec("shards-example-sheep", REPO_ROOT / "examples/Dockerfile",
              files=(REPO_ROOT / "examples/sheep.py",), wheels=False, on="shards-worker"),
)


@dataclass(frozen=True)
class Result:
    name: str
    ref: str             # localhost/<name>:<version>
    key: str
    archive: Path
    action: str          # "unchanged", "built", "archived"
    seconds: float


def refs(name: str) -> tuple[str, str]:
    return f"localhost/{name}:{project_version()}", f"localhost/{name}:dev"


def archive_name(name: str) -> str:
    """The reference inside the docker-archive: what a Pod's ``image:`` names."""
    return f"{name}:{project_version()}"


def archives_dir() -> Path:
    return cache_root() / "archives"


def _index_path() -> Path:
    return archives_dir() / "index.json"


def _read_index() -> dict[str, dict[str, str]]:
    try:
        data: dict[str, dict[str, str]] = json.loads(_index_path().read_text())
        return data
    except (OSError, ValueError):
        return {}


def _write_index(index: dict[str, dict[str, str]]) -> None:
    path = _index_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def prepare_context(dest: Path, spec: ImageSpec, wheel_dir: Path | None) -> Path:
    """Fill ``dest`` with exactly what ``spec``'s Dockerfile copies (never the repository root)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if spec.wheels:
        if wheel_dir is None:
            raise ImageError(f"{spec.name} needs wheels")
        (dest / "wheels").mkdir()
        for wheel in sorted(wheel_dir.glob("*.whl")):
            try:
                os.link(wheel, dest / "wheels" / wheel.name)
            except OSError:
                shutil.copy2(wheel, dest / "wheels" / wheel.name)
    for path in spec.files:
        shutil.copy2(path, dest / path.name)
    return dest


def _key(spec: ImageSpec, base_key: str, wheels_key: str) -> str:
    parts: list[str | bytes] = [RECIPE_VERSION, spec.name, project_version(), spec.dockerfile.read_bytes(),
                                base_key]
    if spec.wheels:
        parts.append(wheels_key)
    for path in spec.files:
        parts += [path.name, path.read_bytes()]
    return digest(parts)


def build(only: tuple[str, ...] = ()) -> list[Result]:
    """Base, wheels and images, each only when its inputs changed; returns what happened per image."""
    total = time.monotonic()
    ensure_host_tools()
    results: list[Result] = []
    with cache_lock():
        with step("base image"):
            base_ref = base.ensure_base()
        with step("wheels"):
            wheels_key, wheel_dir = wheels.ensure_wheels()
        index = _read_index()
        keys: dict[str, str] = {}
        for spec in IMAGES:
            needed = spec.name in only or any(s.on == spec.name and s.name in only for s in IMAGES)
            if only and not needed:
                continue
            started = time.monotonic()
            if spec.on is None:
                parent_ref, parent_key = base_ref, base.key()
            else:
                parent_ref, parent_key = refs(spec.on)[0], keys[spec.on]
            key = _key(spec, parent_key, wheels_key)
            keys[spec.name] = key
            ref = refs(spec.name)[0]
            archive = archives_dir() / f"{spec.name}.tar"
            action = "unchanged"
            if image_label(ref, LABEL) != key:
                _build_one(spec, key, parent_ref, wheel_dir)
                action = "built"
            entry = index.get(spec.name, {})
            if not archive.exists() or entry.get("key") != key or entry.get("ref") != archive_name(spec.name):
                _export(ref, spec.name, archive)
                index[spec.name] = {"key": key, "ref": archive_name(spec.name), "file": archive.name}
                _write_index(index)
                action = "built" if action == "built" else "archived"
            seconds = time.monotonic() - started
            log.info("%s (%s): %s in %.1fs", ref, key, action, seconds)
            results.append(Result(spec.name, ref, key, archive, action, seconds))
        if any(r.action == "built" for r in results):
            buildah("rmi", "--prune", timeout=600, what="removed dangling images", quiet=False)
    log.info("images: %s; total %.1fs",
             ", ".join(f"{r.name} {r.action}" for r in results), time.monotonic() - total)
    return results


def _build_one(spec: ImageSpec, key: str, parent_ref: str, wheel_dir: Path) -> None:
    ref, dev = refs(spec.name)
    if not image_exists(parent_ref):
        raise ImageError(f"{spec.name} is built on {parent_ref}, which is not in the storage")
    context = prepare_context(cache_root() / "contexts" / spec.name, spec, wheel_dir)
    try:
        with step(f"{ref}: buildah bud -f {spec.dockerfile.relative_to(REPO_ROOT)}"):
            buildah("bud", "--isolation", "chroot", "--pull=never", "--layers=false",
                    "--build-arg", f"BASE={parent_ref}", "--label", f"{LABEL}={key}",
                    "-f", str(spec.dockerfile), "-t", ref, "-t", dev, str(context),
                    timeout=BUILD_TIMEOUT_S)
    finally:
        shutil.rmtree(context, ignore_errors=True)


def _export(ref: str, name: str, archive: Path) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".tar.partial")
    partial.unlink(missing_ok=True)
    started = time.monotonic()
    buildah("push", "--quiet", ref, f"docker-archive:{partial}:{archive_name(name)}", timeout=600)
    partial.replace(archive)
    log.info("%s: docker-archive %s (%.0f MB) in %.1fs", ref, archive, archive.stat().st_size / 1e6,
             time.monotonic() - started)


def image_archives(build_missing: bool = True) -> dict[str, Path]:
    """``{"shards-worker:0.1.0": Path(...tar), ...}``: docker-archives for ``ctr images import``.

    Builds (a no-op when nothing changed) unless ``build_missing`` is false, in which case only
    the archives already made are listed.
    """
    if build_missing:
        build()
    out: dict[str, Path] = {}
    for name, entry in _read_index().items():
        path = archives_dir() / entry["file"]
        if path.exists() and any(spec.name == name for spec in IMAGES):
            out[entry["ref"]] = path
    return out


def export_context(dest: Path) -> Path:
    """The build context for docker/podman: ``dest/wheels/`` (for the worker and operator images)."""
    _, wheel_dir = wheels.ensure_wheels()
    dest = dest.resolve()
    if dest.exists() and any(dest.iterdir()) and not (dest / "wheels").exists():
        raise ImageError(f"{dest} exists and is not a context made by this command; pick an empty folder")
    (dest / "wheels").mkdir(parents=True, exist_ok=True)
    for old in (dest / "wheels").glob("*.whl"):
        old.unlink()
    for wheel in sorted(wheel_dir.glob("*.whl")):
        shutil.copy2(wheel, dest / "wheels" / wheel.name)
    return dest
