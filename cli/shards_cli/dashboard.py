"""`shards dashboard`: the process table as a live web page (the seed's GUI)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from shards_cli.app import MongoOption, app, serving


@app.command(short_help="The process table as a live web page (127.0.0.1:8765).")
def dashboard(
    mongo: MongoOption = None,
    scope: Annotated[str, typer.Option(
        "--scope", "-s", envvar="SHARDS_SCOPE",
        help="The scope the page opens on (it can pick others).")] = "default",
    host: Annotated[str, typer.Option(
        envvar="SHARDS_DASHBOARD_HOST",
        help="Address to listen on. Anything but loopback needs --token or --read-only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        min=0, max=65535, envvar="SHARDS_DASHBOARD_PORT",
        help="Port to listen on (0: any free one).")] = 8765,
    token: Annotated[str, typer.Option(
        envvar="SHARDS_DASHBOARD_TOKEN", show_default=False,
        help="Every read and action needs it: the page asks for it once (a session cookie), scripts "
             "send 'Authorization: Bearer TOKEN'. Prefer the environment variable: a command line is "
             "visible to others.")] = "",
    read_only: Annotated[bool, typer.Option(
        "--read-only", envvar="SHARDS_DASHBOARD_READ_ONLY", help="Show, never act: no action buttons; "
                                                                 "the server refuses actions.")] = False,
    max_live: Annotated[int, typer.Option(
        min=1, envvar="SHARDS_DASHBOARD_MAX_LIVE",
        help="Live pages (push channels) at once; more are refused (503).")] = 100,
    max_live_per_client: Annotated[int, typer.Option(
        min=1, envvar="SHARDS_DASHBOARD_MAX_LIVE_PER_CLIENT",
        help="Live pages from one client address (a proxy in front is one client).")] = 20,
    poll: Annotated[float, typer.Option(
        min=0.0, envvar="SHARDS_DASHBOARD_POLL",
        help="Also re-read the open scopes every this many seconds (0: the change stream alone), for "
             "servers whose change streams miss some updates.")] = 0.0,
) -> None:
    """Serve the process dashboard: the scope's table with Run, Stop and Dismiss, live progress
    (one change stream, pushed to each page), run history, workers and pools."""
    from shards.errors import ShardsError

    try:
        from shards_dashboard.auth import startup_problem
        from shards_dashboard.serve import serve
    except ImportError as error:
        raise ShardsError("the dashboard needs starlette and uvicorn: "
                          f"pip install 'shards-process-manager[dashboard]' ({error})") from error
    from shards_store import connect

    if problem := startup_problem(host, token, read_only):
        raise ShardsError(problem)
    serving()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serve(connect(mongo), host=host, port=port, token=token, read_only=read_only, scope=scope, poll=poll,
          max_live=max_live, max_live_per_client=max_live_per_client)
