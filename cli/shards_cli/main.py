"""The `shards` command line: every Shards capability, scriptable (-o json) and readable.

The commands live in servers.py (mongo, worker, operator), actions.py (define, launch, wait, stop,
dismiss), views.py (status, list, history, scopes, workers, pools) and schedules.py (the
`schedule` commands)."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import Annotated, NoReturn

import typer

from shards_cli.app import Code, Lifetime, app

# Each registers its commands, listed in this order.
for _module in ("servers", "actions", "views", "logs", "dashboard", "schedules"):
    importlib.import_module(f"shards_cli.{_module}")


def _version(asked: bool) -> None:
    if asked:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"shards {version('shards-process-manager')}")  # the distribution's name
        except PackageNotFoundError:
            print("shards (not installed as a package)")
        raise typer.Exit()


@app.callback()
def shards(
    _version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Shards: named background processes on horizontally scaled workers.

    Exit codes: 0 done; 1 error (one line on stderr); 2 bad usage; 3 the run Failed; 4 it was
    Stopped; 5 a wait timed out; 6 queued, but no live worker will take it yet."""


def _leave(code: int) -> NoReturn:
    """Exit now with `code`: a short command skips pymongo's half-second atexit join."""
    if not Lifetime.quick_exit:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (| head): nothing more to say
            stream.flush()
    os._exit(code)


def main() -> None:
    """Entry point: every failure is one line on stderr and a non-zero exit, never a traceback."""
    from shards.errors import ShardsError, TimedOut

    try:
        app(prog_name="shards")  # also under python -m shards_cli: completion binds to `shards`
    except SystemExit as ended:  # click's own ending: done, a usage error (2), typer.Exit(code)
        _leave(ended.code if isinstance(ended.code, int) else Code.ERROR if ended.code else Code.DONE)
    except ShardsError as error:
        print(f"shards: error: {error}", file=sys.stderr)
        _leave(Code.TIMEOUT if isinstance(error, TimedOut) else Code.ERROR)
    except KeyboardInterrupt:
        _leave(130)
    except Exception as error:
        if os.environ.get("SHARDS_DEBUG"):
            raise
        detail = str(error).splitlines()[0] if str(error) else ""
        print(f"shards: error: {type(error).__name__}: {detail}", file=sys.stderr)
        _leave(Code.ERROR)
    _leave(Code.DONE)
