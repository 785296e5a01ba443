"""The layout is the architecture: the SDK and domain are plain Python, and only the store
imports pymongo. Checked on the source, so a stray import anywhere fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {
    "sdk/shards": {"pymongo", "bson", "kopf", "kubernetes", "shards_store", "shards_worker",
                   "shards_controller", "shards_cli"},
    "controller/shards_controller": {"pymongo", "bson", "kopf", "kubernetes", "shards_worker", "shards_cli"},
    "worker/shards_worker": {"pymongo", "bson", "kopf", "kubernetes", "shards_controller", "shards_cli"},
    "cli/shards_cli": {"pymongo", "bson", "kopf", "kubernetes"},
    "store/shards_store": {"kopf", "kubernetes", "shards_worker", "shards_controller", "shards_cli"},
}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_package_imports_stay_in_their_layer(package: str) -> None:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no sources under {package}"
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_roots(path) & PACKAGES[package]) for path in files
    }
    assert {path: bad for path, bad in offenders.items() if bad} == {}


def test_no_top_level_package_shadows_the_standard_library_operator() -> None:
    assert not (REPO / "operator" / "__init__.py").exists()


def test_modules_stay_small() -> None:
    sources = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]
    too_long = {str(p.relative_to(REPO)): n for p in sources if (n := len(p.read_text().splitlines())) > 400}
    assert too_long == {}
