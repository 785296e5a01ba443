"""`kubectl shards logs` on the real API server: two users of different rights, their own
ServiceAccount tokens and no MongoDB credentials; kubectl finds the plugin on PATH, the operator
(with deploy/'s RBAC) has Kubernetes review each token and decide each read."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from e2e.operator_env import OperatorEnv
from e2e.resources import READ, kube_user, kubectl_shards
from shards_store.embedded import free_port

pytestmark = pytest.mark.e2e

RUNLOGS_APP = "tests/integration/apps/runlogs.py:app"


def test_a_reader_follows_a_run_log_and_a_stranger_is_refused_in_one_line(env: OperatorEnv) -> None:
    port = free_port()
    env.start_workers(1, app=RUNLOGS_APP)
    env.start_operator("--logs-port", str(port))
    reader = kube_user(env.cluster, env.namespace, "reader", env.workdir, verbs=READ)
    stranger = kube_user(env.cluster, env.namespace, "stranger", env.workdir)
    env.apply(env.shp("slow", process="log-slowly", args={"n": 60, "fail": True}))
    env.wait_state("slow", "Running")
    server = f"http://127.0.0.1:{port}"

    def logs(kubeconfig: Path, *options: str) -> subprocess.Popen[str]:
        return kubectl_shards(env.cluster, kubeconfig, "logs", "slow", "-n", env.namespace,
                              "--server", server, *options)

    follower = logs(reader, "-f")
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

    refused = logs(stranger)
    out, errors = refused.communicate(timeout=60)
    assert refused.returncode == 1 and out == ""
    assert errors.strip().splitlines() == [
        f'kubectl shards: error: user "system:serviceaccount:{env.namespace}:stranger" may not get '
        f'shardprocesses "slow" in namespace "{env.namespace}"']

    forged = env.cluster.token_kubeconfig("not-a-token", env.workdir / "forged.kubeconfig")
    anonymous = logs(forged)
    _, errors = anonymous.communicate(timeout=60)
    assert anonymous.returncode == 1
    assert errors.strip() == "kubectl shards: error: the API server did not accept the token"

    whole = logs(reader, "--attempt", "1")
    out, errors = whole.communicate(timeout=60)
    assert whole.returncode == 0, errors
    assert out.splitlines() == printed  # the finished run's whole log, as it was followed


def test_stop_and_rerun_are_the_users_own_patches(env: OperatorEnv) -> None:
    """Patches with the user's credentials: a reader may not stop; the owner reruns, then stops
    the new run at once."""
    env.start_workers(1, app=RUNLOGS_APP)
    env.start_operator()
    reader = kube_user(env.cluster, env.namespace, "reader", env.workdir, verbs=READ)
    owner = kube_user(env.cluster, env.namespace, "owner", env.workdir, verbs=f"{READ},patch")
    env.apply(env.shp("again", process="log-slowly", args={"n": 2000}))
    env.wait_state("again", "Running")

    def plugin(kubeconfig: Path, *args: str) -> tuple[int, str, str]:
        done = kubectl_shards(env.cluster, kubeconfig, *args, "again", "-n", env.namespace)
        out, errors = done.communicate(timeout=60)
        return done.returncode, out.strip(), errors.strip()

    code, _, errors = plugin(reader, "stop")
    assert code == 1 and len(errors.splitlines()) == 1
    reader_name = f"system:serviceaccount:{env.namespace}:reader"
    assert f'User "{reader_name}" cannot patch resource "shardprocesses"' in errors
    assert plugin(owner, "stop") == (0, "shardprocess/again: stop asked", "")
    env.wait_state("again", "Stopped")
    assert plugin(owner, "rerun") == (0, "shardprocess/again: run 2 asked", "")
    env.wait_status("again", "the second run Running",
                    lambda status: status.get("runs") == 2 and status.get("state") == "Running")
    assert plugin(owner, "stop", "--force") == (0, "shardprocess/again: forced stop asked", "")
    stopped = env.wait_state("again", "Stopped")
    assert stopped["runs"] == 2 and env.get("again")["spec"]["forceStop"] is True
