"""The images of an earlier commit (the release an upgrade starts from), built once and cached.

``previous_release(commit)`` extracts the commit's tree (``git archive``) into
``<cache>/previous/<commit>/src`` (its chart is there too), builds its shards wheel with the
dependencies the current wheels pin, builds its three images with its own Dockerfiles on the local
base, and exports them as docker-archives named ``<name>:prev-<commit12>``: a tag of their own, so
they never clash with the working tree's ``<name>:<version>``/``:dev``. Once
``<cache>/previous/<commit>/.complete`` exists nothing is built again (the images are removed
from buildah's storage after export: the archives are the cache).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from . import base, wheels
from ._common import REPO_ROOT, ImageError, buildah, cache_lock, cache_root, ensure_host_tools, log, run, step
from .builder import BUILD_TIMEOUT_S, IMAGES, ImageSpec, prepare_context


@dataclass(frozen=True)
class PreviousRelease:
    commit: str
    tag: str                   # the images' tag: prev-<commit12>
    chart: Path                # the commit's tree, its Helm chart at the root
    archives: dict[str, Path]  # {"shards-worker:prev-<commit12>": docker-archive, ...}


def resolve(commit: str) -> str:
    done = run(["git", "-C", str(REPO_ROOT), "rev-parse", "--verify", f"{commit}^{{commit}}"], timeout=60)
    return done.stdout.strip()


def previous_release(commit: str) -> PreviousRelease:
    """The chart and image archives of `commit`, built if this cache has none yet."""
    full = resolve(commit)
    tag = f"prev-{full[:12]}"
    folder = cache_root() / "previous" / full
    src = folder / "src"
    complete = folder / ".complete"
    if not complete.exists():
        ensure_host_tools()
        with cache_lock():
            if not complete.exists():
                _build(full, tag, folder, src)
    archives = {ref: folder / file for ref, file in json.loads(complete.read_text()).items()}
    return PreviousRelease(full, tag, src, archives)


def _build(commit: str, tag: str, folder: Path, src: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    src.mkdir(parents=True)
    with step(f"previous release {commit[:12]}: git archive"):
        archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar", commit],
                                 capture_output=True, check=True, timeout=120)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tree:
            tree.extractall(src, filter="data")
    wheel_dir = _wheels(src, folder / "wheels")
    base_ref = base.ensure_base()
    archives: dict[str, str] = {}
    for spec in IMAGES:  # the same three images, from the commit's Dockerfiles and files
        old = ImageSpec(spec.name, src / spec.dockerfile.relative_to(REPO_ROOT),
                        tuple(src / path.relative_to(REPO_ROOT) for path in spec.files), spec.wheels, spec.on)
        parent = base_ref if old.on is None else f"localhost/{old.on}:{tag}"
        ref = f"localhost/{old.name}:{tag}"
        context = prepare_context(folder / "contexts" / old.name, old, wheel_dir)
        with step(f"{ref}: buildah bud"):
            buildah("bud", "--isolation", "chroot", "--pull=never", "--layers=false",
                    "--build-arg", f"BASE={parent}", "-f", str(old.dockerfile), "-t", ref, str(context),
                    timeout=BUILD_TIMEOUT_S)
        shutil.rmtree(context, ignore_errors=True)
        file = f"{old.name}.tar"
        buildah("push", "--quiet", ref, f"docker-archive:{folder / file}:{old.name}:{tag}", timeout=600)
        archives[f"{old.name}:{tag}"] = file
    for spec in reversed(IMAGES):  # the archives are the cache; buildah's vfs copies are large
        buildah("rmi", f"localhost/{spec.name}:{tag}", timeout=300)
    shutil.rmtree(folder / "wheels", ignore_errors=True)
    shutil.rmtree(folder / "contexts", ignore_errors=True)
    (folder / ".complete").write_text(json.dumps(archives, indent=2) + "\n")
    log.info("previous release %s: %s", commit[:12], ", ".join(archives))


def _wheels(src: Path, out: Path) -> Path:
    """The commit's shards wheel beside the current dependency wheels (same pins: the images
    differ only in Shards itself)."""
    _, current = wheels.ensure_wheels()
    out.mkdir(parents=True)
    for wheel in current.glob("*.whl"):
        if not wheels.is_project_wheel(wheel):
            shutil.copy2(wheel, out / wheel.name)
    with step(f"wheel of {src}"):
        run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--wheel-dir", str(out), str(src)], timeout=wheels.PIP_TIMEOUT_S, cwd=out)
    if not any(wheels.is_project_wheel(p) for p in out.glob("*.whl")):  # the commit's name, old or new
        raise ImageError(f"pip wheel made no wheel of Shards from {src}")
    return out
