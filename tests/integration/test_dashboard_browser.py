"""The dashboard in a real headless browser: Debian's chromium driven by Selenium through
chromium-driver (installed with apt-get when missing). Two pages on one scope: filters, a launch
through the confirm dialog, a bar that moves and a clock that runs, stop, dismiss, a failed run's
error, history and logs panel, HTML shown as text, and the second page following live. The
timeline: a run's bar growing live in the Running colour, then Done, Failed or Stopped, per process
and per worker, the duration trends, and the window read again after a reload.

The page is the same whichever server is behind it: these run in the NX-27017 pass only (the API
and the push channel are tested on both servers in test_dashboard.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from shards.schedule_times import Timing
from shards.schedules import ScheduleSpec
from shards.states import State
from tooling.mongo_servers import MongoServerInfo

from integration.dashboard_harness import Dashboard, ensure_chromium
from integration.harness import WAIT, ShardsHarness

APP = "tests/integration/apps/dashapp.py:app"
Driver = Any


@pytest.fixture
def browsers(mongo_server: MongoServerInfo) -> Iterator[Callable[[], Driver]]:
    if mongo_server.kind == "java":
        pytest.skip("the page is the same on any server: the browser tests run in the NX-27017 pass")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = ensure_chromium()
    opened: list[Driver] = []

    def open_one() -> Driver:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--disable-gpu", "--no-first-run"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        driver.set_page_load_timeout(WAIT)
        opened.append(driver)
        return driver

    try:
        yield open_one
    finally:
        for driver in opened:
            driver.quit()


@pytest.fixture
def farm(shards_env: ShardsHarness) -> Iterator[tuple[ShardsHarness, Dashboard]]:
    shards_env.start_worker(APP, concurrency=3)
    shards_env.define("farm")
    page = Dashboard(shards_env, "--scope", "farm")
    try:
        yield shards_env, page
    finally:
        page.stop()


def wait(driver: Driver, condition: Callable[[Driver], Any], what: str, timeout: float = WAIT) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A row is rebuilt whenever its process changes: an element read a moment ago may be gone.
    return WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=[
        StaleElementReferenceException]).until(condition, message=what)


def row(driver: Driver, pid: str) -> Any:
    return driver.find_element("css selector", f'tr[data-id="{pid}"]')


def state_of(driver: Driver, pid: str) -> str:
    return str(driver.execute_script(
        "return document.querySelector(`tr[data-id='${arguments[0]}']`).dataset.state", pid))


def text(driver: Driver, pid: str, selector: str) -> str:
    """The text of one element of a row, read in one step (rows are rebuilt as they change)."""
    return str(driver.execute_script(
        "const e = document.querySelector(`tr[data-id='${arguments[0]}'] ${arguments[1]}`);"
        "return e ? e.textContent : ''", pid, selector))


def in_state(pid: str, state: str) -> Callable[[Driver], bool]:
    return lambda d: state_of(d, pid) == state


def visible_ids(driver: Driver) -> set[str]:
    rows = driver.find_elements("css selector", "#processes tbody tr")
    return {str(tr.get_attribute("data-id")) for tr in rows if tr.is_displayed()}


def click(driver: Driver, pid: str, selector: str) -> None:
    """Click a button of a row, again if the row was rebuilt under the click."""
    wait(driver, lambda d: row(d, pid).find_element("css selector", selector).click() or True,
         f"a click on {selector} of {pid}")


def bar_width(driver: Driver, pid: str) -> float:
    return float(driver.execute_script(
        "return parseFloat(document.querySelector(`tr[data-id='${arguments[0]}'] .fill`).style.width)", pid))


def test_the_dashboard_in_a_browser(farm: tuple[ShardsHarness, Dashboard],
                                    browsers: Callable[[], Driver]) -> None:
    env, dashboard = farm
    first, second = browsers(), browsers()
    for driver in (first, second):
        driver.get(f"{dashboard.url}/#scope=farm")
        wait(driver, lambda d: d.find_elements("css selector", 'tr[data-id="slow-danger"]'), "the table")
        wait(driver, lambda d: d.find_element("id", "live").text == "live", "the push channel")
        driver.execute_script("window.__sameDocument = true")  # gone if the page reloads

    # Filters: special hidden by default, details on request, search with highlighting.
    assert "debug" not in visible_ids(first) and {"slow-danger", "detail", "broken"} <= visible_ids(first)
    first.find_element("id", "hide-details").click()
    assert "detail" not in visible_ids(first)
    first.find_element("id", "hide-details").click()
    first.find_element("id", "search").send_keys("SLOW")
    wait(first, lambda d: visible_ids(d) == {"slow-danger"}, "the search to filter")
    assert [m.text for m in row(first, "slow-danger").find_elements("css selector", ".name mark")] == ["Slow"]
    first.find_element("id", "search").clear()
    first.find_element("id", "search").send_keys(" ")
    wait(first, lambda d: "broken" in visible_ids(d), "the search to clear")

    # Run a process with a warning: the dialog quotes it (as text), and only a confirmation launches it.
    run = row(first, "slow-danger").find_element("css selector", "button.run")
    assert "danger" in str(run.get_attribute("class"))
    run.click()
    dialog = first.find_element("id", "confirm")
    wait(first, lambda d: dialog.is_displayed(), "the confirm dialog")
    assert first.find_element("id", "confirm-text").text == "Deletes the flock <b>for real</b>"
    first.find_element("id", "confirm-cancel").click()
    time.sleep(0.3)
    assert env.record("farm", "slow-danger").state is State.IDLE
    run.click()
    wait(first, lambda d: dialog.is_displayed(), "the confirm dialog")
    first.find_element("id", "confirm-ok").click()
    wait(first, in_state("slow-danger", "Running"), "Running on the first page")
    wait(second, in_state("slow-danger", "Running"), "Running on the second page, live")
    assert first.execute_script(
        "return document.querySelector(`tr[data-id='slow-danger'] button.run`).disabled")

    # The bar moves and the clock runs.
    width, clock = bar_width(first, "slow-danger"), text(first, "slow-danger", ".clock")
    assert clock.startswith("00:")
    wait(first, lambda d: bar_width(d, "slow-danger") > width, "the bar to move")
    wait(first, lambda d: text(d, "slow-danger", ".clock") != clock, "the clock to run")
    assert "of 400" in text(second, "slow-danger", ".message")

    # Stop: Stopped, with its time; then Dismiss: back to Idle, on both pages.
    click(first, "slow-danger", "button.stop")
    wait(first, lambda d: "Stopping" in text(d, "slow-danger", "button.stop") and d.execute_script(
        "return !!document.querySelector(`tr[data-id='slow-danger'] button.stop .spinner`)"),
         "the Stop button's spinner while the run stops (it takes 1.5 s)")
    wait(first, in_state("slow-danger", "Stopped"), "Stopped")
    assert text(first, "slow-danger", ".outcome").startswith("Stopped at ")
    wait(second, in_state("slow-danger", "Stopped"), "Stopped on the second page")
    click(first, "slow-danger", "button.dismiss")
    wait(first, in_state("slow-danger", "Idle"), "Idle after dismiss")
    wait(second, in_state("slow-danger", "Idle"), "Idle on the second page")

    # A failed run: its error with its time in the table, and in its history with the logs panel.
    click(first, "broken", "button.run")
    wait(first, in_state("broken", "Failed"), "Failed")
    outcome = text(first, "broken", ".outcome")
    assert outcome.startswith("Failed at ") and "the fence is down" in outcome
    click(first, "broken", "a.name")
    wait(first, lambda d: d.find_elements("css selector", "#runs tbody tr"), "the run history")
    run_row = first.find_element("css selector", "#runs tbody tr")
    assert "Failed" in run_row.text and "the fence is down" in run_row.text
    run_row.find_element("css selector", "button.logs").click()
    wait(first, lambda d: d.find_element("id", "logs").is_displayed(), "the logs panel")
    logged = first.find_element("id", "logs-lines").text
    assert "the run failed" in logged and "the fence is down" in logged  # its traceback, from the run's log
    first.find_element("id", "history-close").click()

    # HTML in a name, a message and an error is shown as text, never run.
    click(first, "xss", "button.run")
    wait(second, in_state("xss", "Failed"), "the HTML process to end, on the second page")
    for driver in (first, second):
        assert '<img src=x onerror="window.__xss=1">' in text(driver, "xss", "a.name")
        assert "<script>window.__xss=2</script>" in text(driver, "xss", ".message")
        assert "failed with <img" in text(driver, "xss", ".outcome")
        assert driver.find_elements("css selector", "#processes img, #processes script, #processes b") == []
        assert driver.execute_script("return window.__xss === undefined && window.__sameDocument === true")
    errors = [entry for entry in first.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_the_workers_view_and_read_only(farm: tuple[ShardsHarness, Dashboard],
                                         browsers: Callable[[], Driver]) -> None:
    env, _dashboard = farm
    read_only = Dashboard(env, "--scope", "farm", "--read-only")
    try:
        driver = browsers()
        driver.get(f"{read_only.url}/")
        wait(driver, lambda d: d.find_elements("css selector", 'tr[data-id="broken"]'), "the table")
        assert driver.find_elements("css selector", "#processes button") == []
        assert not driver.find_element("id", "purge").is_displayed()
        assert driver.find_element("id", "mode").is_displayed()
        driver.find_element("id", "tab-workers").click()
        wait(driver, lambda d: d.find_elements("css selector", '#pools tr[data-pool="default"]'), "the pools")
        pool = driver.find_element("css selector", '#pools tr[data-pool="default"]').text.split()
        assert pool[:3] == ["default", "1", "3"]
        worker = driver.find_element("css selector", "#workers tbody tr").text
        assert "0 of 3" in worker and "ago" in worker
    finally:
        read_only.stop()


def test_with_a_token_the_page_logs_in_and_goes_live(farm: tuple[ShardsHarness, Dashboard],
                                                     browsers: Callable[[], Driver]) -> None:
    env, _dashboard = farm
    secret = "tok-browser-7c1"
    guarded = Dashboard(env, "--scope", "farm", extra_env={"SHARDS_DASHBOARD_TOKEN": secret})
    try:
        driver = browsers()
        driver.get(f"{guarded.url}/")
        wait(driver, lambda d: d.find_element("id", "login").is_displayed(), "the login form")
        assert driver.find_elements("css selector", "#processes tbody tr") == []
        driver.find_element("id", "token").send_keys("wrong")
        driver.find_element("id", "login-button").click()
        wait(driver, lambda d: d.find_element("id", "login-problem").is_displayed(), "the wrong token said")
        driver.find_element("id", "token").send_keys(secret)
        driver.find_element("id", "login-button").click()
        wait(driver, lambda d: d.find_elements("css selector", 'tr[data-id="broken"]'), "the table")
        wait(driver, lambda d: d.find_element("id", "live").text == "live", "the live channel")
        assert driver.execute_script("return document.cookie") == ""  # HttpOnly: the script never sees it
        env.controller.launch("farm", "broken")  # a change made elsewhere arrives on the live channel
        wait(driver, lambda d: state_of(d, "broken") in ("Failed", "Done"), "the change pushed live")
        driver.refresh()  # the session outlives a reload
        wait(driver, lambda d: d.find_elements("css selector", 'tr[data-id="broken"]'), "the table again")
        driver.find_element("id", "logout").click()
        wait(driver, lambda d: d.find_element("id", "login").is_displayed(), "the login form again")
        assert secret not in guarded.output()
    finally:
        guarded.stop()


def schedule_text(driver: Driver, name: str, selector: str = "") -> str:
    return str(driver.execute_script(
        "const e = document.querySelector(`#schedules tr[data-schedule='${arguments[0]}'] ${arguments[1]}`);"
        "return e ? e.textContent : ''", name, selector))


def test_schedules_delayed_and_queued_launches_in_a_browser(
        farm: tuple[ShardsHarness, Dashboard], browsers: Callable[[], Driver]) -> None:
    env, dashboard = farm
    schedules = env.controller.schedules
    schedules.create(ScheduleSpec("hourly", "farm", "broken", Timing(every=3600.0)))
    quiet = ScheduleSpec("quiet", "farm", "detail", Timing(every=600.0))
    schedules.create(quiet, paused=True, note="<b>vet</b>")
    env.controller.launch("farm", "slow-danger", confirm=True)
    env.wait_state("farm", "slow-danger", State.RUNNING)
    env.controller.launch("farm", "slow-danger", confirm=True, queue=True)
    env.controller.launch("farm", "xss", at=datetime.now(UTC) + timedelta(hours=1))
    driver = browsers()
    driver.get(f"{dashboard.url}/#scope=farm")
    wait(driver, lambda d: text(d, "slow-danger", ".queued") == "+1 queued", "the queued launch")
    assert text(driver, "xss", ".outcome").startswith("Starts at ")
    assert text(driver, "xss", ".message") == ""  # not the same time again, in UTC
    wait(driver, lambda d: text(d, "broken", ".schedule-note").startswith("schedule hourly: next at "),
         "the schedule's next time on its process")

    driver.find_element("id", "tab-schedules").click()
    wait(driver, lambda d: "Active" in schedule_text(d, "hourly"), "the schedules")
    assert schedule_text(driver, "hourly", ".timing") == "every 1h"
    assert schedule_text(driver, "hourly", ".last") == "never"
    assert schedule_text(driver, "hourly", ".counts") == "0 launched · 0 skipped · 0 missed"
    assert schedule_text(driver, "hourly", ".countdown").startswith("in ")
    assert schedule_text(driver, "quiet", ".paused-note") == "<b>vet</b>"  # text, never HTML
    assert driver.find_elements("css selector", "#schedules b") == []

    driver.find_element("css selector", '#schedules tr[data-schedule="hourly"] button.pause').click()
    wait(driver, lambda d: d.find_element("id", "pause").is_displayed(), "the pause dialog")
    driver.find_element("id", "pause-note").send_keys("shearing day")
    driver.find_element("id", "pause-ok").click()
    wait(driver, lambda d: schedule_text(d, "hourly", ".paused-note") == "shearing day",
         "paused with its note")
    assert schedules.get("farm", "hourly").note == "shearing day"
    driver.find_element("css selector", '#schedules tr[data-schedule="hourly"] button.unpause').click()
    wait(driver, lambda d: "Active" in schedule_text(d, "hourly", ".phase"), "unpaused")
    assert not schedules.get("farm", "hourly").paused

    driver.find_element("css selector", '#schedules tr[data-schedule="hourly"] button.trigger').click()
    wait(driver, lambda d: "Launched" in schedule_text(d, "hourly", ".last"), "the trigger's launch")
    assert schedule_text(driver, "hourly", ".counts").startswith("1 launched")
    assert "hourly: Launched" in driver.find_element("id", "toast").text
    env.wait_state("farm", "broken", State.FAILED)
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    env.controller.stop("farm", "slow-danger", force=True)

    read_only = Dashboard(env, "--scope", "farm", "--read-only")
    try:
        viewer = browsers()
        viewer.get(f"{read_only.url}/#scope=farm")
        wait(viewer, lambda d: d.find_elements("css selector", 'tr[data-id="broken"]'), "the table")
        viewer.find_element("id", "tab-schedules").click()
        wait(viewer, lambda d: "Launched" in schedule_text(d, "hourly", ".last"), "the schedules, read-only")
        assert viewer.find_elements("css selector", "#schedules button") == []
    finally:
        read_only.stop()


# The timeline's colours (style.css): a run still going, and each outcome.
RUNNING, DONE = "rgb(9, 105, 218)", "rgb(26, 127, 55)"
FAILED, STOPPED = "rgb(207, 34, 46)", "rgb(140, 149, 159)"


def timeline_bar(driver: Driver, run_id: str) -> dict[str, Any] | None:
    """A run's bar in the timeline, read in one step (the drawing is rebuilt as runs change):
    its process, row, state, width and fill colour, or None."""
    found = driver.execute_script(
        "const b = document.querySelector(`#timeline rect.tl-bar[data-run='${arguments[0]}']`);"
        "if (!b) return null;"
        "return {id: b.dataset.id, state: b.dataset.state, row: b.parentNode.dataset.row,"
        " width: parseFloat(b.getAttribute('width')), fill: getComputedStyle(b).fill,"
        " visible: b.getAttribute('visibility') !== 'hidden'}", run_id)
    return dict(found) if found else None


def bar_is(run_id: str, state: str) -> Callable[[Driver], bool]:
    return lambda d: (timeline_bar(d, run_id) or {}).get("state") == state


def bars_are(*runs: tuple[str, str]) -> Callable[[Driver], bool]:
    return lambda d: all(bar_is(run_id, state)(d) for run_id, state in runs)


def trend(driver: Driver, pid: str) -> list[tuple[str, str]]:
    """The bars of a process's duration trend, oldest first: (state, fill colour)."""
    found = driver.execute_script(
        "return [...document.querySelectorAll(`#timeline [data-trend='${arguments[0]}'] rect`)]"
        ".map((b) => [b.dataset.state, getComputedStyle(b).fill])", pid)
    return [(str(state), str(fill)) for state, fill in found]


def timeline_rows(driver: Driver) -> list[str]:
    return [str(key) for key in driver.execute_script(
        "return [...document.querySelectorAll('#timeline g.tl-row')].map((g) => g.dataset.row)")]


def choose(driver: Driver, select_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", select_id)).select_by_value(value)


def open_farm(driver: Driver, dashboard: Dashboard) -> None:
    driver.get(f"{dashboard.url}/#scope=farm")
    wait(driver, lambda d: d.find_elements("css selector", 'tr[data-id="slow-danger"]'), "the table")
    wait(driver, lambda d: d.find_element("id", "live").text == "live", "the push channel")
    wait(driver, lambda d: "slow-danger" in timeline_rows(d), "the timeline's rows")


def test_the_timeline_draws_a_run_growing_live_then_its_outcome(
        farm: tuple[ShardsHarness, Dashboard], browsers: Callable[[], Driver], tmp_path: Path) -> None:
    env, dashboard = farm
    driver = browsers()
    open_farm(driver, dashboard)
    assert timeline_rows(driver) == ["broken", "detail", "slow-danger", "xss"]  # as the table: no special
    choose(driver, "timeline-window", "5")  # the last 5 minutes: about 3 px a second

    # A run appears in the Running colour and grows with time, live; once Done, in the Done colour.
    quick = env.controller.launch("farm", "slow-danger", confirm=True, args={"steps": 40}).run_id  # 6 s
    wait(driver, bar_is(quick, "Running"), "its bar, Running")
    first = timeline_bar(driver, quick)
    assert first and first["fill"] == RUNNING and first["row"] == "slow-danger"
    wait(driver, lambda d: (timeline_bar(d, quick) or {}).get("width", 0) > first["width"] + 2,
         "the running bar to grow")
    wait(driver, bar_is(quick, "Done"), "its bar, Done")
    ended = timeline_bar(driver, quick)
    assert ended and ended["fill"] == DONE and ended["width"] > first["width"]
    time.sleep(1.5)
    assert abs((timeline_bar(driver, quick) or {})["width"] - ended["width"]) < 0.01  # it grows no more
    wait(driver, lambda d: trend(d, "slow-danger") == [("Done", DONE)], "its duration in the trend, live")

    # More runs for the picture: one still going, failures, quick ones.
    going = env.controller.launch("farm", "slow-danger", confirm=True).run_id
    for _ in range(2):
        failed = env.controller.launch("farm", "broken").run_id
        done = env.controller.launch("farm", "detail").run_id
        wait(driver, bars_are((failed, "Failed"), (done, "Done")), "their bars")
    wait(driver, bar_is(going, "Running"), "the second run, Running")
    wait(driver, lambda d: trend(d, "detail") == [("Done", DONE)] * 2
         and trend(d, "broken") == [("Failed", FAILED)] * 2, "the trends of the ended runs")
    time.sleep(2.0)  # the running bar grows a little more
    box = driver.find_element("id", "timeline-box")
    driver.execute_script("arguments[0].scrollIntoView()", box)
    shot = tmp_path / "timeline.png"
    assert box.screenshot(str(shot)) and shot.stat().st_size > 0

    # Per worker: the worker's row holds the runs it ran.
    choose(driver, "timeline-rows", "worker")
    worker = env.record("farm", "slow-danger").worker_id
    wait(driver, lambda d: (timeline_bar(d, going) or {}).get("row") == worker, "the run in its worker's row")
    assert (timeline_bar(driver, quick) or {}).get("row") == worker
    assert trend(driver, "slow-danger") == []  # trends are per process

    # After a reload, the runs come from the server's window (the record names only the latest).
    driver.refresh()
    open_farm(driver, dashboard)
    wait(driver, bar_is(quick, "Done"), "the earlier run, read from the window")
    assert (timeline_bar(driver, quick) or {})["fill"] == DONE
    assert (timeline_bar(driver, going) or {})["state"] == "Running"

    # A stopped run ends in the Stopped colour.
    env.controller.stop("farm", "slow-danger", force=True)
    wait(driver, bar_is(going, "Stopped"), "the run, Stopped")
    assert (timeline_bar(driver, going) or {})["fill"] == STOPPED
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_the_timeline_shows_a_failed_run_in_the_failed_colour(
        farm: tuple[ShardsHarness, Dashboard], browsers: Callable[[], Driver]) -> None:
    env, dashboard = farm
    driver = browsers()
    open_farm(driver, dashboard)
    run_id = env.controller.launch("farm", "broken").run_id
    wait(driver, bar_is(run_id, "Failed"), "its bar, Failed")
    bar = timeline_bar(driver, run_id)
    assert bar and bar["fill"] == FAILED and bar["row"] == "broken" and bar["visible"]
    wait(driver, lambda d: trend(d, "broken") == [("Failed", FAILED)], "its duration in the trend, Failed")
    assert "the fence is down" in driver.execute_script(  # its tooltip
        "return document.querySelector(`#timeline rect[data-run='${arguments[0]}'] title`).textContent",
        run_id)
    driver.find_element("id", "timeline-busy").click()  # only the rows with runs
    wait(driver, lambda d: timeline_rows(d) == ["broken"], "only the row with a run")
    driver.find_element("id", "search").send_keys("slow")  # the table's filters apply to the rows
    wait(driver, lambda d: timeline_rows(d) == [], "no row: the search hides it")
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
