"""The Dockerfiles, read as text: multi-stage, a pinned public base, a numeric non-root user,
exec-form entrypoints that exist in the venv the builder stage makes. Their behaviour as images
is tests/e2e/test_images.py."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = {
    "shards-worker": REPO / "deploy/images/worker/Dockerfile",
    "shards-operator": REPO / "deploy/images/operator/Dockerfile",
}
EXAMPLE = REPO / "examples/Dockerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
DISTRIBUTION = PYPROJECT["project"]["name"]  # shards-process-manager: the import and command are `shards`
# A public base pinned to an exact Python patch release and Debian release: never a moving tag.
PINNED_PYTHON = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [arg for kind, arg in self.instructions if kind == op]


@dataclass
class Dockerfile:
    args: dict[str, str]  # ARGs before the first FROM, with their defaults
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def parse(path: Path) -> Dockerfile:
    """Instructions with continuation lines joined and comments dropped (enough for these files)."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path}: a continuation line ends the file"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        op, _, rest = line.partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif not stages:
            assert op == "ARG", f"{path}: only ARG may come before the first FROM, found {op}"
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append((op, rest))
    return Dockerfile(args, stages)


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for arg in stage.all("ENV"):
        for word in shlex.split(arg):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def exec_form(arg: str) -> list[str]:
    value = json.loads(arg)  # shell form is not JSON: this fails on it
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def numeric_non_root(user: str) -> bool:
    uid, _, gid = user.partition(":")
    return uid.isdigit() and int(uid) != 0 and (not gid or (gid.isdigit() and int(gid) != 0))


@pytest.mark.parametrize("name", sorted(DEPLOY))
def test_multi_stage_on_a_pinned_base(name: str) -> None:
    df = parse(DEPLOY[name])
    assert PINNED_PYTHON.match(df.args.get("BASE", "")), df.args
    assert len(df.stages) >= 2
    assert all(stage.base == "${BASE}" for stage in df.stages)  # the build passes a local BASE
    builder = df.stages[0]
    assert builder.name == "build"
    assert df.final.name is None


def test_both_images_share_one_base() -> None:
    assert parse(DEPLOY["shards-worker"]).args["BASE"] == parse(DEPLOY["shards-operator"]).args["BASE"]


@pytest.mark.parametrize("name", sorted(DEPLOY))
def test_numeric_non_root_user_and_exec_form_entrypoint(name: str) -> None:
    final = parse(DEPLOY[name]).final
    users = final.all("USER")
    assert users and numeric_non_root(users[-1]), users
    assert users[-1] == "10001:10001"
    [entrypoint] = final.all("ENTRYPOINT")
    argv = exec_form(entrypoint)
    assert argv[0].startswith("/")
    for cmd in final.all("CMD"):
        exec_form(cmd)


@pytest.mark.parametrize("name", sorted(DEPLOY))
def test_the_entrypoint_is_the_venvs_shards_script(name: str) -> None:
    df = parse(DEPLOY[name])
    builder_runs = " ".join(df.stages[0].all("RUN"))
    venv = re.search(r"python3 -m venv (\S+)", builder_runs)
    assert venv is not None, builder_runs
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts["shards"] == "shards_cli.main:main"
    argv = exec_form(df.final.all("ENTRYPOINT")[0])
    assert argv[0] == f"{venv.group(1)}/bin/shards"
    # the final stage takes the venv, and only the venv, from the builder
    copies = df.final.all("COPY")
    assert f"--from=build {venv.group(1)} {venv.group(1)}" in copies
    assert not any("wheels" in c for c in copies)


@pytest.mark.parametrize("name", sorted(DEPLOY))
def test_installs_from_wheels_only_and_no_compiler(name: str) -> None:
    df = parse(DEPLOY[name])
    builder = df.stages[0]
    assert any(c.split()[0] in ("wheels/", "wheels") for c in builder.all("COPY"))
    installs = [r for r in builder.all("RUN") if "pip install" in r]
    assert installs and all("--no-index" in r and "--find-links /wheels" in r for r in installs)
    text = DEPLOY[name].read_text()
    for forbidden in ("apt-get", "gcc", "build-essential", "curl ", "wget "):
        assert forbidden not in text


def test_extras_per_image() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    worker = " ".join(parse(DEPLOY["shards-worker"]).stages[0].all("RUN"))
    operator = " ".join(parse(DEPLOY["shards-operator"]).stages[0].all("RUN"))
    assert re.search(rf"--find-links /wheels {DISTRIBUTION}(\s|$)", worker)  # no extras
    assert f"'{DISTRIBUTION}[operator,dashboard]'" in operator
    assert "operator" in extras and "dashboard" in extras
    plain = PYPROJECT["project"]["dependencies"]
    heavy = ("kopf", "kubernetes", "nx-27017", "starlette", "uvicorn")
    assert not any(dep.startswith(heavy) for dep in plain)


def test_worker_image_layout() -> None:
    final = parse(DEPLOY["shards-worker"]).final
    assert final.all("WORKDIR") == ["/app"]
    env = env_of(final)
    assert env["PYTHONPATH"] == "/app"
    assert env["PATH"].startswith("/opt/shards/bin:")
    assert exec_form(final.all("ENTRYPOINT")[0]) == ["/opt/shards/bin/shards", "worker"]
    assert final.all("CMD") == []  # the APP comes from $SHARDS_APP


def test_operator_image_layout() -> None:
    final = parse(DEPLOY["shards-operator"]).final
    assert exec_form(final.all("ENTRYPOINT")[0]) == ["/opt/shards/bin/shards"]
    assert [exec_form(c) for c in final.all("CMD")] == [["operator"]]
    assert env_of(final)["SHARDS_LIVENESS"] == "http://0.0.0.0:8080/healthz"
    assert final.all("EXPOSE") == ["8080"]


def test_the_example_builds_on_the_worker_image() -> None:
    df = parse(EXAMPLE)
    assert df.args["BASE"] == f"shards-worker:{VERSION}"  # an exact tag: this project's version
    assert [s.base for s in df.stages] == ["${BASE}"]
    final = df.final
    assert final.all("COPY") == ["sheep.py /app/"]
    assert env_of(final)["SHARDS_APP"] == "sheep:app"
    assert re.search(r"^app = shards\.App\(", (REPO / "examples/sheep.py").read_text(), re.MULTILINE)
    # it keeps the worker's user and entrypoint
    assert final.all("USER") == [] and final.all("ENTRYPOINT") == [] and final.all("RUN") == []


def test_the_tooling_builds_each_dockerfile() -> None:
    from tooling.images.builder import IMAGES

    assert {spec.name: spec.dockerfile for spec in IMAGES} == {**DEPLOY, "shards-example-sheep": EXAMPLE}


def test_the_wheels_key_ignores_what_the_images_do_not_hold() -> None:
    # `make demo`'s venv has no test or lint tools, `make test`'s has: the same images either way
    from tooling.images.wheels import needed

    names = needed()
    assert {"pymongo", "typer", "kopf", "kubernetes"} <= names
    assert not names & {DISTRIBUTION, "pytest", "hypothesis", "ruff", "mypy", "nx-27017", "cryptography"}


def test_the_wheels_name_the_distribution_pyproject_names() -> None:
    from tooling.images.wheels import DISTRIBUTION as WHEELS_DISTRIBUTION
    from tooling.images.wheels import is_project_wheel

    assert WHEELS_DISTRIBUTION == DISTRIBUTION
    wheel = f"{DISTRIBUTION.replace('-', '_')}-{VERSION}-py3-none-any.whl"  # as pip wheel names it
    assert is_project_wheel(Path(wheel))
    assert is_project_wheel(Path(f"shards-{VERSION}-py3-none-any.whl"))  # a commit before the rename
    assert not is_project_wheel(Path("shardsx-1.0-py3-none-any.whl"))
    assert not is_project_wheel(Path("pymongo-4.10.1-cp311-cp311-manylinux_2_17_x86_64.whl"))
