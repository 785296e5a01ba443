"""The images, built by `make images`' tooling and run as real containers.

A session fixture builds them (base, wheels and images are cached by their inputs, so this is a
few tenths of a second once built) and each test runs an image with runc the way a kubelet would
with `readOnlyRootFilesystem: true` and `hostNetwork: true`: its own entrypoint, its numeric user,
a read-only root. The sheep example image runs a real worker against an embedded MongoDB on the
host's loopback, the operator image a real operator against the local kube-apiserver, and
`kubectl apply` of a ShardProcess runs to Done through both containers.

Building needs root (debootstrap, buildah, runc); elsewhere these tests are skipped, saying so.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.operator_env import OperatorEnv
from integration.harness import ShardsHarness, wait_until
from shards_store.embedded import free_port
from tooling.cluster import KubeCluster
from tooling.images import IMAGES, Result, build, can_build, project_version
from tooling.images.run import ImageConfig, container, image_config, rootfs, run

# The first build on a machine makes the debootstrap base (about 1-3 min) and the images (about
# 1 min): longer than the suite's per-test timeout, so this module allows more.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

NAMES = [spec.name for spec in IMAGES]
SHARDS = "/opt/shards/bin/shards"
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "tcc", "x86_64-linux-gnu-gcc")


@pytest.fixture(scope="session")
def images() -> dict[str, Result]:
    reason = can_build()
    if reason is not None:
        pytest.skip(f"cannot build images on this machine: {reason}")
    return {result.name: result for result in build()}


@pytest.fixture(scope="session")
def roots(images: dict[str, Result]) -> Iterator[dict[str, Path]]:
    """One mounted working container per image for the whole module, shared by its read-only runs."""
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(rootfs(result.ref)) for name, result in images.items()}


def _run(images: dict[str, Result], roots: dict[str, Path], name: str, args: list[str] | None = None,
         **kwargs: Any) -> tuple[int, str]:
    return run(images[name].ref, args, root=roots[name], **kwargs)


@pytest.fixture(scope="session")
def configs(images: dict[str, Result]) -> dict[str, ImageConfig]:
    return {name: image_config(result.ref) for name, result in images.items()}


def test_the_tooling_built_every_image_with_an_archive(images: dict[str, Result]) -> None:
    assert sorted(images) == sorted(NAMES)
    for name, result in images.items():
        assert result.ref == f"localhost/{name}:{project_version()}"
        assert result.archive.stat().st_size > 50_000_000, result.archive
    # unchanged inputs rebuild nothing, quickly (a key differs only if the tree was edited meanwhile)
    started = time.monotonic()
    again = {r.name: r for r in build()}
    same = [name for name in NAMES if again[name].key == images[name].key]
    assert [again[name].action for name in same] == ["unchanged"] * len(same)
    if len(same) == len(NAMES):
        assert time.monotonic() - started < 30


@pytest.mark.parametrize("name", NAMES)
def test_config_is_non_root_exec_form_and_labelled(name: str, configs: dict[str, ImageConfig]) -> None:
    config = configs[name]
    assert config.user == "10001:10001"
    assert config.uid_gid == (10001, 10001)
    assert config.entrypoint[0] == SHARDS
    assert config.labels.get("dev.shards.inputs")
    env = dict(item.split("=", 1) for item in config.env)
    assert env["PATH"].startswith("/opt/shards/bin:")
    if name == "shards-operator":
        assert (config.entrypoint, config.cmd) == ([SHARDS], ["operator"])
        assert env["SHARDS_LIVENESS"] == "http://0.0.0.0:8080/healthz"
    else:
        assert (config.entrypoint, config.cmd) == ([SHARDS, "worker"], [])
        assert config.workdir == "/app"
        assert env["PYTHONPATH"] == "/app"
    if name == "shards-example-sheep":
        assert env["SHARDS_APP"] == "sheep:app"
    elif name == "shards-worker":
        assert "SHARDS_APP" not in env


@pytest.mark.parametrize("name", NAMES)
def test_runs_as_10001_on_a_read_only_root(name: str, images: dict[str, Result],
                                           roots: dict[str, Path]) -> None:
    script = "id -u; id -g; touch /probe || echo read-only"
    code, out = _run(images, roots, name, argv=["/bin/sh", "-c", script])
    assert code == 0, out
    assert out.split()[:2] == ["10001", "10001"], out
    assert "Read-only file system" in out and "read-only" in out.splitlines()[-1], out
    code, out = _run(images, roots, name, argv=[SHARDS, "--help"])
    assert code == 0 and "Usage: shards" in out, out


@pytest.mark.parametrize("name", NAMES)
def test_the_entrypoint_answers_help(name: str, images: dict[str, Result], roots: dict[str, Path]) -> None:
    code, out = _run(images, roots, name, ["--help"])  # entrypoint + --help, as `docker run IMAGE --help`
    assert code == 0, out
    expected = "Usage: shards [OPTIONS] COMMAND" if name == "shards-operator" else "Usage: shards worker"
    assert expected in out, out
    if name == "shards-operator":
        code, out = _run(images, roots, name, ["operator", "--help"])
        assert code == 0 and "Usage: shards operator" in out, out


@pytest.mark.parametrize("name", NAMES)
def test_no_compiler_in_the_image(name: str, roots: dict[str, Path]) -> None:
    root = roots[name]
    paths = [root / folder / tool for folder in ("usr/bin", "usr/local/bin", "bin") for tool in COMPILERS]
    found = [str(path.relative_to(root)) for path in paths if path.exists() or path.is_symlink()]
    found += [str(p.relative_to(root)) for p in (root / "usr/lib/gcc").glob("*/*/cc1")]
    assert found == []
    assert (root / "opt/shards/bin/shards").is_file()
    assert not (root / "wheels").exists()  # the wheels stayed in the builder stage


def test_the_worker_image_has_neither_operator_extras_nor_the_embedded_server(
    images: dict[str, Result], roots: dict[str, Path],
) -> None:
    probe = ("import importlib.util as u; "
             "print(sorted(m for m in ('kopf', 'kubernetes', 'nx_27017', 'shards_cli') if u.find_spec(m)))")
    code, out = _run(images, roots, "shards-worker", argv=["/opt/shards/bin/python", "-c", probe])
    assert (code, out.strip()) == (0, "['shards_cli']"), out
    code, out = _run(images, roots, "shards-operator", argv=["/opt/shards/bin/python", "-c", probe])
    assert (code, out.strip()) == (0, "['kopf', 'kubernetes', 'shards_cli']"), out


def test_the_sheep_image_counts_sheep_to_done(images: dict[str, Result], roots: dict[str, Path],
                                             shards_env: ShardsHarness) -> None:
    """`docker run -e SHARDS_MONGO_URI=... shards-example-sheep`: the app comes from SHARDS_APP."""
    env = {"SHARDS_MONGO_URI": shards_env.uri}
    with container(images["shards-example-sheep"].ref, ["--heartbeat", "0.5"], env=env,
                   root=roots["shards-example-sheep"]) as worker:
        wait_until(lambda: worker.proc.poll() is not None or shards_env.store.workers.alive(),
                   what=lambda: f"the containerized worker to register\n{worker.output()[-3000:]}")
        assert worker.proc.poll() is None, worker.output()
        shards_env.ok("define", "--scope", "farm")
        shards_env.ok("launch", "count-sheep", "--scope", "farm", "--args", '{"n": 3, "pause": 0.05}')

        def done() -> dict[str, object] | None:
            status: dict[str, object] = json.loads(
                shards_env.ok("status", "count-sheep", "--scope", "farm", "-o", "json").stdout)
            return status if status["state"] in ("Done", "Failed") else None

        status = wait_until(done, what=lambda: f"count-sheep to end\n{worker.output()[-3000:]}")
        assert status["state"] == "Done", status
        # the run happened in the container: its hostname (its own uts namespace) names the worker
        [record] = shards_env.store.workers.alive()
        assert record.host == "shards-test", record
    assert worker.proc.returncode == 0, worker.output()  # SIGTERM: a clean shutdown


KUBE_DIR = "/etc/shards/kube"


def _container_kubeconfig(source: Path, dest_dir: Path) -> Path:
    """The token kubeconfig, its CA beside it, as the container sees them under KUBE_DIR (as a
    Pod's ServiceAccount files: paths, not inlined data, which the kubernetes client would write
    to a temporary file on a read-only root)."""
    dest_dir.mkdir(mode=0o755)
    config = json.loads(source.read_text())
    for cluster in config["clusters"]:
        ca = Path(cluster["cluster"]["certificate-authority"])
        (dest_dir / "ca.crt").write_bytes(ca.read_bytes())
        cluster["cluster"]["certificate-authority"] = f"{KUBE_DIR}/ca.crt"
    (dest_dir / "kubeconfig").write_text(json.dumps(config))
    for path in dest_dir.iterdir():
        path.chmod(0o644)  # readable by the container's uid 10001
    return dest_dir


def _healthz(url: str) -> bool | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return True if resp.status == 200 else None
    except OSError:
        return None


def test_the_operator_image_runs_a_resource_to_done(
    images: dict[str, Result], roots: dict[str, Path], kube_cluster: KubeCluster, kube_namespace: str,
    operator_rbac: str, mongo_db_uri: str, tmp_path: Path,
) -> None:
    """Operator and worker both in containers, on the operator ServiceAccount's token."""
    env = OperatorEnv(kube_cluster, kube_namespace, mongo_db_uri, tmp_path)
    kube_dir = _container_kubeconfig(env.kubeconfig, tmp_path / "kube")
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    operator_env = {"SHARDS_MONGO_URI": mongo_db_uri, "KUBECONFIG": f"{KUBE_DIR}/kubeconfig",
                    "SHARDS_LIVENESS": liveness}
    try:
        operator_args = ["operator", "--namespace", kube_namespace, "--status-interval", "0.5"]
        with container(images["shards-operator"].ref, operator_args, env=operator_env,
                       binds={KUBE_DIR: kube_dir}, root=roots["shards-operator"]) as operator, \
             container(images["shards-example-sheep"].ref, ["--heartbeat", "0.5"],
                       env={"SHARDS_MONGO_URI": mongo_db_uri}, root=roots["shards-example-sheep"]) as worker:
            wait_until(lambda: operator.proc.poll() is not None or _healthz(liveness),
                       what=lambda: f"the operator's liveness endpoint\n{operator.output()[-3000:]}")
            assert operator.proc.poll() is None, operator.output()
            env.apply(env.shp("count-sheep", process="count-sheep", args={"n": 3, "pause": 0.05}))
            try:
                status = env.wait_state("count-sheep", "Done", "Failed")
            except AssertionError:
                print(operator.output()[-3000:], worker.output()[-3000:], sep="\n")
                raise
            assert status["state"] == "Done", status
            assert re.match(r"shards-test-", status.get("worker", "")), status
        assert operator.proc.returncode == 0, operator.output()[-3000:]
    finally:
        env.close()
