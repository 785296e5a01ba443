"""Defining scopes: catalogs per scope, only_if_missing, clean, and removal of stale records."""

from __future__ import annotations

from shards.states import State

from integration.harness import ShardsHarness, wait_until

SCOPED_APP = "tests/integration/apps/scoped.py:app"


def test_the_catalog_and_scope_data_depend_on_the_scope(shards_env: ShardsHarness) -> None:
    shards_env.start_worker(SCOPED_APP)
    assert "2 processes defined (report, gold-audit)" in shards_env.define("gold-1").stdout
    assert "1 process defined (report)" in shards_env.define("basic-1").stdout
    shards_env.ok("launch", "report", "--scope", "gold-1", "--wait")
    assert shards_env.record("gold-1", "report").progress.message == "All done"
    [run] = shards_env.controller.history("gold-1", "report")
    assert run.state is State.DONE
    missing = shards_env.cli("launch", "gold-audit", "--scope", "basic-1")
    assert missing.stderr.strip() == "shards: error: unknown process 'gold-audit' in scope 'basic-1'"


def test_define_keeps_status_removes_stale_records_and_clean_resets(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm")
    shards_env.ok("launch", "quick", "--scope", "farm", "--wait")
    shards_env.store.processes.define("farm", "retired", {"name": "Retired", "warning": "",
                                                          "detailLevel": 1, "special": False})
    shards_env.define("farm")
    assert shards_env.store.processes.get("farm", "retired") is None
    assert shards_env.record("farm", "quick").state is State.DONE  # a redefine keeps status

    shards_env.define("farm", "--clean")
    assert shards_env.record("farm", "quick").state is State.IDLE


def test_only_if_missing_leaves_a_defined_scope_alone(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm", "--only-if-missing")  # not defined yet: defines it
    assert shards_env.record("farm", "quick").name == "Quick"
    shards_env.store.processes.define("farm", "quick", {"name": "Renamed", "warning": "",
                                                        "detailLevel": 1, "special": False})
    shards_env.define("farm", "--only-if-missing")
    assert shards_env.record("farm", "quick").name == "Renamed"
    shards_env.define("farm")
    assert shards_env.record("farm", "quick").name == "Quick"


def test_list_filters_like_the_seed_gui(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm")

    def ids(*flags: str) -> list[str]:
        return [p["id"] for p in shards_env.ok("list", "--scope", "farm", "-o", "json", *flags).json()]

    everything = ids()
    assert "debug-dump" in everything and "child-ok" in everything
    assert "debug-dump" not in ids("--no-special")
    assert all(not name.startswith("child") for name in ids("--detail-level", "1", "--no-special"))
    assert ids("--search", "CHILD THAT") == ["child-fail", "child-ok", "child-stop"]
    assert ids("--active") == []
    shards_env.ok("launch", "wait-for-stop", "--scope", "farm")
    assert ids("--active") == ["wait-for-stop"]
    table = shards_env.ok("list", "--scope", "farm").stdout
    assert "wait-for-stop" in table
    shards_env.ok("stop", "wait-for-stop", "--scope", "farm")
    shards_env.wait_state("farm", "wait-for-stop", State.STOPPED)


def test_a_failing_catalog_reports_the_error_to_define(shards_env: ShardsHarness) -> None:
    shards_env.start_worker(SCOPED_APP, env={"SHARDS_TEST_DUPLICATE_IN_SCOPE": "1"})
    wait_until(lambda: shards_env.store.workers.alive(), what="the worker")
    failed = shards_env.cli("define", "--scope", "gold-2")
    assert failed.returncode == 1
    assert failed.stderr.strip() == (
        "shards: error: defining scope 'gold-2' failed: duplicate process id 'report' in the catalog"
    )
    assert "1 process defined" in shards_env.define("basic-2").stdout  # the worker keeps serving
