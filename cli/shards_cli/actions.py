"""The commands that change things: define, launch, stop, dismiss; and wait, which scripts pair
with them. Each prints one line per outcome, or the record with -o json / -o yaml."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shards_cli.app import (
    Code,
    MongoOption,
    Output,
    OutputOption,
    ProcessArg,
    ScopeOption,
    WaitTimeoutOption,
    app,
    controller,
    ending_code,
    err,
    out,
)
from shards_cli.documents import emit

if TYPE_CHECKING:
    from datetime import datetime

    from shards.records import ProcessRecord
    from shards_controller import Controller


def parse_args(text: str | None) -> dict[str, Any]:
    """--args: a JSON object, or @FILE (@- for standard input) holding one."""
    from shards.errors import InvalidArgs

    if not text:
        return {}
    if text.startswith("@"):
        try:
            text = sys.stdin.read() if text == "@-" else Path(text[1:]).read_text()
        except OSError as error:
            raise InvalidArgs(f"--args {text}: {error.strerror or error}") from error
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArgs(f"--args is not valid JSON: {error}") from error
    except RecursionError as error:  # the decoder's own limit, far beyond what a launch accepts
        from shards_controller.inputs import MAX_ARGS_DEPTH

        limit = f"the limit is {MAX_ARGS_DEPTH} levels"
        raise InvalidArgs(f"--args nests too deeply to decode ({limit})") from error
    if not isinstance(value, dict):
        raise InvalidArgs(f"--args must be a JSON object, got {type(value).__name__}")
    return value


def _say(record: ProcessRecord, what: str, output: Output, extra: dict[str, Any] | None = None) -> None:
    """One line for a person, or the record as a document for a script."""
    if output is Output.table:
        out().print(f"{record.scope_id}/{record.process_id}: {what}", soft_wrap=True)
    else:
        emit({**record.to_json(), **(extra or {})}, output)


def _warn(message: str) -> None:
    err().print(f"shards: warning: {message}", soft_wrap=True)


def _ended(ctl: Controller, record: ProcessRecord, timeout: float,
           launch_id: str | None = None) -> tuple[ProcessRecord, Code]:
    """Wait for the launch behind `record` (or `launch_id`, which may still wait in its queue)
    to end, across its retries: its final record and the exit code of its ending. A launch
    dismissed, dropped from the queue or launched again meanwhile ends as its last run."""
    from shards.errors import NotActive, TimedOut
    from shards.states import ACTIVE

    launch_id = launch_id or record.launch_id
    seen = [record]

    def over(current: ProcessRecord) -> bool:
        if current.launch_id == launch_id:
            seen[0] = current
            return current.state not in ACTIVE
        return not any(queued.run_id == launch_id for queued in current.queue)

    try:
        current = ctl.wait(record.scope_id, record.process_id, over, timeout)
    except TimedOut as error:
        state = seen[0].state.value if seen[0].launch_id == launch_id else "queued"
        raise TimedOut(f"{record.scope_id}/{record.process_id}: still {state} after "
                       f"{timeout:g} s (it goes on)") from error
    if current.launch_id == launch_id and current.state.value in ("Done", "Failed", "Stopped"):
        return current, ending_code(current.state)
    if seen[0].launch_id != launch_id:
        raise NotActive(f"{record.scope_id}/{record.process_id}: run {launch_id} left the queue "
                        "without starting (the process was stopped or dismissed)")
    last_run = ctl.store.runs.get(seen[0].run_id)
    return current, (ending_code(last_run.state) if last_run else Code.DONE)


def _report_end(record: ProcessRecord, code: Code, output: Output) -> None:
    error = f": {record.status.error}" if record.status.error and code is Code.FAILED else ""
    _say(record, f"ended {record.state.value}{error}", output)
    if code is not Code.DONE:
        raise typer.Exit(code)


@app.command(short_help="Define (or redefine) a scope's processes.")
def define(
    scope: ScopeOption = "default",
    mongo: MongoOption = None,
    only_if_missing: Annotated[bool, typer.Option(help="Do nothing if the scope is defined.")] = False,
    clean: Annotated[bool, typer.Option(help="Drop the scope's idle records first.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait until a worker has defined it.")] = True,
    timeout: WaitTimeoutOption = 30.0,
    output: OutputOption = Output.table,
) -> None:
    """Define (or redefine) a scope's processes from a worker's catalog. With no live worker the
    define stays queued (a worker that starts does it) and the exit code is 6."""
    ctl = controller(mongo)
    request = ctl.define(scope, only_if_missing=only_if_missing, clean=clean)
    if not ctl.store.workers.alive():
        _warn(f"{scope}: no worker is alive; the define is queued and runs when one starts "
              "(shards worker APP)")
        raise typer.Exit(Code.NO_WORKER)
    if not wait:
        if output is Output.table:
            out().print(f"{scope}: define requested")
        else:
            emit({"scope": scope, "requestId": str(request.id)}, output)
        return
    defined = ctl.wait_defined(request, timeout)
    if output is not Output.table:
        emit({"scope": scope, "processIds": defined.process_ids}, output)
        return
    count = len(defined.process_ids)
    names = ", ".join(defined.process_ids)
    out().print(f"{scope}: {count} process{'' if count == 1 else 'es'} defined ({names})", soft_wrap=True)


@app.command(short_help="Launch a process; prints its run id.")
def launch(
    process_id: ProcessArg,
    scope: ScopeOption = "default",
    mongo: MongoOption = None,
    args: Annotated[str | None, typer.Option(
        "--args", help="Arguments as a JSON object, or @FILE holding one (@- reads standard input).")] = None,
    confirm: Annotated[bool, typer.Option(help="Confirm launching a process with a warning.")] = False,
    wait: Annotated[bool, typer.Option(
        help="Wait for the launch to end (across its retries); exit 0 Done, 3 Failed, 4 Stopped, "
             "5 timed out.")] = False,
    wait_timeout: WaitTimeoutOption = 600.0,
    timeout: Annotated[float | None, typer.Option(
        help="Each attempt's time limit in seconds (default: the process's own): at the deadline it "
             "is asked to stop, killed after the worker's --stop-grace, and fails.")] = None,
    retries: Annotated[int | None, typer.Option(
        help="Run a failed attempt again up to this many times (default: the process's own; a "
             "shards.Permanent error or a stop is never retried).")] = None,
    retry_backoff: Annotated[float | None, typer.Option(
        help="Seconds before the first retry, doubling for each next one, with jitter "
             "(at least 0.1; default: the process's own, else 1).")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", metavar="TIME", help="Start at this time: ISO 8601 with Z or an offset "
                                     "(2026-12-05T10:00:00Z); Scheduled until then.")] = None,
    delay: Annotated[str | None, typer.Option(
        "--in", metavar="DURATION", help="Start after this long: 90s, 10m, 1h30m, 2d.")] = None,
    queue: Annotated[bool, typer.Option(
        "--queue", help="If the process is active, wait behind its run (and any already waiting) "
                        "instead of being refused.")] = False,
    output: OutputOption = Output.table,
) -> None:
    """Launch a process (a process with a warning needs --confirm). Prints the run id; with no
    live worker to take it, says so on stderr (the launch waits for one). --at/--in delay the
    start; --queue waits behind an active run."""
    import uuid

    from shards.records import utcnow

    from shards_cli.times import launch_start

    now = utcnow()
    start_at = launch_start(at, delay, queue, now)
    ctl = controller(mongo)
    # A run id of our own when queueing: it tells whether this launch started or waits.
    run_id = uuid.uuid4().hex if queue else None
    record = ctl.launch(scope, process_id, args=parse_args(args), confirm=confirm, timeout=timeout,
                        retries=retries, retry_backoff=retry_backoff, at=start_at, queue=queue,
                        run_id=run_id)
    waiting = ctl.waiting_reasons([record]).get(process_id, "")
    if waiting:
        _warn(f"{scope}/{process_id}: {waiting}")
    _say(record, _launched(record, run_id, now), output, {"waiting": waiting})
    if wait:
        ended, code = _ended(ctl, record, wait_timeout, run_id)
        _report_end(ended, code, output)


def _launched(record: ProcessRecord, run_id: str | None, now: datetime) -> str:
    """What launch says: the run started, starts later, or waits behind the active run."""
    from shards_cli.ages import ago
    from shards_cli.times import stamp

    if run_id is not None and any(queued.run_id == run_id for queued in record.queue):
        return f"queued behind run {record.run_id} ({len(record.queue)} waiting), run {run_id}"
    start_at = record.status.start_at
    if start_at is not None and record.status.retry_at is None:
        return (f"launched ({record.state.value}), starts at {stamp(start_at)} ({ago(start_at, now)}), "
                f"run {record.run_id}")
    return f"launched ({record.state.value}), run {record.run_id}"


@app.command(short_help="Wait for a launch to end; its ending is the exit code.")
def wait(
    process_id: ProcessArg,
    scope: ScopeOption = "default",
    mongo: MongoOption = None,
    timeout: WaitTimeoutOption = 600.0,
    output: OutputOption = Output.table,
) -> None:
    """Wait for the process's current launch to end, across its retries, and exit with its
    ending: 0 Done, 3 Failed, 4 Stopped; 5 when --timeout runs out first. A launch that has
    ended already answers at once; a process never launched is an error (exit 1)."""
    from shards.errors import NotActive
    from shards.states import State

    ctl = controller(mongo)
    record = ctl.get(scope, process_id)
    if record.state is State.IDLE:
        raise NotActive(f"process {process_id!r} in scope {scope!r} is Idle: nothing to wait for")
    ended, code = _ended(ctl, record, timeout)
    _report_end(ended, code, output)


@app.command(short_help="Stop a scheduled or running process; --force kills it.")
def stop(
    process_id: ProcessArg,
    scope: ScopeOption = "default",
    mongo: MongoOption = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Kill the run now if it runs in an OS process of its own (--isolation process); "
                        "a run in a thread can only be asked to stop.")] = False,
    wait: Annotated[bool, typer.Option(
        help="Wait until the run has ended (Stopped, or Done/Failed if it finished first): exit 0, "
             "or 5 if --wait-timeout runs out first.")] = False,
    wait_timeout: WaitTimeoutOption = 60.0,
    output: OutputOption = Output.table,
) -> None:
    """Stop a scheduled or running process, whichever worker runs it; with --force, kill it."""
    ctl = controller(mongo)
    record = ctl.stop(scope, process_id, force=force)
    if not wait:
        _say(record, f"{'kill' if force else 'stop'} requested ({record.state.value})", output)
        return
    ended, _code = _ended(ctl, record, wait_timeout)
    _say(ended, f"ended {ended.state.value}", output)


@app.command(short_help="Clear a process's error and progress; back to Idle.")
def dismiss(
    process_id: ProcessArg, scope: ScopeOption = "default", mongo: MongoOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Clear a process's error and progress; back to Idle."""
    record = controller(mongo).dismiss(scope, process_id)
    _say(record, f"dismissed ({record.state.value})", output)
