"""What a person sees: the CLI's tables keep every message readable and print user text as is."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from shards.records import ProcessRecord, ProcessStatus, Progress, RunRecord, WorkerRecord, utcnow
from shards.states import State
from shards_cli.output import history_table, pools_table, process_table, workers_table

MESSAGE = "copying rows 1200 of 5000 from the orders table"
ERROR = "bad row [red]42[/red] in table [orders]"


def _records() -> list[ProcessRecord]:
    now = utcnow()
    running = ProcessRecord("farm", "reindex", "Reindex [fast]", progress=Progress(MESSAGE, 0.24),
                            status=ProcessStatus(state=State.RUNNING, running_since=now))
    failed = ProcessRecord("farm", "fail", "Fail [bold]loudly[/bold]",
                           status=ProcessStatus(state=State.FAILED, error=ERROR, failed_at=now))
    return [running, failed, ProcessRecord("farm", "idle", "Idle")]


def _shown(table: Table, width: int) -> str:
    """What a terminal of `width` columns shows, each column read top to bottom, without spaces.

    Folding spreads a cell over lines (a word may break anywhere), so compare text without spaces."""
    console = Console(width=width, record=True)
    console.print(table)
    lines = console.export_text().splitlines()
    assert all(len(line) <= width for line in lines), "the table is wider than the terminal"
    rows = [line.replace("┃", "│").split("│") for line in lines]
    columns = ["".join(row[i] for row in rows if len(row) > i) for i in range(max(map(len, rows)))]
    return "\n".join(_squeezed(column) for column in columns + lines)


def _squeezed(text: str) -> str:
    return "".join(text.split())


def _has(shown: str, text: str) -> bool:
    return _squeezed(text) in shown


def test_the_process_table_shows_message_percent_and_error_at_80_and_200_columns() -> None:
    for width in (80, 200):
        shown = _shown(process_table(_records(), "farm"), width)
        assert _has(shown, MESSAGE)
        assert _has(shown, "24%")
        assert _has(shown, ERROR)  # a Failed row's error, brackets and all
        assert _has(shown, "Running") and _has(shown, "Failed")
        assert _has(shown, "failed")  # the time column


def test_the_process_table_prints_names_as_written() -> None:
    shown = _shown(process_table(_records(), "farm [x]"), 200)
    assert _has(shown, "Reindex [fast]")
    assert _has(shown, "Fail [bold]loudly[/bold]")
    assert _has(shown, "scope farm [x]")


def test_a_scheduled_process_shows_why_it_waits() -> None:
    waiting = ProcessRecord("farm", "later", "Later", status=ProcessStatus(state=State.SCHEDULED))
    shown = _shown(process_table([waiting], "farm", {"later": "no worker of pool [gpu]"}), 80)
    assert _has(shown, "waiting: no worker of pool [gpu]")


def test_history_workers_and_pools_print_user_text_as_written() -> None:
    run = RunRecord("run-1", "farm", "fail", State.FAILED, worker_id="host [a]-1", error=ERROR,
                    requested_at=utcnow(), duration=3.0)
    shown = _shown(history_table([run]), 200)
    assert _has(shown, ERROR) and _has(shown, "host [a]-1")
    worker = WorkerRecord("w [1]", "box [eu]", 42, 2, pool="gpu [big]")
    shown = _shown(workers_table([worker]), 200)
    assert _has(shown, "w [1]") and _has(shown, "box [eu]") and _has(shown, "gpu [big]")
    counts = {"workers": 0, "freeSlots": 0, "pending": 1}
    assert _has(_shown(pools_table({"gpu [big]": counts}), 200), "gpu [big]")
