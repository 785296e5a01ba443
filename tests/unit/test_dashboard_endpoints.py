"""The dashboard's endpoints in process (no MongoDB): what each answers, the one-line JSON errors
with their status codes, and the guards on actions. A fake controller answers as the real one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from shards.errors import ConfirmationRequired, ProcessActive, UnknownProcess, UnknownRun, UnknownScope
from shards.records import ProcessRecord, ProcessStatus, RunRecord
from shards.runlog import RunLog
from shards.states import State
from shards_dashboard.auth import Guard
from shards_dashboard.hub import Hub
from shards_dashboard.server import Dashboard, build_app
from starlette.testclient import TestClient

JSON = {"content-type": "application/json"}


class FakeController:
    """One scope 'farm' with a dangerous process 'cull' and a failed process 'fail'."""

    def __init__(self) -> None:
        self.records = {
            "cull": ProcessRecord("farm", "cull", "Cull <b>sheep</b>", warning="kills sheep"),
            "fail": ProcessRecord("farm", "fail", "Fail",
                                  status=ProcessStatus(state=State.FAILED, error="boom")),
        }
        self.launched: list[tuple[str, bool]] = []
        self.since: list[tuple[datetime, int]] = []  # what runs_since was asked

    def get(self, scope: str, process_id: str) -> ProcessRecord:
        if scope != "farm":
            raise UnknownScope(f"unknown scope {scope!r}")
        if process_id not in self.records:
            raise UnknownProcess(f"unknown process {process_id!r} in scope {scope!r}")
        return self.records[process_id]

    def list(self, scope: str, **filters: Any) -> list[ProcessRecord]:
        self.get(scope, "cull")
        search = filters.get("search", "")
        return [r for r in self.records.values() if search in r.process_id]

    def scope_ids(self) -> list[str]:
        return ["farm"]

    def launch(self, scope: str, process_id: str, *, confirm: bool = False) -> ProcessRecord:
        record = self.get(scope, process_id)
        if record.warning and not confirm:
            raise ConfirmationRequired(f"process {process_id!r} needs confirmation: {record.warning}")
        self.launched.append((process_id, confirm))
        record.status = ProcessStatus(state=State.SCHEDULED)
        return record

    def dismiss(self, scope: str, process_id: str) -> ProcessRecord:
        record = self.get(scope, process_id)
        if record.state is State.SCHEDULED:
            raise ProcessActive(f"process {process_id!r} in scope {scope!r} is Scheduled; stop it first")
        record.status = ProcessStatus()
        return record

    def history(self, scope: str, process_id: str, limit: int) -> list[RunRecord]:
        self.get(scope, process_id)
        return [RunRecord("r1", scope, process_id, state=State.FAILED, error="boom")]

    def runs_since(self, scope: str, since: datetime, limit: int) -> list[RunRecord]:
        self.get(scope, "cull")
        self.since.append((since, limit))
        ended = datetime.now(UTC)
        runs = [RunRecord("r2", scope, "cull", state=State.RUNNING, args={"big": "x" * 1000},
                          worker_id="w-1", started_at=ended, requested_at=ended),
                RunRecord("r1", scope, "fail", state=State.FAILED, error="boom\nTraceback ...",
                          started_at=ended - timedelta(seconds=3), ended_at=ended, duration=3.0)]
        return runs[:limit]

    def run_logs(self, scope: str, process_id: str, run_id: str | None = None) -> RunLog:
        self.get(scope, process_id)
        if run_id != "r1":
            raise UnknownRun(f"no run {run_id!r} of process {process_id!r} in scope {scope!r}")
        return RunLog("r1", scope, process_id, "Failed", active=False, lines=["ERROR the run failed: boom"],
                      dropped=3)


def client(guard: Guard | None = None) -> tuple[TestClient, FakeController]:
    fake = FakeController()
    dashboard = Dashboard(fake, Hub(), guard or Guard(), scope="farm")  # type: ignore[arg-type]
    return TestClient(build_app(dashboard), base_url="http://127.0.0.1:8765"), fake


def test_reads_answer_with_records_history_and_logs() -> None:
    web, _ = client()
    assert web.get("/api/scopes").json() == {"scopes": ["farm"]}
    listed = web.get("/api/scopes/farm/processes", params={"search": "cu"}).json()
    assert [(r["id"], r["name"]) for r in listed["records"]] == [("cull", "Cull <b>sheep</b>")]
    runs = web.get("/api/scopes/farm/processes/fail/history").json()["runs"]
    assert runs[0]["runId"] == "r1" and runs[0]["error"] == "boom"
    logs = web.get("/api/scopes/farm/processes/fail/runs/r1/logs").json()
    assert logs["lines"] == ["… 3 earlier lines dropped", "ERROR the run failed: boom"]
    assert logs["dropped"] == 3 and logs["state"] == "Failed"


def test_the_runs_of_a_window_are_bounded_and_carry_no_args() -> None:
    web, fake = client()
    before = datetime.now(UTC)
    window = web.get("/api/scopes/farm/runs").json()
    assert [(r["runId"], r["id"], r["state"]) for r in window["runs"]] == [
        ("r2", "cull", "Running"), ("r1", "fail", "Failed")]
    assert all("args" not in r for r in window["runs"])  # a run's args may be big: the history has them
    assert window["runs"][1]["error"] == "boom" and window["runs"][1]["duration"] == 3.0
    assert window["runs"][0]["workerId"] == "w-1" and window["runs"][0]["endedAt"] is None
    assert (window["minutes"], window["limit"], window["truncated"]) == (60, 500, False)
    since, limit = fake.since[-1]
    assert limit == 500 and abs((before - timedelta(minutes=60) - since).total_seconds()) < 5
    one = web.get("/api/scopes/farm/runs", params={"limit": "1", "minutes": "5"}).json()
    assert [r["runId"] for r in one["runs"]] == ["r2"] and one["truncated"] is True and one["minutes"] == 5
    web.get("/api/scopes/farm/runs", params={"limit": "10000000", "minutes": "99999"})
    assert fake.since[-1][1] == 2000  # bounded, whatever is asked
    assert web.get("/api/scopes/farm/runs", params={"limit": "-3", "minutes": "x"}).json()["minutes"] == 60
    assert fake.since[-1][1] == 1


@pytest.mark.parametrize(("path", "status", "kind"), [
    ("/api/scopes/pasture/processes", 404, "UnknownScope"),
    ("/api/scopes/pasture/runs", 404, "UnknownScope"),
    ("/api/scopes/farm/processes/nope/history", 404, "UnknownProcess"),
    ("/api/scopes/farm/processes/fail/runs/r9/logs", 404, "UnknownRun"),
])
def test_unknowns_are_404_with_a_one_line_error(path: str, status: int, kind: str) -> None:
    answer = client()[0].get(path)
    assert answer.status_code == status
    assert answer.json()["kind"] == kind and "\n" not in answer.json()["error"]


def test_a_launch_with_a_warning_needs_confirm_and_dismiss_refuses_an_active_process() -> None:
    web, fake = client()
    refused = web.post("/api/scopes/farm/processes/cull/launch", json={}, headers=JSON)
    assert refused.status_code == 409 and "needs confirmation: kills sheep" in refused.json()["error"]
    launched = web.post("/api/scopes/farm/processes/cull/launch", json={"confirm": True}, headers=JSON)
    assert launched.status_code == 200 and launched.json()["record"]["state"] == "Scheduled"
    assert fake.launched == [("cull", True)]
    busy = web.post("/api/scopes/farm/processes/cull/dismiss", json={}, headers=JSON)
    assert busy.status_code == 409 and "stop it first" in busy.json()["error"]


def test_actions_are_json_from_the_page_and_need_the_token_when_one_is_set() -> None:
    web, _ = client(Guard(token="s3cret"))
    path = "/api/scopes/farm/processes/fail/dismiss"
    assert web.post(path, content=b"{}", headers={"content-type": "text/plain",
                                                  "authorization": "Bearer s3cret"}).status_code == 415
    assert web.post(path, json={}, headers=JSON).status_code == 401
    assert web.post(path, json={}, headers={**JSON, "authorization": "Bearer wrong"}).status_code == 401
    foreign = {**JSON, "authorization": "Bearer s3cret", "origin": "http://evil.example"}
    assert web.post(path, json={}, headers=foreign).status_code == 403
    assert web.post(path, json=[1], headers={**JSON, "authorization": "Bearer s3cret"}).status_code == 400
    done = web.post(path, json={}, headers={**JSON, "authorization": "Bearer s3cret"})
    assert done.status_code == 200 and done.json()["record"]["state"] == "Idle"
    assert "s3cret" not in web.get("/").text and web.get("/api/config").json()["tokenRequired"] is True


def test_read_only_refuses_every_action() -> None:
    web, fake = client(Guard(read_only=True))
    for action in ("launch", "stop", "dismiss"):
        answer = web.post(f"/api/scopes/farm/processes/fail/{action}", json={"confirm": True}, headers=JSON)
        assert answer.status_code == 403 and "read-only" in answer.json()["error"]
    assert web.post("/api/scopes/farm/purge", json={}, headers=JSON).status_code == 403
    assert fake.launched == [] and web.get("/api/config").json()["readOnly"] is True


def test_every_answer_carries_the_security_headers_and_a_foreign_host_is_refused() -> None:
    web, _ = client()
    page = web.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert web.get("/api/scopes", headers={"host": "attacker.example"}).status_code == 421


READS = ["/api/scopes", "/api/scopes/farm/processes", "/api/scopes/farm/processes/fail/history",
         "/api/scopes/farm/runs",
         "/api/scopes/farm/processes/fail/runs/r1/logs", "/api/workers", "/api/stats",
         "/api/scopes/farm/events"]


@pytest.mark.parametrize("guard", [Guard(token="s3cret"), Guard(token="s3cret", read_only=True)])
def test_with_a_token_every_read_needs_it_but_the_page_shell(guard: Guard) -> None:
    web, _ = client(guard)
    for path in READS:
        refused = web.get(path)
        assert refused.status_code == 401, path
        assert "token" in refused.json()["error"] and "s3cret" not in refused.text
    assert web.get("/api/scopes", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert web.get("/api/scopes", headers={"authorization": "Bearer s3cret"}).json() == {"scopes": ["farm"]}
    assert web.get("/").status_code == 200 and web.get("/static/app.js").status_code == 200
    config = web.get("/api/config").json()
    assert config == {"tokenRequired": True, "authenticated": False}  # not even the scope's name


def test_a_login_with_the_token_gives_a_session_cookie_for_reads_and_actions() -> None:
    web, _ = client(Guard(token="s3cret"))
    assert web.post("/api/login", json={"token": "wrong"}, headers=JSON).status_code == 401
    assert "set-cookie" not in web.post("/api/login", json={"token": "wrong"}, headers=JSON).headers
    assert web.post("/api/login", content=b"token=s3cret",
                    headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 415
    foreign = web.post("/api/login", json={"token": "s3cret"}, headers={**JSON, "origin": "http://evil.example"})
    assert foreign.status_code == 403
    login = web.post("/api/login", json={"token": "s3cret"}, headers=JSON)
    assert login.status_code == 200
    cookie = login.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
    assert "; secure" not in cookie.lower()  # plain http: a Secure cookie would not come back
    assert "s3cret" not in cookie
    assert web.get("/api/scopes").json() == {"scopes": ["farm"]}  # the client sends the cookie back
    assert web.get("/api/config").json()["authenticated"] is True
    done = web.post("/api/scopes/farm/processes/fail/dismiss", json={}, headers=JSON)
    assert done.status_code == 200
    web.post("/api/logout", json={}, headers=JSON)
    assert web.get("/api/scopes").status_code == 401

    value = cookie.split(";")[0].split("=", 1)[1]
    tampered = value[:-2] + ("aa" if not value.endswith("aa") else "bb")
    web.cookies.clear()
    assert web.get("/api/scopes", headers={"cookie": f"shards_session={tampered}"}).status_code == 401
    other = client(Guard(token="another"))[0]  # a cookie of another token (rotated) is refused
    assert other.get("/api/scopes", headers={"cookie": f"shards_session={value}"}).status_code == 401


def test_over_tls_the_session_cookie_is_secure() -> None:
    fake = FakeController()
    dashboard = Dashboard(fake, Hub(), Guard(token="s3cret"), scope="farm")  # type: ignore[arg-type]
    web = TestClient(build_app(dashboard, "dashboard.example"), base_url="https://dashboard.example")
    login = web.post("/api/login", json={"token": "s3cret"}, headers=JSON)
    assert login.status_code == 200 and "; secure" in login.headers["set-cookie"].lower()
