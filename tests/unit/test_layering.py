"""The layout is the architecture: the SDK and domain are plain Python, and only the store
imports pymongo. Checked on the source, so a stray import anywhere fails here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {
    "sdk/shards": {"pymongo", "bson", "kopf", "kubernetes", "shards_store", "shards_worker",
                   "shards_controller", "shards_cli", "shards_operator"},
    "controller/shards_controller": {"pymongo", "bson", "kopf", "kubernetes", "shards_worker", "shards_cli",
                                     "shards_operator"},
    "worker/shards_worker": {"pymongo", "bson", "kopf", "kubernetes", "shards_controller", "shards_cli",
                             "shards_operator"},
    "cli/shards_cli": {"pymongo", "bson", "kopf", "kubernetes"},
    "store/shards_store": {"kopf", "kubernetes", "shards_worker", "shards_controller", "shards_cli",
                           "shards_operator"},
    "operator/shards_operator": {"pymongo", "bson", "shards_worker", "shards_cli"},
    "dashboard/shards_dashboard": {"pymongo", "bson", "kopf", "kubernetes", "shards_worker", "shards_cli",
                                   "shards_operator"},
}
# The operator's decisions are plain Python: only its handlers, runtime and API client see
# kopf or the Kubernetes client.
PLAIN_OPERATOR_MODULES = ["status.py", "resource.py", "mirror.py", "metrics.py"]


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


@pytest.mark.parametrize("module", PLAIN_OPERATOR_MODULES)
def test_operator_decisions_are_plain_python(module: str) -> None:
    assert imported_roots(REPO / "operator/shards_operator" / module) & {"kopf", "kubernetes"} == set()


def test_no_top_level_package_shadows_the_standard_library_operator() -> None:
    assert not (REPO / "operator" / "__init__.py").exists()
    # A script's folder comes first on sys.path: an operator.py beside a script shadows it too.
    scripts = [REPO / folder for folder in ("bench", "examples", "tests")]
    assert [str(p) for folder in scripts for p in folder.rglob("operator.py")] == []


def test_modules_stay_small() -> None:
    sources = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]
    too_long = {str(p.relative_to(REPO)): n for p in sources if (n := len(p.read_text().splitlines())) > 400}
    assert too_long == {}


def test_the_cli_loads_the_store_controller_and_worker_only_for_a_command_that_needs_them() -> None:
    """`shards --help` and a typo stay fast (figure 8 of `make bench` times them): registering
    the commands imports neither pymongo nor the packages behind it."""
    probe = ("import sys; import shards_cli.main; "
             "print(sorted(m for m in ('pymongo', 'shards_store', 'shards_controller', 'shards_worker', "
             "'prometheus_client', 'kopf', 'yaml', 'shards_dashboard', 'starlette', 'uvicorn') "
             "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
