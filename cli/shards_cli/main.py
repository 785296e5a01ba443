"""The `shards` command line: every Shards capability, scriptable (-o json) and readable."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from shards.errors import InvalidArgs, ShardsError
from shards.records import DEFAULT_POOL, ProcessRecord
from shards.states import FINAL, State
from shards_controller import Controller, pool_summary
from shards_store import connect
from shards_store.embedded import embedded_command, prepare_data_dir
from shards_worker import Worker, WorkerSettings, load_app
from shards_worker.metrics import serve

from shards_cli.output import (
    history_table,
    pools_table,
    print_json,
    process_table,
    watch_table,
    workers_table,
)

app = typer.Typer(
    name="shards",
    help="Shards: named background processes on horizontally scaled workers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help: rich markup would eat the "[default: ...]" of our help texts.
    rich_markup_mode=None,
)
# No markup: what these print holds names, ids and errors users and processes wrote, brackets and all.
out = Console(markup=False)
err = Console(stderr=True, markup=False)


class Output(StrEnum):
    table = "table"
    json = "json"


class Isolation(StrEnum):
    process = "process"
    thread = "thread"


MongoOption = Annotated[
    str | None,
    typer.Option("--mongo", help="MongoDB URI [default: $SHARDS_MONGO_URI, else the local embedded server]"),
]
ScopeOption = Annotated[
    str, typer.Option("--scope", "-s", envvar="SHARDS_SCOPE", help="The scope (tenant or data set).")
]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table or json")]
ProcessArg = Annotated[str, typer.Argument(help="The process id.", metavar="PROC")]


def _controller(mongo: str | None) -> Controller:
    return Controller(connect(mongo))


def _parse_args(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArgs(f"--args is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise InvalidArgs(f"--args must be a JSON object, got {type(value).__name__}")
    return value


def _say(record: ProcessRecord, verb: str) -> None:
    out.print(f"{record.scope_id}/{record.process_id}: {verb} ({record.state.value})", soft_wrap=True)


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
    command = embedded_command(port, data, host)
    prepare_data_dir(data)
    err.print(f"shards: embedded MongoDB on mongodb://{host}:{port}/shards (data in {data})")
    sys.stdout.flush()
    os.execv(command[0], command)


@app.command(short_help="Run a worker for APP: claim, execute, report progress.")
def worker(
    app_spec: Annotated[str, typer.Argument(
        metavar="APP", envvar="SHARDS_APP", help="module:attribute or file.py:attribute")],
    mongo: MongoOption = None,
    pool: Annotated[str, typer.Option(
        envvar="SHARDS_POOL", help="Claim launches of this pool's processes only.")] = DEFAULT_POOL,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Processes run at once.")] = 1,
    lease: Annotated[float, typer.Option(min=1.0, help="Seconds of silence before a worker is lost.")] = 15.0,
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
    from shards_worker.logs import capture_prints, configure_logging

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
    runner = Worker(connect(mongo), application, settings, worker_id, app_spec=app_spec)
    if metrics_port:
        serve(metrics_port, metrics_address)
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
) -> None:
    """Run the Kubernetes operator: ShardProcess resources launch, stop and show processes."""
    try:
        from shards_operator.resource import parse_grants
        from shards_operator.runtime import OperatorSettings, run_operator
    except ImportError as error:
        needs = "the operator needs kopf and kubernetes: pip install 'shards[operator]'"
        raise ShardsError(f"{needs} ({error})") from error
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = OperatorSettings(
        mongo_uri=mongo, namespaces=tuple(namespace or ()), grants=parse_grants(";".join(scope_grant or [])),
        status_interval=status_interval, delete_timeout=delete_timeout, liveness=liveness,
    )
    if metrics_port:
        serve(metrics_port, metrics_address)
    run_operator(settings)


@app.command(short_help="Define (or redefine) a scope's processes.")
def define(
    scope: ScopeOption = "default",
    mongo: MongoOption = None,
    only_if_missing: Annotated[bool, typer.Option(help="Do nothing if the scope is defined.")] = False,
    clean: Annotated[bool, typer.Option(help="Drop the scope's idle records first.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait until a worker has defined it.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 30.0,
) -> None:
    """Define (or redefine) a scope's processes from a worker's catalog."""
    controller = _controller(mongo)
    request = controller.define(scope, only_if_missing=only_if_missing, clean=clean)
    if not wait:
        out.print(f"{scope}: define requested")
        return
    defined = controller.wait_defined(request, timeout)
    names = ", ".join(defined.process_ids)
    count = len(defined.process_ids)
    out.print(f"{scope}: {count} process{'' if count == 1 else 'es'} defined ({names})", soft_wrap=True)


@app.command()
def launch(
    process_id: ProcessArg,
    scope: ScopeOption = "default",
    mongo: MongoOption = None,
    args: Annotated[str | None, typer.Option("--args", help="Arguments as a JSON object.")] = None,
    confirm: Annotated[bool, typer.Option(help="Confirm launching a process with a warning.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait for the run to end; exit 1 unless Done.")] = False,
    wait_timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 600.0,
    timeout: Annotated[float | None, typer.Option(
        help="Each attempt's time limit in seconds (default: the process's own): at the deadline it "
             "is asked to stop, killed after the worker's --stop-grace, and fails.")] = None,
    retries: Annotated[int | None, typer.Option(
        help="Run a failed attempt again up to this many times (default: the process's own; a "
             "shards.Permanent error or a stop is never retried).")] = None,
    retry_backoff: Annotated[float | None, typer.Option(
        help="Seconds before the first retry, doubling for each next one, with jitter "
             "(default: the process's own, else 1).")] = None,
) -> None:
    """Launch a process (a process with a warning needs --confirm)."""
    controller = _controller(mongo)
    record = controller.launch(scope, process_id, args=_parse_args(args), confirm=confirm, timeout=timeout,
                               retries=retries, retry_backoff=retry_backoff)
    _say(record, "launched")
    if wait:
        launch_id = record.launch_id
        ended = controller.wait(scope, process_id,
                                lambda r: r.launch_id != launch_id or r.state in FINAL, wait_timeout)
        error = f": {ended.status.error}" if ended.status.error else ""
        out.print(f"{scope}/{process_id}: ended {ended.state.value}{error}", soft_wrap=True)
        if ended.state is not State.DONE:
            raise typer.Exit(1)


@app.command(short_help="Stop a scheduled or running process; --force kills it.")
def stop(
    process_id: ProcessArg, scope: ScopeOption = "default", mongo: MongoOption = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Kill the run now if it runs in an OS process of its own (--isolation process); "
                        "a run in a thread can only be asked to stop.")] = False,
) -> None:
    """Stop a scheduled or running process, whichever worker runs it; with --force, kill it."""
    record = _controller(mongo).stop(scope, process_id, force=force)
    _say(record, "kill requested" if force else "stop requested")


@app.command()
def dismiss(process_id: ProcessArg, scope: ScopeOption = "default", mongo: MongoOption = None) -> None:
    """Clear a process's error and progress; back to Idle."""
    _say(_controller(mongo).dismiss(scope, process_id), "dismissed")


@app.command()
def status(
    process_id: Annotated[
        str | None, typer.Argument(metavar="[PROC]", help="One process (default: all).")
    ] = None,
    scope: ScopeOption = "default",
    mongo: MongoOption = None,
    output: OutputOption = Output.table,
    watch: Annotated[bool, typer.Option(help="Live progress bars until nothing is active.")] = False,
    timeout: Annotated[float, typer.Option(help="Stop watching after this many seconds.")] = 3600.0,
) -> None:
    """Show state and progress of one process, or of the whole scope."""
    controller = _controller(mongo)

    def read() -> list[ProcessRecord]:
        if process_id:
            return [controller.get(scope, process_id)]
        return list(controller.list(scope))

    if watch:
        watch_table(out, read, lambda rs: process_table(rs, scope, controller.waiting_reasons(rs)), timeout)
    elif output is Output.json:
        records = read()
        waiting = controller.waiting_reasons(records)
        shown = [{**r.to_json(), "waiting": waiting.get(r.process_id, "")} for r in records]
        print_json(out, shown[0] if process_id else shown)
    else:
        records = read()
        out.print(process_table(records, scope, controller.waiting_reasons(records)))


@app.command(name="list")
def list_processes(
    scope: ScopeOption = "default",
    mongo: MongoOption = None,
    output: OutputOption = Output.table,
    search: Annotated[str, typer.Option(help="Only processes whose name or id contains this.")] = "",
    detail_level: Annotated[int, typer.Option(min=1, max=4, help="Hide processes above this level.")] = 4,
    special: Annotated[bool, typer.Option(help="Show special (debugging) processes.")] = True,
    active: Annotated[bool, typer.Option(help="Only scheduled, running or stopping ones.")] = False,
) -> None:
    """List a scope's processes, with the seed GUI's filters."""
    records = _controller(mongo).list(
        scope, search=search, max_detail_level=detail_level, include_special=special, active_only=active
    )
    if output is Output.json:
        print_json(out, [record.to_json() for record in records])
    else:
        out.print(process_table(records, scope))


@app.command()
def history(
    process_id: ProcessArg,
    scope: ScopeOption = "default",
    mongo: MongoOption = None,
    output: OutputOption = Output.table,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many runs, newest first.")] = 20,
) -> None:
    """Show a process's past runs."""
    runs = _controller(mongo).history(scope, process_id, limit)
    if output is Output.json:
        print_json(out, [run.to_json() for run in runs])
    elif not runs:
        out.print(f"{scope}/{process_id}: no runs yet")
    else:
        out.print(history_table(runs))


@app.command(short_help="List live workers, then pools with pending launches.")
def workers(mongo: MongoOption = None, output: OutputOption = Output.table) -> None:
    """List live workers (pool, host, pid, running processes, last heartbeat), then the pools
    with their pending launches."""
    store = connect(mongo)
    alive = store.workers.alive()
    if output is Output.json:
        print_json(out, [worker.to_json() for worker in alive])
    else:
        out.print(workers_table(alive))
        out.print(pools_table(pool_summary(alive, store.requests.pending_launches())))


@app.command(short_help="Per pool: live workers, free slots, pending launches.")
def pools(mongo: MongoOption = None, output: OutputOption = Output.table) -> None:
    """Per pool: live workers, free slots and launches waiting for a worker."""
    store = connect(mongo)
    summary = pool_summary(store.workers.alive(), store.requests.pending_launches())
    if output is Output.json:
        print_json(out, summary)
    else:
        out.print(pools_table(summary))


def main() -> None:
    """Entry point: every failure is one line on stderr and a non-zero exit, never a traceback."""
    try:
        app()
    except ShardsError as error:
        print(f"shards: error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        if os.environ.get("SHARDS_DEBUG"):
            raise
        detail = str(error).splitlines()[0] if str(error) else ""
        print(f"shards: error: {type(error).__name__}: {detail}", file=sys.stderr)
        sys.exit(1)
