"""The long-running commands: the embedded MongoDB server, a worker, the operator."""

from __future__ import annotations

import logging
import os
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from shards_cli.app import MongoOption, app, err, serving

DEFAULT_POOL = "default"  # shards.records.DEFAULT_POOL, without importing the records for --help


class Isolation(StrEnum):
    process = "process"
    thread = "thread"


def serve_metrics(port: int, address: str) -> None:
    """Prometheus metrics on address:port; a port in use is one line naming it."""
    from shards.errors import ShardsError
    from shards_worker.metrics import serve

    try:
        serve(port, address)
    except OSError as error:
        raise ShardsError(f"cannot serve metrics on {address}:{port}: {error.strerror or error} "
                          "(choose another --metrics-port, or 0 for none)") from error


@app.command(short_help="Run the embedded MongoDB server (NX-27017).")
def mongo(
    port: Annotated[int, typer.Option(help="Loopback port to listen on.")] = 27017,
    data: Annotated[Path, typer.Option(help="Data directory (SQLite files).")] = Path(".shards/mongo"),
    host: Annotated[str, typer.Option(
        help="Address to listen on: loopback, or a private address Pods reach (no authentication: "
             "never a public one).")] = "127.0.0.1",
) -> None:
    """Run the embedded MongoDB wire-protocol server (NX-27017) in the foreground, on loopback
    unless --host says otherwise."""
    from shards_store.embedded import embedded_command, prepare_data_dir

    serving()
    command = embedded_command(port, data, host)
    prepare_data_dir(data)
    err().print(f"shards: embedded MongoDB on mongodb://{host}:{port}/shards (data in {data})")
    sys.stdout.flush()
    os.execv(command[0], command)


@app.command(short_help="Run a worker for APP: claim, execute, report progress.")
def worker(
    app_spec: Annotated[str, typer.Argument(
        metavar="APP", envvar="SHARDS_APP",
        help="module[:attribute] or file.py[:attribute]; the attribute defaults to app")],
    mongo: MongoOption = None,
    pool: Annotated[str, typer.Option(
        envvar="SHARDS_POOL", help="Claim launches of this pool's processes only.")] = DEFAULT_POOL,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Processes run at once.")] = 1,
    lease: Annotated[float, typer.Option(
        min=1.0, envvar="SHARDS_LEASE",
        help="Seconds of silence before other workers declare this one lost and relaunch its runs. "
             "A MongoDB outage shorter than about half of it stops nothing (runs are asked to stop "
             "at half, end by 85%); a crashed worker restarted under the same --worker-id is "
             "settled at once, so only a lost machine waits for it.")] = 45.0,
    heartbeat: Annotated[float, typer.Option(min=0.1, help="Seconds between heartbeats.")] = 2.0,
    progress_interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between progress writes.")
    ] = 0.5,
    shutdown_grace: Annotated[
        float, typer.Option(min=0.0, help="Seconds running processes get to stop on SIGTERM.")
    ] = 20.0,
    worker_id: Annotated[str | None, typer.Option(
        envvar="SHARDS_WORKER_ID",
        help="Worker name, unique among running workers (a pod name); a restart under the same name "
             "settles what the previous one left [default: host-pid].")] = None,
    metrics_port: Annotated[int, typer.Option(help="Serve Prometheus metrics on this port (0: off).")] = 0,
    metrics_address: Annotated[str, typer.Option(help="Address for the metrics server.")] = "127.0.0.1",
    sweep_interval: Annotated[float, typer.Option(
        min=0.1, help="Seconds between backstop sweeps for requests a change event did not bring.")] = 5.0,
    poll_only: Annotated[bool, typer.Option(
        "--poll-only", help="Open no change stream: sweep every --poll-interval instead.")] = False,
    poll_interval: Annotated[float, typer.Option(
        min=0.05, help="Seconds between sweeps without a change stream.")] = 1.0,
    claim_stagger: Annotated[float, typer.Option(
        min=0.0, help="Seconds per place in line before a backup worker claims a request.")] = 0.02,
    stream_poll_min: Annotated[float, typer.Option(
        min=0.0005, help="On a server that ignores maxAwaitTimeMS: pause between empty polls "
                         "while busy.")] = 0.002,
    stream_poll_max: Annotated[float, typer.Option(
        min=0.0005, help="...doubling up to this pause while idle.")] = 0.25,
    isolation: Annotated[Isolation, typer.Option(
        envvar="SHARDS_ISOLATION",
        help="process: each run in an OS process of its own (a crash ends only that run; stops "
             "and deadlines can kill it). thread: runs in threads of the worker (cheaper, but a "
             "run that ignores should_continue() cannot be killed).")] = Isolation.process,
    stop_grace: Annotated[float, typer.Option(
        min=0.0, envvar="SHARDS_STOP_GRACE",
        help="Seconds an isolated run gets to stop after a stop request or its deadline; then "
             "it is killed.")] = 10.0,
    log_level: Annotated[str, typer.Option(
        envvar="SHARDS_LOG_LEVEL", help="debug, info, warning or error.")] = "info",
    log_format: Annotated[str, typer.Option(
        envvar="SHARDS_LOG_FORMAT", help="text (one line per event) or json (an object per line).",
    )] = "text",
) -> None:
    """Run a worker for APP: claim requests, execute processes, report progress."""
    from shards_store import connect
    from shards_worker import Worker, WorkerSettings, load_app
    from shards_worker.logs import capture_prints, configure_logging

    serving()
    configure_logging(log_level, log_format)  # a bad value: one line, before anything else
    capture_prints()  # under --isolation thread, what a run prints is logged about the run
    application = load_app(app_spec)
    settings = WorkerSettings(
        pool=pool, concurrency=concurrency, lease=lease, heartbeat_interval=heartbeat,
        progress_interval=progress_interval, shutdown_grace=shutdown_grace,
        sweep_interval=sweep_interval, poll_only=poll_only, poll_interval=poll_interval,
        claim_stagger=claim_stagger, stream_poll_min=stream_poll_min, stream_poll_max=stream_poll_max,
        isolation=isolation.value, stop_grace=stop_grace,
    )
    # Not checked here: a worker started during an outage waits for MongoDB (Worker.run).
    runner = Worker(connect(mongo, check=False), application, settings, worker_id, app_spec=app_spec)
    if metrics_port:
        serve_metrics(metrics_port, metrics_address)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.request_shutdown())
    runner.run()


@app.command(name="operator", short_help="Run the Kubernetes operator for ShardProcess resources.")
def operator_command(
    mongo: MongoOption = None,
    namespace: Annotated[list[str] | None, typer.Option(
        "--namespace", envvar="SHARDS_NAMESPACES", help="Watch only these namespaces [default: all].",
    )] = None,
    scope_grant: Annotated[list[str] | None, typer.Option(
        "--scope-grant", envvar="SHARDS_SCOPE_GRANTS",
        help="NAMESPACE=SCOPE[,SCOPE]: resources in NAMESPACE may also use these scopes ('*': any).")] = None,
    status_interval: Annotated[float, typer.Option(
        min=0.1, envvar="SHARDS_STATUS_INTERVAL", help="At most one status patch per resource per interval.",
    )] = 1.0,
    delete_timeout: Annotated[float, typer.Option(
        min=0.0, envvar="SHARDS_DELETE_TIMEOUT", help="Seconds a delete waits for its run to stop.")] = 30.0,
    liveness: Annotated[str, typer.Option(
        envvar="SHARDS_LIVENESS", help="Liveness endpoint URL ('' for none).")] = "http://127.0.0.1:8080/healthz",
    metrics_port: Annotated[int, typer.Option(
        envvar="SHARDS_METRICS_PORT", help="Serve Prometheus metrics on this port (0: off).")] = 0,
    metrics_address: Annotated[str, typer.Option(
        envvar="SHARDS_METRICS_ADDRESS", help="Address for the metrics server.")] = "127.0.0.1",
    logs_port: Annotated[int, typer.Option(
        envvar="SHARDS_LOGS_PORT", help="Serve run logs to kubectl users on this port, each read "
                                        "decided by Kubernetes RBAC (kubectl shards logs; 0: off).")] = 0,
    logs_address: Annotated[str, typer.Option(
        envvar="SHARDS_LOGS_ADDRESS", help="Address for the logs server.")] = "127.0.0.1",
    logs_tls_cert: Annotated[str, typer.Option(
        envvar="SHARDS_LOGS_TLS_CERT", help="PEM certificate (chain): serve the logs over TLS.")] = "",
    logs_tls_key: Annotated[str, typer.Option(
        envvar="SHARDS_LOGS_TLS_KEY", help="PEM private key of --logs-tls-cert.")] = "",
    leader_election: Annotated[bool | None, typer.Option(
        "--leader-election/--no-leader-election", envvar="SHARDS_LEADER_ELECTION", show_default=False,
        help="Act only while holding a Lease, so that several replicas are safe [default: on in a pod "
             "($POD_NAMESPACE set, or a ServiceAccount mounted), off otherwise].")] = None,
    lease_name: Annotated[str, typer.Option(
        envvar="SHARDS_LEASE_NAME", help="Name of the Lease of the leader election.")] = "shards-operator",
    lease_namespace: Annotated[str, typer.Option(
        envvar="SHARDS_LEASE_NAMESPACE", show_default=False,
        help="Namespace of the Lease [default: $POD_NAMESPACE, else the pod's, else the kubeconfig's].",
    )] = "",
) -> None:
    """Run the Kubernetes operator: ShardProcess resources launch, stop and show processes.

    With leader election, every replica but one stands by (its health endpoint answers) and takes
    over within about 15 s when the leader dies, or within a few seconds when it stops on SIGTERM."""
    from shards.errors import ShardsError

    try:
        from shards_operator.resource import parse_grants
        from shards_operator.runner import run_operator
        from shards_operator.settings import OperatorSettings, leader_election_default
    except ImportError as error:
        needs = "the operator needs kopf and kubernetes: pip install 'shards-process-manager[operator]'"
        raise ShardsError(f"{needs} ({error})") from error
    serving()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = OperatorSettings(
        mongo_uri=mongo, namespaces=tuple(namespace or ()), grants=parse_grants(";".join(scope_grant or [])),
        status_interval=status_interval, delete_timeout=delete_timeout, liveness=liveness,
        metrics_port=metrics_port, metrics_address=metrics_address,
        logs_port=logs_port, logs_address=logs_address, logs_tls_cert=logs_tls_cert,
        logs_tls_key=logs_tls_key,
        leader_election=leader_election_default(os.environ) if leader_election is None else leader_election,
        lease_name=lease_name, lease_namespace=lease_namespace,
    )
    if metrics_port:
        serve_metrics(metrics_port, metrics_address)
    run_operator(settings)
