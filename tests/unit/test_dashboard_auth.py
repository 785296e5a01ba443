"""Who may act on the dashboard: token, read-only, JSON from its own origin, loopback rules."""

from __future__ import annotations

import pytest
from shards_dashboard.auth import Guard, Refused, host_allowed, is_loopback, startup_problem


def refusal(guard: Guard, **request: str | None) -> int | None:
    try:
        guard.check_action(request.get("authorization"), request.get("content_type", "application/json"),
                           request.get("origin"), request.get("host", "127.0.0.1:8765"),
                           request.get("session"))
    except Refused as refused:
        return refused.status
    return None


def test_without_a_token_on_loopback_actions_are_open_to_json_requests() -> None:
    guard = Guard()
    assert not guard.token_required
    assert refusal(Guard()) is None
    assert refusal(guard, content_type="text/plain") == 415  # a cross-site form cannot send JSON
    assert refusal(guard, content_type="application/json; charset=utf-8") is None
    assert refusal(guard, origin="http://evil.example") == 403
    assert refusal(guard, origin="http://127.0.0.1:8765") is None


@pytest.mark.parametrize("guard", [Guard(), Guard(token="s3cret-token")])
def test_an_opaque_origin_is_refused(guard: Guard) -> None:
    """A sandboxed frame or a file:// page of any site sends `Origin: null`: it is not this page."""
    assert refusal(guard, origin="null", authorization="Bearer s3cret-token") == 403


@pytest.mark.parametrize(("authorization", "status"), [
    (None, 401), ("", 401), ("Bearer wrong", 401), ("Bearer s3cret-token-x", 401),
    ("Basic s3cret-token", 401),
    ("Bearer s3cret-token", None), ("bearer s3cret-token", None),
])
def test_a_token_is_needed_when_one_is_set(authorization: str | None, status: int | None) -> None:
    guard = Guard(token="s3cret-token")
    assert guard.token_required
    assert refusal(guard, authorization=authorization) == status


def test_read_only_refuses_every_action_even_with_the_token() -> None:
    guard = Guard(token="t", read_only=True)
    assert guard.token_required  # to read
    assert refusal(guard, authorization="Bearer t") == 403


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("10.1.2.3", False), ("::", False), ("dashboard.example", False),
])
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_anywhere_but_loopback_needs_a_token_or_read_only() -> None:
    assert startup_problem("127.0.0.1", "", False) == ""
    assert "token" in startup_problem("0.0.0.0", "", False)
    assert startup_problem("0.0.0.0", "t", False) == ""
    assert startup_problem("0.0.0.0", "", True) == ""


def test_a_session_is_an_hmac_of_its_time_keyed_by_the_token() -> None:
    guard = Guard(token="s3cret-token")
    session = guard.new_session(now=1_000_000)
    assert "s3cret" not in session
    assert guard.authorized(None, session, now=1_000_000 + 60)
    assert not guard.authorized(None, session, now=1_000_000 + 13 * 3600)  # expired
    assert not guard.authorized(None, session, now=1_000_000 - 60)  # from the future
    assert not Guard(token="rotated").authorized(None, session, now=1_000_000)
    stamp, nonce, mac = session.split(".")
    assert not guard.authorized(None, f"{int(stamp) + 3600}.{nonce}.{mac}", now=1_000_000 + 3600)
    for junk in ("", ".", "..", "x.y.z", "1.2", None):
        assert not guard.authorized(None, junk, now=1_000_000)
    assert refusal(guard, session=guard.new_session()) is None and refusal(guard) == 401
    assert Guard().authorized(None, None)  # no token: open


def test_a_loopback_dashboard_answers_only_loopback_host_names() -> None:
    assert host_allowed("127.0.0.1:8765", "127.0.0.1")
    assert host_allowed("localhost:8765", "127.0.0.1")
    assert host_allowed("[::1]:8765", "::1")
    assert not host_allowed("rebound.example:8765", "127.0.0.1")
    assert host_allowed("dashboard.example", "0.0.0.0")
