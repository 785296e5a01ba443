"""`shards dashboard` as an OS process on the test's database, with real workers: its JSON API,
its guards, and its push channel. On mongo-java-server (no change event for find_one_and_update,
which every state change uses) the dashboard runs with --poll 0.5, its documented fallback."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from shards.errors import NotActive
from shards.schedule_times import Timing
from shards.schedules import ScheduleSpec
from shards.states import State
from tooling.mongo_servers import MongoServerInfo

from integration.dashboard_harness import Dashboard, until_record
from integration.harness import WAIT, ShardsHarness, wait_until

FARM = "/api/scopes/farm"


def poll_for(server: MongoServerInfo) -> float:
    return 0.5 if server.kind == "java" else 0.0


@pytest.fixture
def farm(shards_env: ShardsHarness) -> ShardsHarness:
    shards_env.start_workers(1, concurrency=3)
    shards_env.define("farm")
    return shards_env


@pytest.fixture
def dashboard(farm: ShardsHarness, mongo_server: MongoServerInfo) -> Iterator[Dashboard]:
    page = Dashboard(farm, "--scope", "farm", poll=poll_for(mongo_server))
    try:
        yield page
    finally:
        page.stop()


def ids(answer_body: dict[str, list[dict[str, str]]]) -> set[str]:
    return {record["id"] for record in answer_body["records"]}


def test_the_page_and_its_assets_come_from_the_package(dashboard: Dashboard) -> None:
    page = dashboard.get("/")
    assert page.status == 200 and "<table id=\"processes\">" in page.body
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/timeline.js", "/static/style.css"):
        assert dashboard.get(asset).status == 200
    assert "http" not in page.body.replace("http-equiv", "")  # no CDN, nothing fetched from elsewhere
    assert dashboard.get("/api/config").body == {"scope": "farm", "readOnly": False, "tokenRequired": False,
                                                 "authenticated": True}
    assert "farm" in dashboard.get("/api/scopes").body["scopes"]


def test_list_and_the_seed_filters(dashboard: Dashboard) -> None:
    everything = ids(dashboard.get(f"{FARM}/processes").body)
    assert {"quick", "fail", "dangerous", "debug-dump", "child-ok"} <= everything
    children = {"child-ok", "child-fail", "child-stop"}
    assert ids(dashboard.get(f"{FARM}/processes?search=CHILD").body) == children
    assert not ids(dashboard.get(f"{FARM}/processes?hideDetails=1").body) & {"child-ok", "debug-dump"}
    assert "debug-dump" not in ids(dashboard.get(f"{FARM}/processes?hideSpecial=1").body)
    assert ids(dashboard.get(f"{FARM}/processes?active=1").body) == set()
    unknown = dashboard.get("/api/scopes/fram/processes")
    assert unknown.status == 404 and "did you mean 'farm'" in unknown.body["error"]
    assert "\n" not in unknown.body["error"]


def test_launch_asks_for_confirmation_of_a_warning_then_runs(
        farm: ShardsHarness, dashboard: Dashboard) -> None:
    refused = dashboard.post(f"{FARM}/processes/dangerous/launch", {})
    assert refused.status == 409 and refused.body["kind"] == "ConfirmationRequired"
    assert "This deletes everything." in refused.body["error"] and "\n" not in refused.body["error"]
    launched = dashboard.post(f"{FARM}/processes/dangerous/launch", {"confirm": True})
    assert launched.status == 200 and launched.body["record"]["state"] == "Scheduled"
    assert farm.wait_state("farm", "dangerous", State.DONE).progress.rate == 1.0
    missing = dashboard.post(f"{FARM}/processes/nope/launch", {})
    assert missing.status == 404 and missing.body["kind"] == "UnknownProcess"


def test_stop_then_dismiss(farm: ShardsHarness, dashboard: Dashboard) -> None:
    assert dashboard.post(f"{FARM}/processes/wait-for-stop/launch").status == 200
    farm.wait_state("farm", "wait-for-stop", State.RUNNING)
    again = dashboard.post(f"{FARM}/processes/wait-for-stop/launch")
    assert again.status == 409 and again.body["kind"] == "ProcessActive"
    early = dashboard.post(f"{FARM}/processes/wait-for-stop/dismiss")
    assert early.status == 409 and "stop it first" in early.body["error"]
    stopped = dashboard.post(f"{FARM}/processes/wait-for-stop/stop")
    assert stopped.status == 200
    assert stopped.body["record"]["state"] in ("StopRequested", "Stopping", "Stopped")
    farm.wait_state("farm", "wait-for-stop", State.STOPPED)
    assert dashboard.post(f"{FARM}/processes/wait-for-stop/stop").body["kind"] == "NotActive"
    dismissed = dashboard.post(f"{FARM}/processes/wait-for-stop/dismiss")
    assert dismissed.status == 200 and dismissed.body["record"]["state"] == "Idle"


def test_history_shows_a_failed_runs_error_and_the_logs_hook(
        farm: ShardsHarness, dashboard: Dashboard) -> None:
    dashboard.post(f"{FARM}/processes/fail/launch")
    failed = farm.wait_state("farm", "fail", State.FAILED)
    runs = dashboard.get(f"{FARM}/processes/fail/history").body["runs"]
    assert runs[0]["runId"] == failed.run_id and runs[0]["state"] == "Failed"
    assert "boom: no reason" in runs[0]["error"]
    logs = dashboard.get(f"{FARM}/processes/fail/runs/{failed.run_id}/logs")
    assert logs.status == 200 and logs.body["state"] == "Failed" and not logs.body["active"]
    assert any("the run failed" in line and "boom: no reason" in line for line in logs.body["lines"])
    assert dashboard.get(f"{FARM}/processes/nope/runs/x/logs").status == 404
    assert dashboard.get(f"{FARM}/processes/fail/runs/no-such-run/logs").status == 404


def test_the_runs_of_the_last_hour_for_the_timeline(farm: ShardsHarness, dashboard: Dashboard) -> None:
    dashboard.post(f"{FARM}/processes/fail/launch")
    failed = farm.wait_state("farm", "fail", State.FAILED)
    dashboard.post(f"{FARM}/processes/quick/launch")
    done = farm.wait_state("farm", "quick", State.DONE)
    window = dashboard.get(f"{FARM}/runs")
    assert window.status == 200 and window.body["minutes"] == 60 and not window.body["truncated"]
    runs = {run["runId"]: run for run in window.body["runs"]}
    assert [run["runId"] for run in window.body["runs"]][:2] == [done.run_id, failed.run_id]  # newest first
    assert runs[failed.run_id]["state"] == "Failed" and "boom: no reason" in runs[failed.run_id]["error"]
    assert runs[done.run_id]["state"] == "Done" and runs[done.run_id]["workerId"]
    ran = runs[done.run_id]
    assert ran["duration"] is not None and "args" not in ran
    # Compared as times: the text of a whole second has no fraction, so it does not sort like the time.
    when = {key: datetime.fromisoformat(value) for key, value in (
        ("since", window.body["since"]), ("requested", ran["requestedAt"]), ("started", ran["startedAt"]),
        ("ended", ran["endedAt"]), ("now", window.body["now"]))}
    assert when["since"] < when["requested"] <= when["started"] <= when["ended"] <= when["now"]
    latest = dashboard.get(f"{FARM}/runs?limit=1").body
    assert [run["runId"] for run in latest["runs"]] == [done.run_id] and latest["truncated"]
    unknown = dashboard.get("/api/scopes/fram/runs")
    assert unknown.status == 404 and "did you mean 'farm'" in unknown.body["error"]


def test_workers_and_pools(farm: ShardsHarness, dashboard: Dashboard) -> None:
    view = dashboard.get("/api/workers").body
    [worker] = view["workers"]
    assert worker["pool"] == "default" and worker["concurrency"] == 3 and worker["heartbeatAt"]
    free = 3 - worker["running"]
    assert view["pools"] == [{"pool": "default", "workers": 1, "freeSlots": free, "pending": 0}]


def test_purge_redefines_the_scope_from_scratch(farm: ShardsHarness, dashboard: Dashboard) -> None:
    dashboard.post(f"{FARM}/processes/fail/launch")
    farm.wait_state("farm", "fail", State.FAILED)
    purged = dashboard.post(f"{FARM}/purge")
    assert purged.status == 200 and purged.body["scope"]["state"] == "Defined"
    record = farm.record("farm", "fail")
    assert record.state is State.IDLE and record.status.error == ""
    assert dashboard.post("/api/scopes/fram/purge").status == 404  # never defines a typo


def test_with_a_token_reads_and_actions_need_it_or_its_session(
    farm: ShardsHarness, mongo_server: MongoServerInfo
) -> None:
    secret = "tok-3f9a1c"
    page = Dashboard(farm, "--scope", "farm", poll=poll_for(mongo_server),
                     extra_env={"SHARDS_DASHBOARD_TOKEN": secret})
    try:
        assert page.get("/api/config").body == {"tokenRequired": True, "authenticated": False}
        for path in ("/api/scopes", f"{FARM}/processes", f"{FARM}/processes/quick/history",
                     f"{FARM}/processes/quick/runs/r1/logs", f"{FARM}/runs", "/api/workers", "/api/stats"):
            assert page.get(path).status == 401, path
        refused = page.events("farm", expect=401)
        assert "token" in refused.body["error"]
        refused.close()
        assert page.get("/").status == 200 and page.get("/static/app.js").status == 200
        bearer = {"Authorization": f"Bearer {secret}"}
        assert page.request("GET", f"{FARM}/processes", headers=bearer).status == 200
        assert page.request("GET", f"{FARM}/runs", headers=bearer).body["scope"] == "farm"

        assert page.post("/api/login", {"token": "nope"}).status == 401
        login = page.post("/api/login", {"token": secret})
        assert login.status == 200
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and secret not in cookie
        session = {"Cookie": cookie.split(";")[0]}
        assert page.request("GET", "/api/workers", headers=session).status == 200
        stream = page.events("farm", headers=session)
        try:
            events = iter(stream)
            kind, first = next(events)
            assert kind == "snapshot" and "quick" in ids(first)
            assert page.post(f"{FARM}/processes/quick/launch", **session).status == 200
            until_record(stream, "quick", lambda r: r["state"] == "Done", time.monotonic() + WAIT)
        finally:
            stream.close()

        assert page.post(f"{FARM}/processes/quick/launch").status == 401
        assert page.post(f"{FARM}/processes/quick/launch", Authorization="Bearer nope").status == 401
        form = page.request("POST", f"{FARM}/processes/quick/launch", {}, {
            "Authorization": f"Bearer {secret}", "Content-Type": "application/x-www-form-urlencoded"})
        assert form.status == 415
        cross = page.post(f"{FARM}/processes/quick/launch", Origin="http://evil.example",
                          Authorization=f"Bearer {secret}")
        assert cross.status == 403
        assert page.post("/api/login", {"token": secret}, Origin="http://evil.example").status == 403
        rebound = page.request("GET", f"{FARM}/processes", headers={"Host": "evil.example", **bearer})
        assert rebound.status == 421
        assert secret not in page.get("/").body and secret not in page.output()
    finally:
        page.stop()


def test_live_pages_are_bounded_in_all_and_per_client(
    farm: ShardsHarness, mongo_server: MongoServerInfo
) -> None:
    page = Dashboard(farm, "--scope", "farm", "--max-live", "3", "--max-live-per-client", "2",
                     poll=poll_for(mongo_server))
    streams = []
    try:
        streams += [page.events("farm"), page.events("farm")]
        mine = page.events("farm", expect=503)
        assert "too many live pages from this client (2" in mine.body["error"]
        streams.append(page.events("farm", source="127.0.0.2"))
        everyone = page.events("farm", source="127.0.0.3", expect=503)
        assert "too many live pages (3" in everyone.body["error"]
        for refused in (mine, everyone):
            refused.close()
        streams.pop(0).close()
        wait_until(lambda: page.get("/api/stats").body["pages"] == 2, what="the closed page to unsubscribe")
        streams.append(page.events("farm"))
    finally:
        for stream in streams:
            stream.close()
        page.stop()


def test_elsewhere_than_loopback_it_refuses_to_start_without_a_token(farm: ShardsHarness) -> None:
    result = farm.cli("dashboard", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 1
    assert result.stderr.startswith("shards: error: the dashboard on 0.0.0.0 would let anyone")
    assert len(result.stderr.strip().splitlines()) == 1


def test_read_only_hides_and_refuses_actions(farm: ShardsHarness, mongo_server: MongoServerInfo) -> None:
    page = Dashboard(farm, "--scope", "farm", "--read-only", poll=poll_for(mongo_server))
    try:
        assert page.get("/api/config").body["readOnly"] is True
        refused = page.post(f"{FARM}/processes/quick/launch")
        assert refused.status == 403 and "read-only" in refused.body["error"]
        assert page.post(f"{FARM}/purge").status == 403
        assert farm.record("farm", "quick").state is State.IDLE
    finally:
        page.stop()


def test_the_push_channel_delivers_changes_coalesced(farm: ShardsHarness, dashboard: Dashboard) -> None:
    stream = dashboard.events("farm")
    try:
        events = iter(stream)
        kind, first = next(events)
        assert kind == "snapshot" and "quick" in ids(first)
        farm.controller.launch("farm", "quick")
        done = until_record(stream, "quick", lambda r: r["state"] == "Done", time.monotonic() + WAIT)
        assert done["doneAt"] and done["progress"]["rate"] == 1.0
        # A chatty process reports as fast as it can: the page gets at most ~10 messages a second.
        farm.controller.launch("farm", "chatty", args={"seconds": 2.0})
        until_record(stream, "chatty", lambda r: r["state"] == "Running", time.monotonic() + WAIT)
        began, messages = time.monotonic(), 0
        for _kind, _data in events:
            messages += 1
            if time.monotonic() - began > 2.0:
                break
        assert messages <= 2.0 / 0.1 + 3
        stats = dashboard.get("/api/stats").body
        assert stats["pages"] == 1 and stats["sent"] <= stats["offered"]
    finally:
        stream.close()
    with contextlib.suppress(NotActive):  # it may have ended meanwhile
        farm.controller.stop("farm", "chatty")
    wait_until(lambda: dashboard.get("/api/stats").body["pages"] == 0, what="the closed page to unsubscribe")


def test_schedules_list_pause_unpause_and_trigger(farm: ShardsHarness, dashboard: Dashboard) -> None:
    farm.controller.schedules.create(ScheduleSpec("hourly", "farm", "quick", Timing(every=3600.0)))
    listed = dashboard.get("/api/schedules?scope=farm")
    assert listed.status == 200
    [hourly] = listed.body["schedules"]
    assert (hourly["name"], hourly["process"], hourly["everySeconds"], hourly["phase"]) == (
        "hourly", "quick", 3600.0, "Active")
    assert hourly["next"] and hourly["actions"] == [] and hourly["launched"] == 0

    paused = dashboard.post("/api/schedules/farm/hourly/pause", {"note": "shearing day"})
    assert paused.status == 200 and paused.body["schedule"]["phase"] == "Paused"
    stored = farm.controller.schedules.get("farm", "hourly")
    assert stored.paused and stored.note == "shearing day"
    unpaused = dashboard.post("/api/schedules/farm/hourly/unpause", {})
    assert unpaused.status == 200 and not farm.controller.schedules.get("farm", "hourly").paused

    fired = dashboard.post("/api/schedules/farm/hourly/trigger", {})
    assert fired.status == 200 and fired.body["action"]["outcome"] == "Launched"
    assert fired.body["schedule"]["launched"] == 1
    done = farm.wait_state("farm", "quick", State.DONE)
    assert done.run_id == fired.body["action"]["runId"]
    last = dashboard.get("/api/schedules?scope=farm").body["schedules"][0]["actions"][-1]
    assert last["outcome"] == "Launched" and last["runId"] == done.run_id

    unknown = dashboard.post("/api/schedules/farm/hourli/trigger", {})
    assert unknown.status == 404 and unknown.body["kind"] == "UnknownSchedule"
    assert "did you mean 'hourly'" in unknown.body["error"] and "\n" not in unknown.body["error"]
    assert dashboard.get("/api/schedules?scope=fram").status == 404


def test_read_only_lists_schedules_and_refuses_their_actions(
        farm: ShardsHarness, mongo_server: MongoServerInfo) -> None:
    farm.controller.schedules.create(ScheduleSpec("hourly", "farm", "quick", Timing(every=3600.0)))
    page = Dashboard(farm, "--scope", "farm", "--read-only", poll=poll_for(mongo_server))
    try:
        assert [s["name"] for s in page.get("/api/schedules?scope=farm").body["schedules"]] == ["hourly"]
        for action in ("pause", "unpause", "trigger"):
            refused = page.post(f"/api/schedules/farm/hourly/{action}", {})
            assert refused.status == 403 and "read-only" in refused.body["error"], action
        record = farm.controller.schedules.get("farm", "hourly")
        assert not record.paused and record.actions == []
        assert farm.record("farm", "quick").state is State.IDLE
    finally:
        page.stop()
