"""The real `shards dashboard` OS process on a test's database, and small HTTP and SSE clients
(the standard library only)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tooling import programs

from integration.harness import WAIT, ShardsHarness


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class Dashboard:
    """`shards dashboard --port 0` started by pid, its address read from its first line."""

    def __init__(self, env: ShardsHarness, *args: str, poll: float = 0.0,
                 extra_env: dict[str, str] | None = None) -> None:
        options = [*args, "--poll", str(poll)] if poll else list(args)
        self.child, self.address = env.processes.start_dashboard(
            *options, log=f"dashboard-{time.monotonic_ns()}.log", env=extra_env)
        self.log = self.child.log
        self.host, _, port = self.address.rpartition(":")
        self.port = int(port)
        self.url = f"http://{self.address}"

    def output(self) -> str:
        return self.child.output()

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> Answer:
        conn = http.client.HTTPConnection(self.host.strip("[]"), self.port, timeout=WAIT)
        try:
            sent = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=None if body is None else json.dumps(body), headers=sent)
            response = conn.getresponse()
            raw = response.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            return Answer(response.status, parsed, {k.lower(): v for k, v in response.getheaders()})
        finally:
            conn.close()

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None, **headers: str) -> Answer:
        return self.request("POST", path, {} if body is None else body, headers)

    def events(self, scope: str, timeout: float = WAIT, headers: dict[str, str] | None = None,
               source: str = "", expect: int = 200) -> EventStream:
        """The push channel of a scope (from the `source` address, if given)."""
        return EventStream(self.host.strip("[]"), self.port, f"/api/scopes/{scope}/events", timeout,
                           headers=headers, source=source, expect=expect)

    def stop(self) -> None:
        self.child.terminate()


class EventStream:
    """A Server-Sent Events client: (event, data) pairs, comments skipped."""

    def __init__(self, host: str, port: int, path: str, timeout: float, *,
                 headers: dict[str, str] | None = None, source: str = "", expect: int = 200) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout,
                                               source_address=(source, 0) if source else None)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        assert self.status == expect, self.status
        if expect != 200:
            self.body = json.loads(self.response.read())
            return
        assert self.response.getheader("Content-Type", "").startswith("text/event-stream")

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        event, data = "message", ""
        while True:
            line = self.response.readline()
            if not line:
                return
            text = line.decode().rstrip("\r\n")
            if not text:
                if data:
                    yield event, json.loads(data)
                event, data = "message", ""
            elif text.startswith("event:"):
                event = text[6:].strip()
            elif text.startswith("data:"):
                data += text[5:].strip()

    def close(self) -> None:
        self.conn.close()


def until_record(stream: EventStream, process_id: str, check: Any, deadline: float) -> dict[str, Any]:
    """Read events until one carries a document of process_id that passes check."""
    for _event, data in stream:
        for record in data.get("records", []):
            if record["id"] == process_id and check(record):
                return dict(record)
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no event for {process_id} passed the check in time")


def ensure_chromium() -> tuple[str, str]:
    """Debian's chromium and its driver (tooling.programs' "browser"), installed when missing."""
    programs.ensure("browser")
    browser, driver = programs.BY_NAME["chromium"].location(), programs.BY_NAME["chromedriver"].location()
    assert browser and driver, "chromium and chromedriver are not installed"
    return browser, driver

