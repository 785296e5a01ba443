"""The commands that show things: status (and its live --watch), list, history, scopes, workers
and pools. Each prints a table, or with -o json / -o yaml a document a script can read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from shards_cli.app import MongoOption, Output, OutputOption, ProcessArg, ScopeOption, app, controller, out
from shards_cli.documents import emit

if TYPE_CHECKING:
    from shards.records import ProcessRecord
    from shards_controller import Controller


def _documents(ctl: Controller, records: list[ProcessRecord]) -> list[dict[str, Any]]:
    """Records as scripts read them, each with why it waits ('' unless no worker offers it)."""
    waiting = ctl.waiting_reasons(records, max_age=1.0)
    return [{**r.to_json(), "waiting": waiting.get(r.process_id, "")} for r in records]


@app.command(short_help="State and progress of a process or a scope; --watch follows live.")
def status(
    process_id: Annotated[
        str | None, typer.Argument(metavar="[PROC]", help="One process (default: all).")
    ] = None,
    scope: ScopeOption = "default",
    mongo: MongoOption = None,
    output: OutputOption = Output.table,
    watch: Annotated[bool, typer.Option(
        help="Follow until nothing is active (with -o json: one JSON object per change); exit 0 "
             "when what was active ended Done, 3 if any Failed, 4 if any Stopped, 5 on --timeout.")] = False,
    timeout: Annotated[float, typer.Option(help="Stop watching after this many seconds.")] = 3600.0,
) -> None:
    """Show state and progress of one process, or of the whole scope."""
    from shards_cli.output import process_table

    if watch and output is Output.yaml:
        raise typer.BadParameter("--watch shows a table or streams JSON lines (-o json), not YAML",
                                 param_hint="--output")
    ctl = controller(mongo)

    def read() -> list[ProcessRecord]:
        return [ctl.get(scope, process_id)] if process_id else list(ctl.list(scope))

    def table(records: list[ProcessRecord]) -> Any:
        return process_table(records, scope, ctl.waiting_reasons(records, max_age=1.0))

    if watch:
        from shards_cli.watch import watch as follow

        code = follow(read, table, lambda records: _documents(ctl, records), timeout,
                      as_json=output is Output.json, single=process_id is not None)
        raise typer.Exit(code)
    records = read()
    if output is Output.table:
        out().print(table(records))
    else:
        documents = _documents(ctl, records)
        emit(documents[0] if process_id else documents, output)


@app.command(name="list", short_help="List a scope's processes, with the seed GUI's filters.")
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
    from shards_cli.output import process_table

    records = controller(mongo).list(
        scope, search=search, max_detail_level=detail_level, include_special=special, active_only=active
    )
    if output is Output.table:
        out().print(process_table(records, scope))
    else:
        emit([record.to_json() for record in records], output)


@app.command(short_help="A process's past runs, newest first.")
def history(
    process_id: ProcessArg,
    scope: ScopeOption = "default",
    mongo: MongoOption = None,
    output: OutputOption = Output.table,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many runs, newest first.")] = 20,
) -> None:
    """Show a process's past runs, one per attempt."""
    from shards_cli.output import history_table

    runs = controller(mongo).history(scope, process_id, limit)
    if output is not Output.table:
        emit([run.to_json() for run in runs], output)
    elif not runs:
        out().print(f"{scope}/{process_id}: no runs yet")
    else:
        out().print(history_table(runs))


@app.command(short_help="The scopes defined, with their processes.")
def scopes(mongo: MongoOption = None, output: OutputOption = Output.table) -> None:
    """List the scopes a define has written: state, processes, when and by which worker."""
    from shards_cli.output import scopes_table

    found = controller(mongo).store.scopes.all()
    if output is Output.table:
        out().print(scopes_table(found) if found else "no scopes yet (shards define --scope S)")
    else:
        emit([scope.to_json() for scope in found], output)


@app.command(short_help="List live workers, then pools with pending launches.")
def workers(mongo: MongoOption = None, output: OutputOption = Output.table) -> None:
    """List live workers (pool, host, pid, running processes, last heartbeat), then the pools
    with their pending launches."""
    from shards_controller import pool_summary

    from shards_cli.output import pools_table, workers_table

    store = controller(mongo).store
    alive = store.workers.alive()
    if output is not Output.table:
        emit([worker.to_json() for worker in alive], output)
        return
    out().print(workers_table(alive) if alive else "no live workers (shards worker APP)")
    out().print(pools_table(pool_summary(alive, store.requests.pending_launches())))


@app.command(short_help="Per pool: live workers, free slots, pending launches.")
def pools(mongo: MongoOption = None, output: OutputOption = Output.table) -> None:
    """Per pool: live workers, free slots and launches waiting for a worker."""
    from shards_controller import pool_summary

    from shards_cli.output import pools_table

    store = controller(mongo).store
    summary = pool_summary(store.workers.alive(), store.requests.pending_launches())
    if output is Output.table:
        out().print(pools_table(summary))
    else:
        emit(summary, output)
