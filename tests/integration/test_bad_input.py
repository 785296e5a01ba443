"""Bad input gets one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shards.states import State

from integration.harness import CliResult, ShardsHarness


def assert_one_line_error(result: CliResult, expected: str) -> None:
    stderr = result.stderr
    assert result.returncode != 0
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0] == f"shards: error: {expected}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["launch", "nope", "--scope", "farm"], "unknown process 'nope' in scope 'farm'"),
        (
            ["launch", "quick", "--scope", "nowhere"],
            "unknown scope 'nowhere' (define it first: shards define --scope nowhere)",
        ),
        (
            ["status", "--scope", "nowhere", "-o", "json"],
            "unknown scope 'nowhere' (define it first: shards define --scope nowhere)",
        ),
        (
            ["launch", "quick", "--scope", "farm", "--args", "{n: 1}"],
            "--args is not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
        (
            ["launch", "quick", "--scope", "farm", "--args", "[1, 2]"],
            "--args must be a JSON object, got list",
        ),
        (
            ["launch", "quick", "--scope", "farm", "--args", '{"a":' * 5000 + "1" + "}" * 5000],
            "--args nests too deeply to decode (the limit is 32 levels)",
        ),
        (
            ["launch", "quick", "--scope", "farm", "--args", "@/nonexistent/args.json"],
            "--args @/nonexistent/args.json: No such file or directory",
        ),
        (["stop", "nope", "--scope", "farm"], "unknown process 'nope' in scope 'farm'"),
        (["dismiss", "nope", "--scope", "farm"], "unknown process 'nope' in scope 'farm'"),
        (["history", "nope", "--scope", "farm"], "unknown process 'nope' in scope 'farm'"),
    ],
)
def test_bad_requests_are_refused_in_one_line(
    shards_env: ShardsHarness, args: list[str], expected: str
) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm")
    assert_one_line_error(shards_env.cli(*args), expected)


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (
            "tests/integration/apps/duplicates.py:app",
            "invalid catalog in tests/integration/apps/duplicates.py: "
            "duplicate process id 'same' in the catalog",
        ),
        (
            "tests/integration/apps/broken.py:app",
            "cannot import tests/integration/apps/broken.py: ModuleNotFoundError: "
            "No module named 'shards_this_module_does_not_exist'",
        ),
        ("tests/integration/apps/missing.py:app", "no such file: tests/integration/apps/missing.py"),
        ("no_such_module:app", "cannot import no_such_module: ModuleNotFoundError: "
         "No module named 'no_such_module'"),
        ("tests/integration/apps/testapp.py:nothing", "tests/integration/apps/testapp.py:nothing "
         "is not a shards.App (found nothing)"),
        ("testapp:", "APP must be module[:attribute] or path/to/file.py[:attribute], got 'testapp:'"),
        ("testapp", "cannot import testapp: ModuleNotFoundError: No module named 'testapp'"),
    ],
)
def test_a_worker_refuses_an_app_that_does_not_load(
    shards_env: ShardsHarness, app: str, expected: str
) -> None:
    assert_one_line_error(shards_env.cli("worker", app), expected)


def test_unreachable_mongo_is_one_line(shards_env: ShardsHarness) -> None:
    uri = "mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=300"
    result = shards_env.cli("list", "--scope", "farm", "--mongo", uri)
    assert result.returncode == 1
    assert result.stderr.startswith("shards: error: cannot reach MongoDB at mongodb://127.0.0.1:1/x")
    assert len(result.stderr.strip().splitlines()) == 1


def test_secrets_in_the_uri_are_not_printed(shards_env: ShardsHarness) -> None:
    uri = "mongodb://shards:hunter2@127.0.0.1:1/x?serverSelectionTimeoutMS=300"
    result = shards_env.cli("list", "--mongo", uri)
    assert "hunter2" not in result.stderr
    assert "shards:***@127.0.0.1:1" in result.stderr


def test_define_without_a_worker_says_so_in_one_line(shards_env: ShardsHarness) -> None:
    result = shards_env.cli("define", "--scope", "farm", "--timeout", "600")
    assert result.returncode == 6  # queued, no live worker: at once, not after the timeout
    assert result.stderr.splitlines() == [
        "shards: warning: farm: no worker is alive; the define is queued and runs when one starts "
        "(shards worker APP)"]


def test_dismissing_an_active_process_is_refused(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm")
    shards_env.ok("launch", "wait-for-stop", "--scope", "farm")
    shards_env.wait_state("farm", "wait-for-stop", State.RUNNING)
    assert_one_line_error(
        shards_env.cli("dismiss", "wait-for-stop", "--scope", "farm"),
        "process 'wait-for-stop' in scope 'farm' is Running; stop it first "
        "(shards stop wait-for-stop --scope farm --wait)",
    )
    shards_env.ok("stop", "wait-for-stop", "--scope", "farm")
    shards_env.wait_state("farm", "wait-for-stop", State.STOPPED)


def test_args_come_from_a_file_with_at(shards_env: ShardsHarness, tmp_path: Path) -> None:
    """`--args @file` (or `@-`, standard input): no quoting, and no shell limit on one argument."""
    shards_env.start_workers(1)
    shards_env.define("farm")
    big = {"rows": ["it's \"quoted\"" * 6] * 500}  # about 48 KB of JSON, under the 64 KiB limit
    path = tmp_path / "args.json"
    path.write_text(json.dumps(big))
    shards_env.ok("launch", "quick", "--scope", "farm", "--args", f"@{path}")
    run = shards_env.controller.history("farm", "quick")[0]
    assert run.args == big
