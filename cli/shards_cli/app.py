"""The `shards` Typer app, its consoles, the options commands share, and the exit codes.

Only typer and rich load here: a command imports the store, controller or worker when it runs, so
`shards --help` starts in well under 150 ms (figure 8 of `make bench`)."""

from __future__ import annotations

import functools
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from shards.states import State
    from shards_controller import Controller

app = typer.Typer(
    name="shards",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain click help: rich markup would eat the "[default: ...]" of our help texts.
    rich_markup_mode=None,
)


class Code(IntEnum):
    """Exit codes. A run's ending maps to DONE, FAILED or STOPPED; see docs/cli.md's table."""

    DONE = 0
    ERROR = 1  # bad input, an unreachable server, a refused action
    USAGE = 2  # click's own: an unknown option or a missing argument
    FAILED = 3
    STOPPED = 4
    TIMEOUT = 5  # a bounded wait ran out; what was waited for may still happen
    NO_WORKER = 6  # queued, but no live worker will take it until one starts


def ending_code(state: State) -> Code:
    """The exit code of a run that ended in `state`."""
    return {"Failed": Code.FAILED, "Stopped": Code.STOPPED}.get(state.value, Code.DONE)


@functools.cache
def out() -> Console:
    """Standard output. No markup: what it prints holds names, ids and errors that users and
    processes wrote, brackets and all."""
    from rich.console import Console

    return Console(markup=False)


@functools.cache
def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, markup=False)


def controller(mongo: str | None) -> Controller:
    from shards_controller import Controller
    from shards_store import connect

    return Controller(connect(mongo))


class Output(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


MongoOption = Annotated[
    str | None,
    typer.Option("--mongo", help="MongoDB URI [default: $SHARDS_MONGO_URI, else the local embedded server]"),
]
ScopeOption = Annotated[
    str, typer.Option("--scope", "-s", envvar="SHARDS_SCOPE", help="The scope (tenant or data set).")
]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml.")]
ProcessArg = Annotated[str, typer.Argument(help="The process id.", metavar="PROC")]
WaitTimeoutOption = Annotated[float, typer.Option(
    min=0.0, help="Seconds to wait; then exit 5 (the run goes on).")]


class Lifetime:
    """Short commands leave with os._exit once their output is flushed: pymongo's monitor
    threads would hold a normal exit up to 0.5 s (its atexit joins them). Servers exit normally."""

    quick_exit = True


def serving() -> None:
    """Called by a long-running command: its exit runs every atexit handler."""
    Lifetime.quick_exit = False
