"""What a person reads from the `shards` command: help with its defaults, names and errors as written."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from shards.records import ProcessRecord, ProcessStatus, RunRecord, ScopeRecord
from shards.states import State
from shards_cli import actions, main, views
from typer.testing import CliRunner

runner = CliRunner()


def _help(*command: str) -> str:
    result = runner.invoke(main.app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_help_keeps_its_defaults() -> None:
    launch = _help("launch")
    assert "[default: " in launch
    assert "[default: $SHARDS_MONGO_URI, else the local embedded server]" in launch
    assert "left [default: host-pid]." in _help("worker")
    assert "[default: all]" in _help("operator")


def test_the_command_list_fits_80_columns_untruncated() -> None:
    result = runner.invoke(main.app, ["--help"], env={"COLUMNS": "80"})
    commands = result.output.split("Commands:")[1].strip().splitlines()
    assert len(commands) == 17
    assert not [line for line in commands if line.endswith("...") or len(line) > 80]


class _FakeController:
    """Answers as the real controller would, with names and errors full of brackets."""

    def __init__(self) -> None:
        self.record = ProcessRecord("farm [eu]", "reindex [fast]", "Reindex [fast]",
                                    status=ProcessStatus(state=State.SCHEDULED))

    def launch(self, scope: str, process_id: str, **_: Any) -> ProcessRecord:
        return self.record

    def wait(self, *_: Any) -> ProcessRecord:
        return ProcessRecord("farm [eu]", "reindex [fast]", "Reindex [fast]", status=ProcessStatus(
            state=State.FAILED, error="bad row [red]42[/red] in table [orders]"))

    def waiting_reasons(self, records: list[ProcessRecord], **_: Any) -> dict[str, str]:
        return {}

    @property
    def store(self) -> Any:  # one live worker
        return SimpleNamespace(workers=SimpleNamespace(alive=lambda: ["worker"]))

    def define(self, scope: str, **_: Any) -> str:
        return "request"

    def wait_defined(self, request: str, timeout: float) -> ScopeRecord:
        return ScopeRecord("farm [eu]", "Defined", process_ids=["reindex [fast]"])

    def history(self, scope: str, process_id: str, limit: int) -> list[RunRecord]:
        return []


@pytest.fixture
def controller(monkeypatch: pytest.MonkeyPatch) -> _FakeController:
    fake = _FakeController()
    for module in (actions, views):
        monkeypatch.setattr(module, "controller", lambda mongo: fake)
    return fake


def test_printed_lines_show_names_and_errors_as_written(controller: _FakeController) -> None:
    result = runner.invoke(main.app, ["launch", "reindex [fast]", "--scope", "farm [eu]", "--wait"])
    assert result.exit_code == 3  # Failed
    assert "farm [eu]/reindex [fast]: launched (Scheduled)" in result.output
    assert "farm [eu]/reindex [fast]: ended Failed: bad row [red]42[/red] in table [orders]" in result.output


def test_one_defined_process_is_one_process(controller: _FakeController) -> None:
    result = runner.invoke(main.app, ["define", "--scope", "farm [eu]"])
    assert "farm [eu]: 1 process defined (reindex [fast])" in result.output


def test_a_process_that_never_ran_has_no_runs_yet(controller: _FakeController) -> None:
    result = runner.invoke(main.app, ["history", "reindex", "--scope", "farm"])
    assert result.exit_code == 0
    assert "farm/reindex: no runs yet" in result.output
