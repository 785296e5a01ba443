"""Wheels for the images, built on the host (the image builds have no network).

``pip wheel '<repo>[operator,dashboard]'`` builds the project's wheel (the distribution
``shards-process-manager``) from the work tree and fetches every dependency as a wheel, constrained
to the versions installed in the venv running this (what the tests ran with). The host is Linux
x86_64 CPython 3.11 like the images, so its wheels fit. Cached in ``<cache>/wheels/<key>/``, the
key hashing pyproject.toml, the packages' source files, the constraints and the interpreter tag.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import sys
import sysconfig
import tempfile
import tomllib
from pathlib import Path

from ._common import REPO_ROOT, ImageError, cache_root, digest, log, run, step

# The distribution pyproject.toml names (the import packages and the command are `shards`, ...).
DISTRIBUTION = "shards-process-manager"
# The union the images need: the worker installs the distribution, the operator
# `shards-process-manager[operator,dashboard]`.
EXTRAS = "operator,dashboard"
# The file name of the project's own wheel starts with one of these: the distribution's name as a
# wheel spells it, or `shards-`, the name before the rename (an earlier commit's wheel: previous.py).
PROJECT_WHEEL_PREFIXES = (DISTRIBUTION.replace("-", "_") + "-", "shards-")
RECIPE_VERSION = "1"
PIP_TIMEOUT_S = 15 * 60


def package_dirs() -> list[Path]:
    """The folders of [tool.hatch.build.targets.wheel] packages (what goes into the wheel)."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        packages = tomllib.load(f)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return [REPO_ROOT / p for p in packages]


def source_files() -> list[Path]:
    files = [REPO_ROOT / "pyproject.toml"]
    for folder in package_dirs():
        files += sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                        and p.suffix not in (".pyc", ".pyo"))
    return files


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def is_project_wheel(path: Path) -> bool:
    """Whether ``path`` is the project's own wheel (not one of its dependencies')."""
    return path.name.startswith(PROJECT_WHEEL_PREFIXES)


def needed() -> set[str]:
    """Canonical names of the distributions ``shards-process-manager[EXTRAS]`` needs, transitively,
    as installed in the running venv (the project itself excluded)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # not every venv has it; pip, which this module runs anyway, does
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    todo: list[tuple[str, frozenset[str]]] = [(DISTRIBUTION, frozenset(EXTRAS.split(",")))]
    visited: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in visited:
            continue
        visited.add((name, extras))
        try:
            requires = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            if name == DISTRIBUTION:  # else nothing would be pinned, silently
                raise ImageError(f"{DISTRIBUTION} is not installed in {sys.prefix}: make venv") from None
            continue  # not installed here: pip wheel resolves it unconstrained
        for text in requires:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in extras or {""}):
                continue
            todo.append((_canonical(req.name), frozenset(req.extras)))
    return {name for name, _ in visited} - {DISTRIBUTION}


def constraints() -> str:
    """``name==version`` of what the running venv has installed of :func:`needed`: the images get
    the versions the tests ran with, and tools the images do not hold (pytest, ruff; absent from
    `make demo`'s venv) do not change the key."""
    proc = run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], timeout=120)
    keep = needed()
    lines = [line for line in proc.stdout.splitlines()
             if re.match(r"^[A-Za-z0-9._-]+==\S+$", line) and _canonical(line.split("==")[0]) in keep]
    return "\n".join(sorted(lines, key=str.lower)) + "\n"


def key(constraint_text: str | None = None) -> str:
    text = constraints() if constraint_text is None else constraint_text
    parts: list[str | bytes] = [RECIPE_VERSION, EXTRAS, text, sysconfig.get_platform(),
                                sys.implementation.cache_tag]
    for path in source_files():
        parts += [str(path.relative_to(REPO_ROOT)), path.read_bytes()]
    return digest(parts)


def ensure_wheels() -> tuple[str, Path]:
    """(key, folder of wheels), building them when the inputs changed."""
    text = constraints()
    wheels_key = key(text)
    folder = cache_root() / "wheels" / wheels_key
    if (folder / ".complete").exists():
        log.info("wheels %s: cached (%d files)", wheels_key, len(list(folder.glob("*.whl"))))
        return wheels_key, folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wheels-", dir=folder.parent))
    try:
        with step(f"wheels {wheels_key}: pip wheel {DISTRIBUTION}[{EXTRAS}] and its dependencies"):
            (work / "constraints.txt").write_text(text)
            out = work / "out"
            run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                 "--wheel-dir", str(out), "--constraint", str(work / "constraints.txt"),
                 f"{REPO_ROOT}[{EXTRAS}]"], timeout=PIP_TIMEOUT_S, cwd=work)
            built = sorted(out.glob("*.whl"))
            if not any(is_project_wheel(p) for p in built):
                raise ImageError(f"pip wheel made no {DISTRIBUTION} wheel in {out}")
            (out / "constraints.txt").write_text(text)
            (out / ".complete").write_text("\n".join(p.name for p in built) + "\n")
            shutil.rmtree(folder, ignore_errors=True)
            out.rename(folder)
        log.info("wheels %s: %d files, %.1f MB", wheels_key, len(built),
                 sum(p.stat().st_size for p in folder.glob("*.whl")) / 1e6)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _prune(folder.parent, keep=folder)
    return wheels_key, folder


def _prune(parent: Path, keep: Path, count: int = 3) -> None:
    """Keep the newest ``count`` wheel sets (older trees' wheels are small but add up)."""
    sets = sorted((p for p in parent.iterdir() if p.is_dir() and (p / ".complete").exists()),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in sets[count:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)
