"""`status --watch`: live progress bars, or one JSON object per change with -o json, until nothing
is active; its exit code is the ending of what it watched (as `shards wait`'s)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shards_cli.app import Code, ending_code, out
from shards_cli.documents import stream

if TYPE_CHECKING:
    from rich.console import RenderableType
    from shards.records import ProcessRecord

POLL = 0.25  # seconds between reads: four frames a second, as rich's Live refreshes


class Outcome:
    """The runs seen active during the watch, and how they ended. A Failed one makes the code 3,
    else a Stopped one 4, else 0; a single process watched is followed even if it ended before."""

    def __init__(self, follow_ended: bool) -> None:
        self.follow_ended = follow_ended
        self.followed: set[str] = set()

    def note(self, records: list[ProcessRecord]) -> bool:
        """Remember who is active; True while anyone is."""
        from shards.states import ACTIVE

        active = {r.process_id for r in records if r.state in ACTIVE}
        self.followed |= active
        if self.follow_ended:
            self.followed |= {r.process_id for r in records}
        return bool(active)

    def code(self, records: list[ProcessRecord]) -> Code:
        codes = {ending_code(r.state) for r in records
                 if r.process_id in self.followed and r.state.value in ("Done", "Failed", "Stopped")}
        return next((c for c in (Code.FAILED, Code.STOPPED) if c in codes), Code.DONE)


Read = Callable[[], list["ProcessRecord"]]
Documents = Callable[[list["ProcessRecord"]], list[dict[str, Any]]]


def watch(read: Read, table: Callable[[list[ProcessRecord]], RenderableType], documents: Documents,
          timeout: float, *, as_json: bool, single: bool) -> Code:
    """Follow `read()` until nothing is active (the outcome's code) or `timeout` (Code.TIMEOUT)."""
    outcome = Outcome(follow_ended=single)
    deadline = time.monotonic() + timeout
    if as_json:
        return _stream(read, documents, outcome, deadline)
    from rich.live import Live

    records = read()
    with Live(table(records), console=out(), refresh_per_second=4) as live:
        while outcome.note(records):
            if time.monotonic() >= deadline:
                return Code.TIMEOUT
            time.sleep(POLL)
            records = read()
            live.update(table(records))
    return outcome.code(records)


def _stream(read: Read, documents: Documents, outcome: Outcome, deadline: float) -> Code:
    """Each record once, then again whenever it changes (progress, state, error, waiting)."""
    shown: dict[str, Any] = {}
    while True:
        records = read()
        for document in documents(records):
            if shown.get(document["id"]) != document:
                shown[document["id"]] = document
                stream(document)
        if not outcome.note(records):
            return outcome.code(records)
        if time.monotonic() >= deadline:
            return Code.TIMEOUT
        time.sleep(POLL)
