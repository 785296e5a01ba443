"""The distribution is pyproject's name (shards-process-manager: PyPI's `shards` is another
project), and every `pip install` in the repository (docs, Dockerfiles, install hints) says it; the
command and the import stay `shards`."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
NAME = PROJECT["name"]
EXTRAS = set(PROJECT["optional-dependencies"])
# A pip command that takes requirements, and its arguments up to the end of the shell command
# (a backtick, ;, #, &&, |, a closing parenthesis or the line's end).
PIP = re.compile(r"\bpip3?\s+(?:install|wheel|download)((?:\s+[^\s`;#&|)]+)*)")
# A requirement naming a shards-something distribution, with optional extras.
REQUIREMENT = re.compile(r"(shards[\w.-]*)(?:\[([^\]]*)\])?")
# `shards[...]` with one of this project's extras, anywhere (a dependency list, a comment).
OLD_WITH_EXTRAS = re.compile(r"(?<![\w.-])shards\[\s*(" + "|".join(sorted(EXTRAS)) + r")\b")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=False,
                            timeout=60)
    if listed.returncode == 0:
        paths = [REPO / name for name in listed.stdout.decode().split("\0") if name]
    else:  # not a git checkout: the tree, without hidden folders
        paths = [p for p in REPO.rglob("*")
                 if not any(part.startswith(".") for part in p.relative_to(REPO).parts)]
    texts = []
    for path in paths:
        if path.is_file() and path.suffix not in (".sum", ".png", ".svg") and path.stat().st_size < 1_000_000:
            try:
                path.read_text()
            except UnicodeDecodeError:
                continue
            texts.append(path)
    return texts


def requirements_in(line: str) -> list[tuple[str, set[str]]]:
    """(name, extras) of each shards-something requirement a pip command on `line` installs."""
    found = []
    for command in PIP.finditer(line):
        for arg in command.group(1).split():
            match = REQUIREMENT.fullmatch(arg.strip("'\""))
            if match:
                extras = {e.strip() for e in (match.group(2) or "").split(",") if e.strip()}
                found.append((match.group(1), extras))
    return found


def test_the_distribution_name() -> None:
    assert NAME == "shards-process-manager"
    assert PROJECT["scripts"]["shards"] == "shards_cli.main:main"  # the command keeps its name
    for extra, requirements in PROJECT["optional-dependencies"].items():
        for requirement in requirements:  # an extra that includes others names the project itself
            assert not requirement.startswith("shards["), (extra, requirement)


def test_the_matcher() -> None:
    assert requirements_in("RUN pip install --find-links /wheels shards \\") == [("shards", set())]
    assert requirements_in("pip install 'shards[dashboard]' (or ...)") == [("shards", {"dashboard"})]
    assert requirements_in(f"pip install -q '{NAME}[operator,dev]'") == [(NAME, {"operator", "dev"})]
    assert requirements_in("(`pip install nx-27017`; `shards mongo`)") == []
    assert requirements_in("pip install -e '.[embedded]'") == []
    assert OLD_WITH_EXTRAS.search("the operator image (shards[operator,dashboard])")
    assert not OLD_WITH_EXTRAS.search('shards["listing"] = 1') and not OLD_WITH_EXTRAS.search(f"{NAME}[dev]")


def test_every_pip_install_names_the_distribution() -> None:
    wrong = []
    named = set()
    for path in tracked_text_files():
        if path == Path(__file__).resolve():
            continue  # its matcher's own test cases
        for number, line in enumerate(path.read_text().splitlines(), 1):
            found = requirements_in(line)
            if OLD_WITH_EXTRAS.search(line) or any(n != NAME or not e <= EXTRAS for n, e in found):
                wrong.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
            elif found:
                named.add(str(path.relative_to(REPO)))
    assert not wrong, "\n".join(wrong)
    # the install hints of the CLI and the images do say it
    assert {"cli/shards_cli/dashboard.py", "cli/shards_cli/servers.py", "store/shards_store/embedded.py",
            "deploy/images/worker/Dockerfile", "deploy/images/operator/Dockerfile"} <= named
