"""`shards logs`: what a run logged through ctx.log (and its traceback if it failed); `-f` follows
a live run through a change stream on its log, and exits with the run's ending."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from shards_cli.app import Code, MongoOption, Output, OutputOption, ProcessArg, ScopeOption, app, controller
from shards_cli.documents import emit, stream

if TYPE_CHECKING:
    from shards.runlog import RunLog
    from shards_controller import Controller
    from shards_store import ChangeFeed

STATE_CHECK = 0.5  # seconds between reads of the run's state while following (its end is not a log change)


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
    """Prints each line of a run's log once, by its place in the run (dropped + index)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.shown = 0  # lines of the run printed or skipped so far

    def show(self, log: RunLog) -> None:
        first = log.dropped  # the place of log.lines[0] in the run
        if first > self.shown:  # lines came and went between two reads
            self._emit(log, None, first - self.shown)
            self.shown = first
        for line in log.lines[self.shown - first:]:
            self._emit(log, line, 0)
        self.shown = max(self.shown, first + len(log.lines))

    def _emit(self, log: RunLog, line: str | None, dropped: int) -> None:
        from shards.runlog import dropped_marker

        if self.as_json:
            stream({"runId": log.run_id, "line": line} if line is not None
                   else {"runId": log.run_id, "dropped": dropped})
        else:
            _print([line if line is not None else dropped_marker(dropped)])


def _follow(ctl: Controller, log: RunLog, timeout: float, *, as_json: bool) -> Code:
    """Print lines as they come until the run ends (its ending's code) or `timeout` (Code.TIMEOUT).
    Woken by a change stream on the run's log; a server without one is polled."""
    from shards.states import State
    from shards_store import ChangeFeedError

    from shards_cli.app import ending_code

    printer = Printer(as_json)
    printer.show(log)
    deadline = time.monotonic() + timeout
    feed: ChangeFeed | None = ctl.store.runlogs.feed(log.run_id)
    try:
        if feed is not None:
            feed.open()
    except ChangeFeedError:  # a server without change streams: read on a timer
        feed = None
    try:
        while log.active:
            now = time.monotonic()
            if now >= deadline:
                return Code.TIMEOUT
            wait = min(STATE_CHECK, deadline - now)
            if feed is not None:
                try:
                    feed.next_change(wait)
                except ChangeFeedError:  # a stream that broke: read on a timer from now on
                    feed.close()
                    feed = None
            else:
                time.sleep(wait)
            log = ctl.run_logs(log.scope_id, log.process_id, log.run_id)
            printer.show(log)
    finally:
        if feed is not None:
            feed.close()
    return ending_code(State(log.state))
