"""The benchmark harness works: `bench/run.py --smoke` runs figures 1-5, 7, 8 and 11 with tiny counts and
writes a JSON report with numbers for every figure. Timing targets are never asserted here
(they belong to `make bench`)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SMOKE_TIMEOUT = 600  # the smoke run takes about a minute on 2 cores


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _values(fig: dict[str, Any], config: str, *path: str) -> list[Any]:
    found = []
    for result in fig["configs"][config]:
        value: Any = result
        for key in path:
            value = value[key]
        found.append(value)
    return found


@pytest.mark.timeout(SMOKE_TIMEOUT + 60)
def test_smoke_harness_reports_every_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--results-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=SMOKE_TIMEOUT, check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    assert re.search(r"^figure +\| Shards +\| baseline +\| ratio +\| target +\| met\?", done.stdout, re.M)
    report = json.loads((tmp_path / "latest.json").read_text())

    assert report["kind"] == "smoke"
    assert report["machine"]["nproc"] and report["machine"]["nx_27017"] and report["machine"]["pymongo"]
    assert report["code"]["git_commit"]
    assert report["targets"]
    figures = report["figures"]
    assert sorted(figures, key=int) == ["1", "2", "3", "4", "5", "7", "8", "11"]
    for key, fig in figures.items():
        assert "error" not in fig, f"figure {key}: {fig['error']}"
        assert fig["configs"], f"figure {key} measured nothing"

    f1 = figures["1"]
    for config in ("shards_1w", "shards_4w", "shards_1w_thread", "raw_tight", "raw_adaptive"):
        for q in ("p50", "p99"):
            assert all(_number(v) for v in _values(f1, config, "insert_to_running_ms", q)), (config, q)
    f2 = figures["2"]
    for workers in (1, 2, 4):
        for config in (f"shards_{workers}w", f"floor_{workers}w"):
            assert all(_number(v) and v > 0 for v in _values(f2, config, "runs_per_s")), config
    f3 = figures["3"]
    for config in f3["configs"]:
        assert all(_number(v) for v in _values(f3, config, "insert_to_running_ms", "p50")), config
        assert all(_number(v) for v in _values(f3, config, "idle_server_pct")), config
        assert all(_number(v) for v in _values(f3, config, "idle_workers_pct")), config
    f4 = figures["4"]
    assert set(f4["configs"]) == {"empty", "history_200"}
    for config in f4["configs"]:
        assert all(_number(v) for v in _values(f4, config, "insert_to_running_ms", "p50")), config
    f5 = figures["5"]
    assert all(_number(v) for v in _values(f5, "progress", "per_call_us"))
    assert all(v == 1000 for v in _values(f5, "progress", "calls"))
    f7 = figures["7"]
    assert set(f7["configs"]) == {"thread", "process"}
    for config in f7["configs"]:
        assert all(_number(v) for v in _values(f7, config, "run_ms", "p50")), config
        assert all(_number(v) and v > 0 for v in _values(f7, config, "runs_per_s")), config
    f8 = figures["8"]
    for measure in ("help_ms", "status_ms", "list_json_ms"):
        assert all(_number(v) and v > 0 for v in _values(f8, "startup", measure, "p50")), measure
    f11 = figures["11"]
    assert set(f11["configs"]) == {"shards_process", "shards_thread", "floor"}
    for config in f11["configs"]:
        assert all(_number(v) for v in _values(f11, config, "launch_to_seen_running_ms", "p50")), config

    rows = report["table"]
    assert {row["figure"].split()[0] for row in rows} == {"1", "2", "3", "4", "5", "7", "8", "11"}
    assert all(set(row) == {"figure", "shards", "baseline", "ratio", "target", "met"} for row in rows)
