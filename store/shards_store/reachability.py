"""Telling quickly and in one line why MongoDB cannot be reached.

pymongo retries a refused connection until its server selection timeout, then reports its whole
topology. A server on this machine is either listening or not: a plain TCP connect says which in
a few milliseconds, so a loopback URI with nothing listening fails at once, with what to do. A
remote server keeps the full timeout (its network may be slow), configurable by
SHARDS_MONGO_TIMEOUT.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time

from pymongo.errors import InvalidURI
from pymongo.uri_parser import parse_uri
from shards.errors import ShardsError

DEFAULT_TIMEOUT = 5.0
TIMEOUT_ENV = "SHARDS_MONGO_TIMEOUT"
LOOPBACK_PROBE_TIMEOUT = 0.5  # a local listener answers in microseconds; a busy machine may lag
# How long a loopback URI may go on refusing: a server started a moment ago (`shards mongo &`
# then a command) listens within half a second; nothing listening after that is an answer.
LOOPBACK_GRACE = 1.0


def mongo_timeout(timeout: float | None) -> float:
    """The timeout in seconds: the caller's, else $SHARDS_MONGO_TIMEOUT, else 5 s."""
    if timeout is not None:
        return timeout
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ShardsError(f"{TIMEOUT_ENV} must be a positive number of seconds, not {text!r}")
    return value


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_nodes(uri: str) -> list[tuple[str, int]]:
    """The URI's hosts when every one of them is on this machine; empty otherwise (a remote or
    DNS-seeded URI, or one pymongo will reject with its own message)."""
    if not uri.startswith("mongodb://"):
        return []
    try:
        nodes = [(str(host), int(port)) for host, port in parse_uri(uri)["nodelist"]]
    except (InvalidURI, ValueError):
        return []
    return nodes if nodes and all(is_loopback(host) for host, _ in nodes) else []


def listens(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_loopback_listens(uri: str, shown_uri: str) -> None:
    """Fail within about a second when the URI names only this machine and nothing listens
    there."""
    nodes = loopback_nodes(uri)
    if not nodes:
        return
    deadline = time.monotonic() + LOOPBACK_GRACE
    while not any(listens(host, port, LOOPBACK_PROBE_TIMEOUT) for host, port in nodes):
        if time.monotonic() >= deadline:
            host, port = nodes[0]
            raise ShardsError(
                f"cannot reach MongoDB at {shown_uri}: nothing listens on {host}:{port}; "
                f"start it with: shards mongo --port {port} (or set SHARDS_MONGO_URI to a running server)"
            )
        time.sleep(0.1)


def brief(error: Exception) -> str:
    """pymongo's error without its timeouts and topology dump: the first cause only."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    for tail in (" (configured timeouts", ", Timeout:", ", Topology Description"):
        text = text.split(tail)[0]
    return text[:200]
