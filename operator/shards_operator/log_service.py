"""Run logs for people with kubectl and no MongoDB credentials (`kubectl shards logs`).

Who may read is decided by Kubernetes, as kube-rbac-proxy decides it: the request carries the
user's own token, the API server says who that is (TokenReview) and whether they may `get` the
ShardProcess (SubjectAccessReview). Nothing else grants a read: no shared token, and reaching
the port is not enough. The operator then reads the run's log with its own MongoDB credentials.

    GET /v1/namespaces/NS/shardprocesses/NAME/log[?attempt=N][&follow=true][&timeout=SECONDS]

The token comes in `Authorization: Bearer T`, or in `X-Shards-Authorization: Bearer T` when the
request comes through the API server's service proxy (which authenticates the user with the
first header and removes it). The answer is JSON lines: `{"line": ...}` or `{"dropped": N}` for
each entry, a blank keep-alive line while a followed run is quiet, and last
`{"runId", "state", "active"}`. A refusal is one JSON object `{"error": "..."}` with its status.
Plain Python on the standard library's HTTP server: no kopf, no Kubernetes client (reviews.py).
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from shards.errors import StoreUnavailable, UnknownProcess, UnknownRun, UnknownScope
from shards.retries import attempt_run_id
from shards.runlog import PROXIED_TOKEN_HEADER, LogCursor, RunLog
from shards_controller import Controller

from shards_operator.resource import Resource, may_use

log = logging.getLogger("shards.operator")

NAME = r"([a-z0-9][a-z0-9.-]{0,252})"  # a namespace's or an object's name (DNS subdomain)
PATH = re.compile(rf"^/v1/namespaces/{NAME}/shardprocesses/{NAME}/log$")
MAX_FOLLOW = 24 * 3600.0  # seconds a follow may last at most (the client asks for less)
KEEP_ALIVE = 15.0  # seconds of quiet after which a follower gets a blank line (proxies cut idle streams)
MAX_FOLLOWERS = 64  # follows served at once: each holds a thread and a change stream


@dataclass(frozen=True)
class Caller:
    """A user as the API server's TokenReview names them."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)


class Kube(Protocol):
    """What the log service asks Kubernetes (reviews.KubeReviews; a fake in unit tests)."""

    def authenticate(self, token: str) -> Caller | None: ...

    def may_get(self, caller: Caller, namespace: str, name: str) -> bool: ...

    def shard_process(self, namespace: str, name: str) -> Resource | None: ...


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LogQuery:
    namespace: str
    name: str
    attempt: int | None = None  # None: the current (or last) attempt
    follow: bool = False
    timeout: float = 3600.0


def parse_query(target: str) -> LogQuery:
    parts = urlsplit(target)
    matched = PATH.match(parts.path)
    if matched is None:
        raise Refused(404, "not found: the log of a ShardProcess is at "
                           "/v1/namespaces/NAMESPACE/shardprocesses/NAME/log")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    try:
        attempt = int(query["attempt"]) if query.get("attempt") else None
        timeout = float(query.get("timeout") or 3600.0)
    except ValueError as error:
        raise Refused(400, f"attempt must be a whole number, timeout seconds ({error})") from None
    if attempt is not None and attempt < 1:
        raise Refused(400, f"attempt counts from 1, got {attempt}")
    follow = query.get("follow", "false").lower() in ("1", "true", "yes")
    return LogQuery(matched.group(1), matched.group(2), attempt, follow, min(max(timeout, 0.0), MAX_FOLLOW))


def bearer_token(authorization: str | None, proxied: str | None) -> str:
    for header in (proxied, authorization):
        scheme, _, token = (header or "").strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    raise Refused(401, "no token: send the user's own bearer token (kubectl shards logs does)")


class LogService:
    """Decides each read with Kubernetes, then reads the run's log from the store."""

    def __init__(self, controller: Controller, kube: Kube, grants: dict[str, set[str]]) -> None:
        self.controller, self.kube, self.grants = controller, kube, grants
        self.followers = threading.BoundedSemaphore(MAX_FOLLOWERS)

    def read(self, token: str, query: LogQuery) -> tuple[Caller, RunLog]:
        """The run's log as it is now, for a caller Kubernetes allows; else Refused. The caller's
        right is checked before the resource is looked at: no one learns what they may not get."""
        caller = self.kube.authenticate(token)
        if caller is None:
            raise Refused(401, "the API server did not accept the token")
        if not self.kube.may_get(caller, query.namespace, query.name):
            raise Refused(403, f'user "{caller.username}" may not get shardprocesses "{query.name}" '
                               f'in namespace "{query.namespace}"')
        resource = self.kube.shard_process(query.namespace, query.name)
        if resource is None:
            raise Refused(404, f'shardprocesses "{query.name}" not found in namespace "{query.namespace}"')
        if not may_use(resource.namespace, resource.scope, self.grants):
            raise Refused(403, f'namespace "{resource.namespace}" may not use scope "{resource.scope}"')
        try:
            return caller, self.controller.run_logs(resource.scope, str(resource.spec.get("process")),
                                                    run_of(resource, query.attempt))
        except (UnknownRun, UnknownProcess, UnknownScope) as error:
            raise Refused(404, f"{query.name}: {error}") from None

    def entries(self, log: RunLog, query: LogQuery) -> Generator[dict[str, object] | None, None, None]:
        """The log's entries, then (following) those that come until the run ends or the query's
        timeout, with None for a keep-alive; last, the run's id and state."""
        cursor = LogCursor()
        yield from _entries(cursor, log)
        last, quiet_since = log, time.monotonic()
        if query.follow:
            for last in self.controller.follow_log(log, query.timeout):
                fresh = list(_entries(cursor, last))
                yield from fresh
                if fresh:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= KEEP_ALIVE:
                    quiet_since = time.monotonic()
                    yield None
        yield {"runId": last.run_id, "state": last.state, "active": last.active}


def _entries(cursor: LogCursor, log: RunLog) -> Iterator[dict[str, object]]:
    for entry in cursor.new_entries(log):
        yield {"line": entry} if isinstance(entry, str) else {"dropped": entry}


def run_of(resource: Resource, attempt: int | None) -> str:
    """The run id of the resource's latest launch: of its current attempt, or of attempt N."""
    if resource.launched_runs < 1:
        raise Refused(404, f"{resource.name} has not launched a run yet")
    if attempt is None and resource.status.get("runId"):
        return str(resource.status["runId"])
    return attempt_run_id(resource.launch_id(resource.launched_runs), attempt or 1)


class LogHandler(BaseHTTPRequestHandler):
    service: LogService  # set on the subclass serve_logs makes
    server_version = "shards-logs"

    def do_GET(self) -> None:
        try:
            query = parse_query(self.path)
            token = bearer_token(self.headers.get("Authorization"), self.headers.get(PROXIED_TOKEN_HEADER))
            caller, run_log = self.service.read(token, query)
        except Refused as refused:
            self._refuse(refused.status, str(refused))
            return
        except StoreUnavailable:
            self._refuse(503, "MongoDB is unreachable; try again")
            return
        except Exception:  # the Kubernetes API failed, or a bug: the detail goes to this log only
            log.exception("shards.operator: the log service failed on %s", urlsplit(self.path).path)
            self._refuse(500, "an error on the operator's side (its log has the detail)")
            return
        log.info("shards.operator: log of %s/%s (run %s) read by %s", query.namespace, query.name,
                 run_log.run_id, caller.username)
        if query.follow and not self.service.followers.acquire(blocking=False):
            self._refuse(429, f"this operator already serves {MAX_FOLLOWERS} follows; try again later")
            return
        try:
            self._answer(self.service.entries(run_log, query))
        finally:
            if query.follow:
                self.service.followers.release()

    def _answer(self, entries: Generator[dict[str, object] | None, None, None]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()  # HTTP/1.0: no length, the answer ends when the connection closes
        try:
            for entry in entries:
                self.wfile.write(b"\n" if entry is None else json.dumps(entry).encode() + b"\n")
                self.wfile.flush()
        except OSError:  # the client went: the generator's close ends the follow and its stream
            pass
        finally:
            entries.close()

    def _refuse(self, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:  # one INFO line per read above; never a header
        pass


def serve_logs(service: LogService, address: str, port: int, tls_cert: str = "",
               tls_key: str = "") -> ThreadingHTTPServer:
    """Serve the log service from a daemon thread (on every replica: reads need no leadership);
    TLS when given a certificate and key. The bound port is server.server_address[1]."""
    handler = type("BoundLogHandler", (LogHandler,), {"service": service})
    server = ThreadingHTTPServer((address, port), handler)
    server.daemon_threads = True
    if tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls_cert, tls_key or None)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="shards-log-service", daemon=True).start()
    log.info("shards.operator: serving run logs on %s:%d%s", address, server.server_address[1],
             " (TLS)" if tls_cert else "")
    return server
