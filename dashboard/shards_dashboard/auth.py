"""Who may act: the token check and the address rules, plain Python (no I/O).

Reading is open to whoever reaches the server (loopback by default). Actions (run, stop,
dismiss, purge) need `Authorization: Bearer <token>` whenever a token is configured, and a
token is required to serve actions on any address but loopback; `--read-only` refuses every
action. Actions must also be JSON requests from the page's own origin, so another site open in
the same browser cannot post to a dashboard on 127.0.0.1."""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from shards.errors import ShardsError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class Refused(ShardsError):
    """An action the server will not take; `status` is its HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def startup_problem(host: str, token: str, read_only: bool) -> str:
    """Why the dashboard must not start with these settings, or ""."""
    if not is_loopback(host) and not token and not read_only:
        return (f"the dashboard on {host} would let anyone who reaches it run and stop processes: "
                "give it a token (--token or $SHARDS_DASHBOARD_TOKEN) or serve it --read-only")
    return ""


@dataclass(frozen=True)
class Guard:
    token: str = ""
    read_only: bool = False

    @property
    def token_required(self) -> bool:
        return bool(self.token) and not self.read_only

    def check_action(self, authorization: str | None, content_type: str | None = "application/json",
                     origin: str | None = None, host: str | None = None) -> None:
        """Raise Refused unless this request may act."""
        if self.read_only:
            raise Refused("this dashboard is read-only (started with --read-only)", 403)
        if not (content_type or "").split(";")[0].strip().lower() == "application/json":
            raise Refused("an action is a JSON request (Content-Type: application/json)", 415)
        if origin == "null":  # a sandboxed frame or a file:// page, of any site
            raise Refused("an action from an opaque origin (Origin: null) is refused", 403)
        if origin and host and urlsplit(origin).netloc.lower() != host.lower():
            raise Refused(f"an action from another origin ({origin}) is refused", 403)
        if self.token and not self.token_matches(authorization):
            raise Refused("this action needs the dashboard's token (Authorization: Bearer ...)", 401)

    def token_matches(self, authorization: str | None) -> bool:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            given = ""
        # compare_digest takes as long whatever the first differing byte: no timing oracle.
        return hmac.compare_digest(given.strip().encode(), self.token.encode())


def host_allowed(host_header: str | None, bound: str) -> bool:
    """On a loopback-bound dashboard, requests must name a loopback host (a web page that rebinds
    its own DNS name to 127.0.0.1 must not read the table). Elsewhere any Host is accepted."""
    if not is_loopback(bound):
        return True
    name = urlsplit(f"//{host_header or ''}").hostname or ""
    return is_loopback(name)
