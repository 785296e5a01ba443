"""A ShardProcess's run log, read from the operator's log service as JSON lines.

By default the request goes through the API server's service proxy to the operator's Service
(port `logs`), so it works wherever kubectl does; the API server takes the Authorization header
for itself, so the user's token also travels in X-Shards-Authorization, for the operator to have
it reviewed. `--server URL` talks to the service directly (a port-forward, an Ingress)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3
from shards.errors import ShardsError
from shards.runlog import PROXIED_TOKEN_HEADER

from shards_kubectl.cluster import UserCluster

LOGS_PORT = "logs"  # the name of the operator Service's port
TIMEOUT = urllib3.Timeout(connect=10.0, read=60.0)  # a follower hears at least a keep-alive every 15 s


@dataclass(frozen=True)
class LogRequest:
    namespace: str
    name: str
    attempt: int | None = None
    follow: bool = False
    timeout: float = 3600.0

    @property
    def path(self) -> str:
        return f"/v1/namespaces/{quote(self.namespace)}/shardprocesses/{quote(self.name)}/log"

    @property
    def params(self) -> list[tuple[str, str]]:
        params = [("follow", "true" if self.follow else "false"), ("timeout", f"{self.timeout:g}")]
        return params + ([("attempt", str(self.attempt))] if self.attempt is not None else [])


def parse_operator(text: str) -> tuple[str, str]:
    """NAMESPACE/SERVICE of the operator's Service."""
    namespace, _, service = text.partition("/")
    if not namespace or not service or "/" in service:
        raise ShardsError(f"--operator takes NAMESPACE/SERVICE (the operator's Service), got {text!r}")
    return namespace, service


def read_log(cluster: UserCluster, request: LogRequest, operator: str,
             server: str | None) -> Iterator[dict[str, Any]]:
    """The log service's entries, one dict per JSON line (keep-alives skipped), as they come."""
    token = cluster.token()
    if server:
        http, url, through = urllib3.PoolManager(), server.rstrip("/") + request.path, ""
        headers = {"Authorization": f"Bearer {token}"}
    else:  # the API server's client, with the kubeconfig's TLS settings and credentials
        namespace, service = parse_operator(operator)
        http, through = cluster.api.rest_client.pool_manager, f"{namespace}/{service}"
        url = (f"{cluster.api.configuration.host}/api/v1/namespaces/{namespace}/services/"
               f"http:{service}:{LOGS_PORT}/proxy{request.path}")
        headers = {"Authorization": f"Bearer {token}", PROXIED_TOKEN_HEADER: f"Bearer {token}"}
    try:
        response = http.request("GET", url, fields=request.params, headers=headers, preload_content=False,
                                timeout=TIMEOUT, retries=False)
    except urllib3.exceptions.HTTPError as error:
        raise ShardsError(f"cannot reach {server or 'the API server'}: {error}") from None
    try:
        if response.status != 200:
            raise ShardsError(refusal(response.status, response.read(), through))
        yield from _lines(response)
    finally:
        response.release_conn()


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[dict[str, Any]]:
    pending = b""
    while True:
        try:
            chunk = response.read1(64 * 1024)  # what has come, without waiting for more
        except urllib3.exceptions.HTTPError as error:  # cut, or silent past the read timeout
            raise ShardsError(f"the log stream broke ({error}): run the command again") from None
        if not chunk:
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)


def refusal(status: int | None, body: bytes | str | None, operator: str = "") -> str:
    """One line for a refused read: the log service's own error, or what the API server said
    (the proxy refused, the operator's Service has no ready endpoint)."""
    try:
        said = json.loads(body or b"{}")
    except ValueError:
        said = {}
    if isinstance(said, dict) and said.get("error"):
        return str(said["error"])
    message = str(said.get("message") or "") if isinstance(said, dict) else ""
    if status == 404 and operator:
        return (f"no operator log service at {operator} (its Service, port {LOGS_PORT!r}): name the "
                f"operator's Service with --operator NAMESPACE/SERVICE or $SHARDS_OPERATOR "
                f"({message or 'not found'})")
    if status == 503 and operator:
        return f"the operator's log service at {operator} has no ready endpoint: {message or 'unavailable'}"
    return f"the log service answered {status}: {message or (body or b'')[:200]!r}"
