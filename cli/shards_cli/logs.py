"""`shards logs`: what a run logged through ctx.log (and its traceback if it failed); `-f` follows
a live run through a change stream on its log, and exits with the run's ending."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from shards_cli.app import Code, MongoOption, Output, OutputOption, ProcessArg, ScopeOption, app, controller
from shards_cli.documents import emit, stream

if TYPE_CHECKING:
    from shards.runlog import RunLog
    from shards_controller import Controller


@app.command(short_help="A run's log lines (default: the latest run); -f follows it live.")
def logs(
    process_id: ProcessArg,
    scope: ScopeOption = "default",
    mongo: MongoOption = None,
    output: OutputOption = Output.table,
    run: Annotated[str | None, typer.Option("--run", help="The run id (default: the latest run).")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Follow a live run until it ends; exit 0 Done, 3 Failed, 4 Stopped, "
                               "5 on --timeout (with -o json: one JSON object per line).")] = False,
    timeout: Annotated[float, typer.Option(min=0.0, help="Stop following after this many seconds.")] = 3600.0,
) -> None:
    """Print a run's log: its last lines (1,000 / 256 KiB at most; a marker says how many earlier
    lines were dropped), the traceback of a failure last."""
    if follow and output is Output.yaml:
        raise typer.BadParameter("-f prints lines or streams JSON lines (-o json), not YAML",
                                 param_hint="--output")
    ctl = controller(mongo)
    log = ctl.run_logs(scope, process_id, run)
    if not follow:
        if output is Output.table:
            _print(log.text_lines())
        else:
            emit(log.to_json(), output)
        return
    raise typer.Exit(_follow(ctl, log, timeout, as_json=output is Output.json))


def _print(lines: list[str]) -> None:
    """Plain lines, as the run wrote them (no markup, no wrapping)."""
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()


class Printer:
    """Prints each line of a run's log once (the SDK's LogCursor), as text or JSON lines."""

    def __init__(self, as_json: bool) -> None:
        from shards.runlog import LogCursor

        self.as_json = as_json
        self.cursor = LogCursor()

    def show(self, log: RunLog) -> None:
        from shards.runlog import dropped_marker

        for entry in self.cursor.new_entries(log):
            if self.as_json:
                stream({"runId": log.run_id, "line": entry} if isinstance(entry, str)
                       else {"runId": log.run_id, "dropped": entry})
            else:
                _print([entry if isinstance(entry, str) else dropped_marker(entry)])


def _follow(ctl: Controller, log: RunLog, timeout: float, *, as_json: bool) -> Code:
    """Print lines as they come until the run ends (its ending's code) or `timeout` (Code.TIMEOUT)."""
    from shards.states import State

    from shards_cli.app import ending_code

    printer = Printer(as_json)
    printer.show(log)
    last = log
    for last in ctl.follow_log(log, timeout):
        printer.show(last)
    return Code.TIMEOUT if last.active else ending_code(State(last.state))
