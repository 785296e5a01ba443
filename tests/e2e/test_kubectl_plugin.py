"""`kubectl shards logs` on the real API server: two users of different rights, their own
ServiceAccount tokens and no MongoDB credentials; kubectl finds the plugin on PATH, the operator
(with deploy/'s RBAC) has Kubernetes review each token and decide each read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e.operator_env import OperatorEnv
from shards_store.embedded import free_port

pytestmark = pytest.mark.e2e

RUNLOGS_APP = "tests/integration/apps/runlogs.py:app"


def _user(env: OperatorEnv, name: str, *, reader: bool) -> Path:
    """A ServiceAccount of the test's namespace as a person with a kubeconfig: a reader may get
    ShardProcesses there (as a Role would let a team), a stranger may do nothing."""
    cluster, namespace = env.cluster, env.namespace
    cluster.kubectl("create", "serviceaccount", name, "-n", namespace)
    if reader:
        cluster.kubectl("create", "role", f"{name}-shp", "-n", namespace, "--verb=get,list,watch",
                        "--resource=shardprocesses.shards.dev")
        cluster.kubectl("create", "rolebinding", f"{name}-shp", "-n", namespace, f"--role={name}-shp",
                        f"--serviceaccount={namespace}:{name}")
    token = cluster.kubectl("create", "token", name, "-n", namespace, "--duration=1h").stdout.strip()
    return cluster.token_kubeconfig(token, env.workdir / f"{name}.kubeconfig", user=name)


def _kubectl_shards(env: OperatorEnv, kubeconfig: Path, *args: str) -> subprocess.Popen[str]:
    """`kubectl shards ARGS` as the user of `kubeconfig`: kubectl runs kubectl-shards from PATH."""
    path = f"{env.cluster.bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.Popen([str(env.cluster.bin_dir / "kubectl"), "shards", *args],
                            env={**env.cluster.env(), "KUBECONFIG": str(kubeconfig), "PATH": path},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_reader_follows_a_run_log_and_a_stranger_is_refused_in_one_line(env: OperatorEnv) -> None:
    port = free_port()
    env.start_workers(1, app=RUNLOGS_APP)
    env.start_operator("--logs-port", str(port))
    reader, stranger = _user(env, "reader", reader=True), _user(env, "stranger", reader=False)
    env.apply(env.shp("slow", process="log-slowly", args={"n": 60, "fail": True}))
    env.wait_state("slow", "Running")
    server = f"http://127.0.0.1:{port}"

    follower = _kubectl_shards(env, reader, "logs", "slow", "-n", env.namespace, "-f", "--server", server)
    assert follower.stdout is not None and follower.stderr is not None
    first = follower.stdout.readline()  # then read(): communicate() would skip what readline buffered
    assert "INFO slow line" in first, first + follower.stderr.read()
    rest = follower.stdout.read()
    assert follower.wait(timeout=60) == 3, follower.stderr.read()  # Failed: the code `shards logs -f` gives
    printed = (first + rest).splitlines()
    numbered = [int(line.rsplit(" ", 1)[1]) for line in printed if "INFO slow line" in line]
    assert numbered == list(range(numbered[0], 60))  # each line once, none missing, to the end
    assert "ValueError: gave up after 60 lines" in rest
    assert "read by system:serviceaccount:" + env.namespace + ":reader" in env.operator_log()

    refused = _kubectl_shards(env, stranger, "logs", "slow", "-n", env.namespace, "--server", server)
    out, errors = refused.communicate(timeout=60)
    assert refused.returncode == 1 and out == ""
    assert errors.strip().splitlines() == [
        f'kubectl shards: error: user "system:serviceaccount:{env.namespace}:stranger" may not get '
        f'shardprocesses "slow" in namespace "{env.namespace}"']

    forged = env.cluster.token_kubeconfig("not-a-token", env.workdir / "forged.kubeconfig")
    anonymous = _kubectl_shards(env, forged, "logs", "slow", "-n", env.namespace, "--server", server)
    _, errors = anonymous.communicate(timeout=60)
    assert anonymous.returncode == 1
    assert errors.strip() == "kubectl shards: error: the API server did not accept the token"

    whole = _kubectl_shards(env, reader, "logs", "slow", "-n", env.namespace, "--attempt", "1",
                            "--server", server)
    out, errors = whole.communicate(timeout=60)
    assert whole.returncode == 0, errors
    assert out.splitlines() == printed[-len(out.splitlines()):]  # the finished run, as it was followed
