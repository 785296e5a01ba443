"""`kubectl shards`: the plugin's commands (typer)."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer
from shards.errors import ShardsError
from shards.runlog import dropped_marker
from shards.states import State
from shards_cli.app import Code, ending_code

app = typer.Typer(
    name="kubectl shards", no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
)

# The chart's operator Service for a release "shards" installed in namespace shards-system.
DEFAULT_OPERATOR = "shards-system/shards-operator"


@app.callback()
def plugin() -> None:
    """Shards for kubectl users: what Kubernetes RBAC lets you read, without MongoDB access."""


Namespace = Annotated[str | None, typer.Option(
    "--namespace", "-n", help="The resource's namespace [default: the context's].", show_default=False)]
Kubeconfig = Annotated[str | None, typer.Option(
    "--kubeconfig", show_default=False, help="The kubeconfig [default: $KUBECONFIG, else ~/.kube/config].",
)]
Context = Annotated[str | None, typer.Option("--context", help="The kubeconfig context [default: current].",
                                             show_default=False)]


@app.command(short_help="A ShardProcess's run log; -f follows it live.")
def logs(
    name: Annotated[str, typer.Argument(help="The ShardProcess.")],
    namespace: Namespace = None,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Follow a live run until it ends; exit 0 Done, 3 Failed, 4 Stopped, "
                               "5 on --timeout.")] = False,
    attempt: Annotated[int | None, typer.Option(
        min=1, show_default=False, help="The attempt of the latest launch [default: its current one].",
    )] = None,
    timeout: Annotated[float, typer.Option(min=0.0, help="Stop following after this many seconds.")] = 3600.0,
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON object per line, as served.")] = False,
    operator: Annotated[str, typer.Option(
        envvar="SHARDS_OPERATOR", help="NAMESPACE/SERVICE of the operator, reached through the API server.",
    )] = DEFAULT_OPERATOR,
    server: Annotated[str | None, typer.Option(
        envvar="SHARDS_LOGS_URL", show_default=False,
        help="The log service's URL, reached directly (a port-forward, an Ingress) instead.")] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Print the run log of a ShardProcess's latest launch, as `shards logs` does: its last lines,
    a marker for lines dropped, a failure's traceback last. You need `get` on the ShardProcess:
    the operator has Kubernetes review your own token, and reads MongoDB for you."""
    from shards_kubectl.cluster import user_cluster
    from shards_kubectl.logs import LogRequest, read_log

    cluster = user_cluster(kubeconfig, context)
    request = LogRequest(namespace or cluster.namespace, name, attempt, follow, timeout)
    ending: dict[str, object] = {}
    for entry in read_log(cluster, request, operator, server):
        if json_lines:
            print(json.dumps(entry), flush=True)
        elif "line" in entry:
            print(entry["line"], flush=True)
        elif "dropped" in entry:
            print(dropped_marker(int(entry["dropped"])), flush=True)
        if "state" in entry:  # the last entry: the run's id and state
            ending = entry
    if not ending:
        raise ShardsError("the log stream ended early (the operator restarted?): run the command again")
    if follow:
        raise typer.Exit(Code.TIMEOUT if ending.get("active") else ending_code(State(str(ending["state"]))))


@app.command(short_help="Stop a ShardProcess's run (spec.stop; --force: spec.forceStop).")
def stop(
    name: Annotated[str, typer.Argument(help="The ShardProcess.")],
    namespace: Namespace = None,
    force: Annotated[bool, typer.Option("--force", help="Kill an isolated run at once.")] = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Ask the current run to stop, as `kubectl patch` of spec.stop would (your RBAC: patch)."""
    from shards_kubectl import resources
    from shards_kubectl.cluster import user_cluster

    cluster = user_cluster(kubeconfig, context)
    resources.stop(cluster, namespace or cluster.namespace, name, force=force)
    print(f"shardprocess/{name}: {'forced stop' if force else 'stop'} asked")


@app.command(short_help="Run a ShardProcess again (spec.runs + 1, stop cleared).")
def rerun(
    name: Annotated[str, typer.Argument(help="The ShardProcess.")],
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Ask for one more run, launched once the current one has ended (your RBAC: get, patch)."""
    from shards_kubectl import resources
    from shards_kubectl.cluster import user_cluster

    cluster = user_cluster(kubeconfig, context)
    runs = resources.rerun(cluster, namespace or cluster.namespace, name)
    print(f"shardprocess/{name}: run {runs} asked")


def main() -> None:
    """Entry point of `kubectl-shards`: a failure is one line on stderr and a non-zero exit."""
    try:
        app(prog_name="kubectl shards")
    except ShardsError as error:
        print(f"kubectl shards: error: {error}", file=sys.stderr)
        sys.exit(Code.ERROR)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # `kubectl shards logs x | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        sys.exit(0)
    except Exception as error:  # never a traceback: its type and first line
        if os.environ.get("SHARDS_DEBUG"):
            raise
        detail = str(error).splitlines()[0] if str(error) else ""
        print(f"kubectl shards: error: {type(error).__name__}: {detail}", file=sys.stderr)
        sys.exit(Code.ERROR)
