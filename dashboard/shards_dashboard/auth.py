"""Who may read and act: the token, the session cookie and the address rules, plain Python
(no I/O).

Without a token, the dashboard is open to whoever reaches it (loopback by default; a token is
required to serve actions on any other address). With a token, every read and every action
needs it, except the page's shell (its HTML, JS and CSS, so that the user can type the token)
and /api/config: either `Authorization: Bearer <token>` (scripts), or the session cookie the
page gets by posting the token to /api/login once (an EventSource cannot send a header). The
cookie is HttpOnly, SameSite=Strict (and Secure over TLS); it holds no token, only a time and
an HMAC of it keyed by the token, so it expires (SESSION_TTL) and changing the token revokes
every session. `--read-only` refuses every action. Actions and logins must also be JSON
requests from the page's own origin, so another site open in the same browser cannot post to a
dashboard on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from shards.errors import ShardsError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
SESSION_COOKIE = "shards_session"
SESSION_TTL = 12 * 3600  # seconds a login lasts
NEEDS_TOKEN = ("this dashboard needs its token: log in on its page, or send "
               "'Authorization: Bearer TOKEN'")


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
        """Reads and actions need the token (or a session from it)."""
        return bool(self.token)

    def authorized(self, authorization: str | None, session: str | None, now: float | None = None) -> bool:
        """May this request read (and, unless read-only, act)? Always, without a token."""
        if not self.token:
            return True
        return self.token_matches(authorization) or self.session_valid(session, now)

    def check_request(self, content_type: str | None, origin: str | None, host: str | None) -> None:
        """A state-changing request (an action, a login) is JSON from the page's own origin."""
        if not (content_type or "").split(";")[0].strip().lower() == "application/json":
            raise Refused("an action is a JSON request (Content-Type: application/json)", 415)
        if origin == "null":  # a sandboxed frame or a file:// page, of any site
            raise Refused("an action from an opaque origin (Origin: null) is refused", 403)
        if origin and host and urlsplit(origin).netloc.lower() != host.lower():
            raise Refused(f"an action from another origin ({origin}) is refused", 403)

    def check_action(self, authorization: str | None, content_type: str | None = "application/json",
                     origin: str | None = None, host: str | None = None, session: str | None = None) -> None:
        """Raise Refused unless this request may act."""
        if self.read_only:
            raise Refused("this dashboard is read-only (started with --read-only)", 403)
        self.check_request(content_type, origin, host)
        if not self.authorized(authorization, session):
            raise Refused(NEEDS_TOKEN, 401)

    def token_matches(self, authorization: str | None) -> bool:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            given = ""
        return self.is_token(given.strip())

    def is_token(self, given: str) -> bool:
        # compare_digest takes as long whatever the first differing byte: no timing oracle.
        return bool(self.token) and hmac.compare_digest(given.encode(), self.token.encode())

    # -- sessions -------------------------------------------------------------------------------
    def new_session(self, now: float | None = None) -> str:
        """A session cookie's value: issued-at, a nonce, and their HMAC keyed by the token."""
        issued = f"{int(time.time() if now is None else now)}.{secrets.token_urlsafe(16)}"
        return f"{issued}.{self._mac(issued)}"

    def session_valid(self, value: str | None, now: float | None = None) -> bool:
        issued, _, mac = (value or "").rpartition(".")
        stamp = issued.partition(".")[0]
        if not self.token or not mac or not stamp.isdigit():
            return False
        age = (time.time() if now is None else now) - int(stamp)
        return 0 <= age <= SESSION_TTL and hmac.compare_digest(mac.encode(), self._mac(issued).encode())

    def _mac(self, issued: str) -> str:
        return hmac.new(self.token.encode(), f"shards-dashboard-session:{issued}".encode(),
                        hashlib.sha256).hexdigest()


def host_allowed(host_header: str | None, bound: str) -> bool:
    """On a loopback-bound dashboard, requests must name a loopback host (a web page that rebinds
    its own DNS name to 127.0.0.1 must not read the table). Elsewhere any Host is accepted."""
    if not is_loopback(bound):
        return True
    name = urlsplit(f"//{host_header or ''}").hostname or ""
    return is_loopback(name)
