"""The dashboard's schedule endpoints in process (no MongoDB): the list's shape, pause, unpause
and trigger through the controller, one-line JSON errors, and the same guards as process
actions (the token, read-only). A fake controller answers as the real one."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from shards.errors import UnknownSchedule, UnknownScope
from shards.schedule_times import Timing
from shards.schedules import Action, NextFire, Outcome, ScheduleRecord, ScheduleSpec
from shards_dashboard.auth import Guard
from shards_dashboard.hub import Hub
from shards_dashboard.server import Dashboard, build_app
from starlette.testclient import TestClient

JSON = {"content-type": "application/json"}
T0 = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)


class FakeSchedules:
    """Scope 'farm': 'hourly' (every hour, launches 'quick') and 'nightly' (cron, paused)."""

    def __init__(self) -> None:
        hourly = ScheduleSpec("hourly", "farm", "quick", Timing(every=3600.0))
        nightly = ScheduleSpec("nightly", "farm", "cull", Timing(cron="0 2 * * *", timezone="Europe/Paris"))
        self.records = {
            "hourly": ScheduleRecord(hourly, next=NextFire("20250301T030000Z", T0 + timedelta(hours=1),
                                                           T0 + timedelta(hours=1)),
                                     fired=3, launched=2, skipped=1, missed=4, actions=[
                                         Action("20250301T020000Z", T0, T0, "hourly:r2", Outcome.SKIPPED,
                                                "the previous run is still active")]),
            "nightly": ScheduleRecord(nightly, paused=True, note="until the vet comes"),
        }
        self.triggered: list[str] = []

    def get(self, scope: str, name: str) -> ScheduleRecord:
        if scope != "farm" or name not in self.records:
            raise UnknownSchedule(f"unknown schedule {name!r} in scope {scope!r}")
        return self.records[name]

    def list(self, scope: str | None = None) -> list[ScheduleRecord]:
        return [r for r in self.records.values() if scope in (None, r.spec.scope_id)]

    def pause(self, scope: str, name: str, note: str = "") -> ScheduleRecord:
        record = self.records[name] = replace(self.get(scope, name), paused=True, note=note or "paused")
        return record

    def unpause(self, scope: str, name: str, note: str = "") -> ScheduleRecord:
        record = self.records[name] = replace(self.get(scope, name), paused=False, note=note)
        return record

    def trigger(self, scope: str, name: str) -> Action:
        record = self.get(scope, name)
        self.triggered.append(name)
        action = Action("trigger-1", None, T0, f"{name}:trigger-1", Outcome.LAUNCHED)
        self.records[name] = replace(record, fired=record.fired + 1, launched=record.launched + 1,
                                     actions=[*record.actions, action])
        return action


class FakeController:
    def __init__(self) -> None:
        self.schedules = FakeSchedules()

    def scope_ids(self) -> list[str]:
        return ["farm", "pasture"]

    def list(self, scope: str, **filters: object) -> list[object]:
        if scope not in self.scope_ids():
            raise UnknownScope(f"unknown scope {scope!r}")
        return []


def client(guard: Guard | None = None) -> tuple[TestClient, FakeController]:
    fake = FakeController()
    dashboard = Dashboard(fake, Hub(), guard or Guard(), scope="farm")  # type: ignore[arg-type]
    return TestClient(build_app(dashboard), base_url="http://127.0.0.1:8765"), fake


def test_the_list_has_each_schedules_json_and_the_servers_clock() -> None:
    web, _ = client()
    listed = web.get("/api/schedules", params={"scope": "farm"})
    assert listed.status_code == 200
    body = listed.json()
    assert body["scope"] == "farm" and body["now"]
    hourly, nightly = body["schedules"]
    assert (hourly["name"], hourly["process"], hourly["everySeconds"], hourly["cron"]) == ("hourly", "quick",
                                                                                          3600.0, None)
    assert hourly["next"] == "2025-03-01T03:00:00Z" and hourly["phase"] == "Active"
    assert (hourly["launched"], hourly["skipped"], hourly["missed"]) == (2, 1, 4)
    last = hourly["actions"][-1]
    assert last["outcome"] == "Skipped" and last["at"] == "2025-03-01T02:00:00Z"
    assert (nightly["cron"], nightly["timeZone"]) == ("0 2 * * *", "Europe/Paris")
    assert nightly["paused"] is True and nightly["phase"] == "Paused"
    assert nightly["note"] == "until the vet comes"
    assert web.get("/api/schedules").json()["scope"] is None  # every scope's
    assert web.get("/api/schedules", params={"scope": "pasture"}).json()["schedules"] == []


def test_pause_with_a_note_unpause_and_trigger() -> None:
    web, fake = client()
    paused = web.post("/api/schedules/farm/hourly/pause", json={"note": "shearing\nday"}, headers=JSON)
    assert paused.status_code == 200
    assert paused.json()["schedule"]["paused"] is True and paused.json()["schedule"]["note"] == "shearing day"
    again = web.post("/api/schedules/farm/hourly/pause", json={}, headers=JSON)
    assert again.json()["schedule"]["note"] == "paused"
    unpaused = web.post("/api/schedules/farm/hourly/unpause", json={}, headers=JSON)
    assert unpaused.status_code == 200 and unpaused.json()["schedule"]["phase"] == "Active"
    fired = web.post("/api/schedules/farm/hourly/trigger", json={}, headers=JSON)
    assert fired.status_code == 200
    assert fired.json()["action"] == {"label": "trigger-1", "nominal": None, "at": "2025-03-01T02:00:00Z",
                                      "runId": "hourly:trigger-1", "outcome": "Launched", "detail": ""}
    assert fired.json()["schedule"]["launched"] == 3 and fake.schedules.triggered == ["hourly"]


@pytest.mark.parametrize(("method", "path", "body", "status", "kind"), [
    ("GET", "/api/schedules?scope=fram", None, 404, "UnknownScope"),
    ("POST", "/api/schedules/farm/nope/pause", {}, 404, "UnknownSchedule"),
    ("POST", "/api/schedules/farm/nope/trigger", {}, 404, "UnknownSchedule"),
    ("POST", "/api/schedules/farm/hourly/pause", {"note": 7}, 400, "InvalidArgs"),
    ("POST", "/api/schedules/farm/hourly/pause", {"note": "x" * 501}, 400, "InvalidArgs"),
    ("POST", "/api/schedules/farm/hourly/unpause", [1], 400, "BadRequest"),
])
def test_errors_are_one_line_json(method: str, path: str, body: object, status: int, kind: str) -> None:
    web, fake = client()
    answer = web.request(method, path, json=body, headers=JSON if body is not None else None)
    assert answer.status_code == status and answer.json()["kind"] == kind
    assert answer.json()["error"] and "\n" not in answer.json()["error"]
    assert not fake.schedules.records["hourly"].paused and fake.schedules.triggered == []


ACTIONS = ["pause", "unpause", "trigger"]


def test_read_only_refuses_every_schedule_action_but_lists() -> None:
    web, fake = client(Guard(read_only=True))
    for action in ACTIONS:
        answer = web.post(f"/api/schedules/farm/hourly/{action}", json={}, headers=JSON)
        assert answer.status_code == 403 and "read-only" in answer.json()["error"]
        assert "\n" not in answer.json()["error"]
    assert fake.schedules.triggered == [] and not fake.schedules.records["hourly"].paused
    assert len(web.get("/api/schedules", params={"scope": "farm"}).json()["schedules"]) == 2


def test_with_a_token_the_list_and_the_actions_need_it() -> None:
    web, fake = client(Guard(token="s3cret"))
    refused = web.get("/api/schedules", params={"scope": "farm"})
    assert refused.status_code == 401 and "token" in refused.json()["error"]
    for action in ACTIONS:
        path = f"/api/schedules/farm/hourly/{action}"
        assert web.post(path, json={}, headers=JSON).status_code == 401
        assert web.post(path, json={}, headers={**JSON, "authorization": "Bearer wrong"}).status_code == 401
        foreign = {**JSON, "authorization": "Bearer s3cret", "origin": "http://evil.example"}
        assert web.post(path, json={}, headers=foreign).status_code == 403
        plain = {"content-type": "text/plain", "authorization": "Bearer s3cret"}
        assert web.post(path, content=b"{}", headers=plain).status_code == 415
    assert fake.schedules.triggered == [] and not fake.schedules.records["hourly"].paused
    bearer = {**JSON, "authorization": "Bearer s3cret"}
    assert web.get("/api/schedules", params={"scope": "farm"}, headers=bearer).status_code == 200
    assert web.post("/api/schedules/farm/hourly/trigger", json={}, headers=bearer).status_code == 200
    web.post("/api/login", json={"token": "s3cret"}, headers=JSON)  # the page's session cookie
    assert web.post("/api/schedules/farm/hourly/pause", json={}, headers=JSON).status_code == 200
    assert fake.schedules.triggered == ["hourly"] and fake.schedules.records["hourly"].paused
