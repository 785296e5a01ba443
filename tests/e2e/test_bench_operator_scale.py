"""Figure 10's harness works (here, not in tests/bench: it needs the local control plane's tools,
which `make test-e2e` builds): `bench/run.py --smoke --only 10` runs bench/operator_scale.py with tiny
counts (the floor, a bare kopf operator, then the Shards operator, on a local control plane) and
the merged report holds every one of its figures, for both sides. Timing targets are never
asserted here (they belong to `make bench`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tooling.cluster import KubeCluster, is_built

REPO = Path(__file__).resolve().parents[2]  # tests/e2e/ -> the repository
SMOKE_TIMEOUT = 900  # about 3 minutes on 2 cores, a control plane's start included

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not is_built(), reason="needs the local control plane's binaries: make tools"),
]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


@pytest.mark.timeout(SMOKE_TIMEOUT + 60)
def test_smoke_operator_scale_reports_every_figure(kube_cluster: KubeCluster, tmp_path: Path) -> None:
    """On the session's control plane (the bench reuses a running one, and leaves it running)."""
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--only", "10", "--results-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=SMOKE_TIMEOUT, check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout[-6000:]}\nstderr:\n{done.stderr[-4000:]}"
    report = json.loads((tmp_path / "latest.json").read_text())
    assert sorted(report["figures"]) == ["10"]
    fig = report["figures"]["10"]
    assert "error" not in fig, fig.get("error")
    plan = fig["plan"]
    assert plan["smoke"] is True

    for side in ("floor", "shards"):
        result = fig[side]
        existing = result["existing"]
        assert existing["all_done"] and existing["done"] == plan["existing"], (side, existing)
        assert _number(existing["created_per_s"]) and existing["created_per_s"] > 0
        assert all(_number(existing["rss_mb"][k]) for k in ("0", "tenth", "all")), (side, existing["rss_mb"])
        assert _number(existing["idle_cpu_pct"]["operator"])
        assert _number(existing["idle_cpu_pct"]["kube-apiserver"])
        arrivals = result["arrivals"]
        assert arrivals["resources"] > 0 and arrivals["apply_to_done"]["n"] > 0, (side, arrivals)
        burst = result["burst"]
        assert _number(burst["seconds"]) and _number(burst["kubectl_apply_s"]), (side, burst)
        assert burst["api_requests_per_run"].get("PATCH shardprocesses/status", 0) >= 1, (side, burst)
        assert _number(burst["api_429s"]) and _number(burst["status_patches_per_run"])
        restart = result["restart"]
        assert _number(restart["ready_s"]) and _number(restart["consistent_s"]), (side, restart)
        listing = result["listing"]
        assert listing["resources"] > 0 and listing["json_bytes"] > 0 and listing["table_bytes"] > 0

    shards = fig["shards"]
    assert shards["arrivals"]["apply_to_running"]["n"] == shards["arrivals"]["resources"]
    assert shards["active"]["all_active"], shards["active"]
    assert shards["restart"]["launches_runs"] == 0, shards["restart"]  # a restart launches nothing
    assert shards["restart"]["stopped_while_down"] > 0

    rows = [row for row in report["table"] if row["figure"].startswith("10 ")]
    assert len(rows) == len(fig["table"]) > 10
    assert all(set(row) == {"figure", "shards", "baseline", "ratio", "target", "met"} for row in rows)
