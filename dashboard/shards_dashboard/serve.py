"""Start the dashboard: bind, build the app over one store, run uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import socket
import sys

from shards.errors import ShardsError
from shards_controller import Controller
from shards_store import Store

from shards_dashboard.auth import Guard, is_loopback, startup_problem
from shards_dashboard.feed import Follower
from shards_dashboard.hub import MAX_PAGES, MAX_PER_CLIENT, Hub
from shards_dashboard.server import Dashboard, build_app

log = logging.getLogger("shards.dashboard")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts: a port in use is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as error:
        sock.close()
        raise ShardsError(f"cannot serve the dashboard on {host}:{port}: {error.strerror or error} "
                          "(choose another --port or --host)") from error
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def describe(guard: Guard, host: str) -> str:
    if guard.read_only:
        return "read-only; reads need the token" if guard.token else "read-only"
    if guard.token:
        return "reads and actions need the token"
    return "actions open to this machine (loopback)" if is_loopback(host) else "actions open"


def serve(store: Store, *, host: str, port: int, token: str, read_only: bool, scope: str,
          poll: float = 0.0, max_live: int = MAX_PAGES, max_live_per_client: int = MAX_PER_CLIENT) -> None:
    problem = startup_problem(host, token, read_only)
    if problem:
        raise ShardsError(problem)
    import uvicorn

    guard = Guard(token=token, read_only=read_only)
    hub = Hub(max_pages=max_live, max_per_client=max_live_per_client)
    follower = Follower(store, hub, poll=poll)
    app = build_app(Dashboard(Controller(store), hub, guard, scope=scope, follower=follower), host)
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"shards: dashboard on http://{shown}:{sock.getsockname()[1]}/ (scope {scope}; "
          f"{describe(guard, host)})", file=sys.stderr, flush=True)
    # No access log: a request line holds no token, but the table's users need no line per poll.
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2,
                            lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
