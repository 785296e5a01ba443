"""The layout is the architecture: the import contracts in pyproject.toml (import-linter) hold
the layers, keep the SDK and domain plain Python, let only the store import pymongo and forbid
import cycles; a deliberate back-import fails them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def lint_imports(*, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The contracts of pyproject.toml ([tool.importlinter]), as `make lint` runs them."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)} if pythonpath else None
    linter = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(linter), "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_import_contracts_hold() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(("package", "module", "back_import", "broken"), [
    ("worker/shards_worker", "runs.py", "import shards_worker.worker", "No import cycle inside any package"),
    ("store/shards_store", "store.py", "import shards_controller", "Layers:"),
    ("sdk/shards", "records.py", "import pymongo", "Only the store imports pymongo and bson"),
    ("kubectl/shards_kubectl", "logs.py", "import shards_store", "The kubectl plugin is a Kubernetes client"),
])
def test_a_deliberate_back_import_breaks_a_contract(tmp_path: Path, package: str, module: str,
                                                   back_import: str, broken: str) -> None:
    """A copy of one package with one import too many, ahead of the installed one on the path."""
    copy = tmp_path / Path(package).name
    shutil.copytree(REPO / package, copy)
    source = copy / module
    source.write_text(f"{source.read_text()}\n{back_import}  # deliberate\n")
    result = lint_imports(pythonpath=tmp_path)
    assert result.returncode != 0
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout, result.stdout[-3000:]


def test_no_top_level_package_shadows_the_standard_library_operator() -> None:
    assert not (REPO / "operator" / "__init__.py").exists()
    # A script's folder comes first on sys.path: an operator.py beside a script shadows it too.
    scripts = [REPO / folder for folder in ("bench", "examples", "tests")]
    assert [str(p) for folder in scripts for p in folder.rglob("operator.py")] == []


def test_the_cli_loads_the_store_controller_and_worker_only_for_a_command_that_needs_them() -> None:
    """`shards --help` and a typo stay fast (figure 8 of `make bench` times them): registering
    the commands imports neither pymongo nor the packages behind it."""
    probe = ("import sys; import shards_cli.main; "
             "print(sorted(m for m in ('pymongo', 'shards_store', 'shards_controller', 'shards_worker', "
             "'prometheus_client', 'kopf', 'yaml', 'shards_dashboard', 'starlette', 'uvicorn') "
             "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
