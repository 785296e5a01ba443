"""Every program the code runs is in tooling.programs, which says who installs it before first use.

A program that a test, the bench or the tooling runs but nothing installs passes on a machine
that earlier runs prepared and fails on a new one (issue 20: ``iptables-save``). These tests read
the sources: each program named as the first word of a command (``subprocess.run(["x", ...])``,
``procs.start(name, ["x", ...])``, ``shutil.which("x")``) must be in the table, ``apt-get`` runs only from
tooling.programs, and the tooling's README shows the table as the code has it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from tooling import programs

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("tests", "bench", "examples", "sdk", "store", "controller", "worker", "cli", "operator",
           "dashboard")
# Callables that take a command as an argv list (any positional argument: ``procs.start(name, argv)``).
RUNNERS = {"run", "Popen", "check_output", "check_call", "call", "start", "spawn"}
# Callables whose first argument is the program itself.
WORD_RUNNERS = {"which"}
# First words that name no program on the machine: the project's own commands and built binaries.
NOT_PROGRAMS = {"shards", "kubectl", "helm", "kube-apiserver", "kube-proxy", "etcd"}


def python_files() -> list[Path]:
    files = []
    for top in SOURCES:
        files += [p for p in (REPO / top).rglob("*.py") if ".venv" not in p.parts]
    return sorted(files)


def _first_word(node: ast.expr) -> str | None:
    if isinstance(node, ast.List | ast.Tuple) and node.elts:
        node = node.elts[0]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def programs_named(tree: ast.AST) -> set[str]:
    """The first words of the commands a module runs, and the programs it looks up on PATH."""
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        words = [_first_word(arg) for arg in node.args if isinstance(arg, ast.List | ast.Tuple)] \
            if name in RUNNERS else []
        if name in WORD_RUNNERS:
            words.append(_first_word(node.args[0]))
        names |= {w for w in words if w and re.fullmatch(r"[a-z][a-z0-9._+-]*", w) and w not in NOT_PROGRAMS}
    return names


def test_the_scan_finds_commands() -> None:
    """The scan itself: it sees argv lists, varargs helpers and which(), and skips other calls."""
    tree = ast.parse(
        'subprocess.run(["iptables-save"])\nsubprocess.Popen(("nft", "list"))\nshutil.which("chromium")\n'
        'cluster.kubectl("get", "pods")\nrun([sys.executable, "-m", "x"])\nprint("gcc")\n'
        'procs.start("sleeper", ["sleep", "1"])\n_runc("delete", "x")\n'
    )
    assert programs_named(tree) == {"iptables-save", "nft", "chromium", "sleep"}


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_program_run_is_installed_by_someone(path: Path) -> None:
    unknown = programs_named(ast.parse(path.read_text(), str(path))) - set(programs.BY_NAME)
    assert not unknown, (
        f"{path.relative_to(REPO)} runs {', '.join(sorted(unknown))}: add it to tests/tooling/programs.py "
        "(its Debian package, and the fixture or target that installs it before its first use)"
    )


def test_apt_get_runs_only_from_the_programs_table() -> None:
    offenders = []
    for path in python_files():
        if path.name in ("programs.py", "fresh_check.py", "test_programs.py"):  # the installer and the purger
            continue
        if "apt-get" in programs_named(ast.parse(path.read_text(), str(path))):
            offenders.append(str(path.relative_to(REPO)))
    scripts = [REPO / "Makefile", REPO / ".ci" / "run", *sorted((REPO / "mk").glob("*.mk")),
               *sorted((REPO / "examples").glob("*.sh"))]
    for path in scripts:
        if re.search(r"^[^#]*\bapt-get\s+install", path.read_text(), re.MULTILINE):
            offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"apt-get outside tooling.programs.ensure: {offenders}"


def test_groups_name_known_programs_and_project_packages_are_installable() -> None:
    for group, names in programs.GROUPS.items():
        assert set(names) <= set(programs.BY_NAME), group
    for program in programs.PROGRAMS:
        assert program.installed_by, program.name
        if program.by_project:
            assert program.package and any(program.name in names for names in programs.GROUPS.values()), (
                f"{program.name} is installed by the project but no group installs it"
            )


def test_the_tooling_readme_shows_the_table() -> None:
    readme = (REPO / "tests" / "tooling" / "README.md").read_text()
    assert programs.markdown_table() in readme, (
        "tests/tooling/README.md is out of date: paste `PYTHONPATH=tests python -m tooling.programs`"
    )


def test_an_unknown_name_is_one_clear_error() -> None:
    with pytest.raises(programs.ProgramError, match="unknown program or group 'iptabels'"):
        programs.missing("iptabels")
