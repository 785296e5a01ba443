"""The operator's log service decides each read with Kubernetes (faked here: no cluster, no
store): who the token is, whether they may get the ShardProcess, then which run's log to read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from shards.errors import UnknownRun
from shards.runlog import LogCursor, RunLog
from shards_operator.log_service import (
    MAX_FOLLOW,
    Caller,
    LogQuery,
    LogService,
    Refused,
    bearer_token,
    parse_query,
)
from shards_operator.resource import Resource

ALICE = Caller("alice", "u-1", ("system:authenticated", "team-a"))


def resource(runs: int = 1, **status: object) -> Resource:
    return Resource("team-a", "nightly", "uid-1", 1, {"process": "quick"}, {"runs": runs, **status})


@dataclass
class FakeKube:
    tokens: dict[str, Caller] = field(default_factory=lambda: {"alice-token": ALICE})
    allowed: set[tuple[str, str, str]] = field(default_factory=lambda: {("alice", "team-a", "nightly")})
    resources: dict[tuple[str, str], Resource] = field(
        default_factory=lambda: {("team-a", "nightly"): resource(2, runId="k8s-uid-1-2.3")})
    looked_up: list[tuple[str, str]] = field(default_factory=list)

    def authenticate(self, token: str) -> Caller | None:
        return self.tokens.get(token)

    def may_get(self, caller: Caller, namespace: str, name: str) -> bool:
        return (caller.username, namespace, name) in self.allowed

    def shard_process(self, namespace: str, name: str) -> Resource | None:
        self.looked_up.append((namespace, name))
        return self.resources.get((namespace, name))


@dataclass
class FakeController:
    """run_logs and follow_log of the real controller, over a list of successive reads."""

    reads: list[RunLog]
    asked: list[tuple[str, str, str | None]] = field(default_factory=list)

    def run_logs(self, scope_id: str, process_id: str, run_id: str | None = None) -> RunLog:
        self.asked.append((scope_id, process_id, run_id))
        if run_id not in {read.run_id for read in self.reads}:
            raise UnknownRun(f"no run {run_id!r} of process {process_id!r} in scope {scope_id!r}")
        return self.reads[0]

    def follow_log(self, log: RunLog, timeout: float) -> Iterator[RunLog]:
        yield from self.reads[1:]


def run_log(lines: list[str], *, dropped: int = 0, state: str = "Running",
            run_id: str = "k8s-uid-1-2.3") -> RunLog:
    return RunLog(run_id, "team-a", "quick", state, state == "Running", lines, dropped)


def service(*reads: RunLog, kube: FakeKube | None = None,
            grants: dict[str, set[str]] | None = None) -> LogService:
    controller = FakeController(list(reads) or [run_log(["one"])])
    return LogService(controller, kube or FakeKube(), grants or {})  # type: ignore[arg-type]


QUERY = LogQuery("team-a", "nightly")


def test_a_token_the_api_server_does_not_accept_is_refused_401() -> None:
    with pytest.raises(Refused, match="did not accept the token") as refused:
        service().read("stolen", QUERY)
    assert refused.value.status == 401


def test_a_user_without_get_is_refused_before_the_resource_is_looked_at() -> None:
    """A 403 that says the same whether the resource exists or not: nothing leaks to a stranger."""
    kube = FakeKube(tokens={"bob-token": Caller("bob")})
    for name in ("nightly", "no-such-thing"):
        with pytest.raises(Refused) as refused:
            service(kube=kube).read("bob-token", LogQuery("team-a", name))
        assert refused.value.status == 403
        assert str(refused.value) == f'user "bob" may not get shardprocesses "{name}" in namespace "team-a"'
    assert kube.looked_up == []


def test_an_allowed_user_reads_the_current_attempt_or_the_one_asked_for() -> None:
    reads = [run_log(["one"]), run_log(["x"], run_id="k8s-uid-1-2")]
    current = service(*reads)
    caller, log = current.read("alice-token", QUERY)
    assert caller == ALICE and log.lines == ["one"]
    first = service(run_log(["first"], run_id="k8s-uid-1-2"))
    assert first.read("alice-token", LogQuery("team-a", "nightly", attempt=1))[1].lines == ["first"]
    asked = FakeController([run_log([], run_id="k8s-uid-1-2.2")])
    LogService(asked, FakeKube(), {}).read("alice-token", LogQuery("team-a", "nightly", attempt=2))  # type: ignore[arg-type]
    assert asked.asked == [("team-a", "quick", "k8s-uid-1-2.2")]  # the latest launch (runs: 2), attempt 2


def test_what_cannot_be_read_is_a_404_with_one_line() -> None:
    with pytest.raises(Refused, match='shardprocesses "gone" not found in namespace "team-a"') as missing:
        kube = FakeKube(allowed={("alice", "team-a", "gone")})
        service(kube=kube).read("alice-token", LogQuery("team-a", "gone"))
    assert missing.value.status == 404
    fresh = FakeKube(resources={("team-a", "nightly"): resource(0)})
    with pytest.raises(Refused, match="nightly has not launched a run yet"):
        service(kube=fresh).read("alice-token", QUERY)
    with pytest.raises(Refused, match=r"no run 'k8s-uid-1-2\.9'") as unknown:
        service().read("alice-token", LogQuery("team-a", "nightly", attempt=9))
    assert unknown.value.status == 404


def test_a_scope_the_namespace_was_not_granted_is_refused() -> None:
    elsewhere = Resource("team-a", "nightly", "uid-1", 1, {"process": "quick", "scope": "farm"}, {"runs": 1})
    kube = FakeKube(resources={("team-a", "nightly"): elsewhere})
    with pytest.raises(Refused, match='namespace "team-a" may not use scope "farm"'):
        service(kube=kube).read("alice-token", QUERY)
    granted = service(run_log(["ok"], run_id="k8s-uid-1-1"), kube=kube, grants={"team-a": {"farm"}})
    assert granted.read("alice-token", QUERY)[1].lines == ["ok"]


def test_entries_are_each_line_once_then_the_runs_ending() -> None:
    reads = [run_log(["a", "b"]), run_log(["a", "b"]), run_log(["b", "c", "d"], dropped=1),
             run_log(["e"], dropped=10, state="Done")]
    svc = service(*reads)
    _, log = svc.read("alice-token", QUERY)
    entries = list(svc.entries(log, LogQuery("team-a", "nightly", follow=True)))
    assert entries == [{"line": "a"}, {"line": "b"}, {"line": "c"}, {"line": "d"}, {"dropped": 6},
                       {"line": "e"}, {"runId": "k8s-uid-1-2.3", "state": "Done", "active": False}]
    once = list(svc.entries(log, QUERY))  # not following: what is there now, and the state
    assert once[-1] == {"runId": "k8s-uid-1-2.3", "state": "Running", "active": True} and len(once) == 3


def test_the_token_comes_from_the_proxy_header_or_authorization() -> None:
    assert bearer_token("Bearer direct", None) == "direct"
    assert bearer_token(None, "Bearer proxied") == "proxied"
    for authorization in (None, "", "Basic abc", "Bearer  "):
        with pytest.raises(Refused, match="no token") as refused:
            bearer_token(authorization, None)
        assert refused.value.status == 401


def test_a_request_names_its_resource_and_bounded_options() -> None:
    query = parse_query("/v1/namespaces/team-a/shardprocesses/nightly/log?follow=true&attempt=2&timeout=1e9")
    assert query == LogQuery("team-a", "nightly", attempt=2, follow=True, timeout=MAX_FOLLOW)
    for target, status in (("/v1/namespaces/team-a/shardprocesses/../log", 404), ("/metrics", 404),
                           ("/v1/namespaces/a/shardprocesses/b/log?attempt=0", 400),
                           ("/v1/namespaces/a/shardprocesses/b/log?attempt=x", 400)):
        with pytest.raises(Refused) as refused:
            parse_query(target)
        assert refused.value.status == status, target


def test_a_cursor_shows_each_line_once_and_counts_what_it_missed() -> None:
    cursor = LogCursor()
    assert cursor.new_entries(run_log(["a"])) == ["a"]
    assert cursor.new_entries(run_log(["a", "b"])) == ["b"]
    assert cursor.new_entries(run_log(["x", "y"], dropped=5)) == [3, "x", "y"]
    assert cursor.new_entries(run_log(["y"], dropped=6)) == []
