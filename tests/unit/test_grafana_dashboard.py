"""The Grafana dashboard the chart ships (dashboards/shards.json, in the ConfigMap of
templates/grafana-configmap.yaml): every series its queries name is one the worker or the operator
exports (the families docs/metrics.md is generated from), and every panel queries the data source
the `datasource` variable picks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tooling import metrics_reference

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboards" / "shards.json"
CONFIGMAP = REPO / "templates" / "grafana-configmap.yaml"
DATASOURCE = "${datasource}"
SERIES = re.compile(r"\bshards_[A-Za-z0-9_:]*")


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels inside rows (a collapsed row holds its own)."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel's targets."""
    return [(f"panel {panel.get('title')!r}", target["expr"])
            for panel in panels(dashboard["panels"]) for target in panel.get("targets", [])
            if "expr" in target]


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of the query variables (a string, or Grafana's {"query": ...} object)."""
    found = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append((f"variable {variable['name']!r}",
                          query["query"] if isinstance(query, dict) else query))
    return found


def series_named(expr: str) -> set[str]:
    return set(SERIES.findall(expr))


def unknown_series(dashboard: dict[str, Any]) -> list[str]:
    exported = metrics_reference.exported_series()
    return sorted(f"{where}: {name}" for where, expr in panel_queries(dashboard) + variable_queries(dashboard)
                  for name in series_named(expr) - exported)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_the_exported_series_are_the_documented_ones() -> None:
    """The reference this test checks against is the one docs/metrics.md is generated from."""
    page = metrics_reference.PAGE.read_text()
    documented = set(re.findall(r"`(shards_[a-z0-9_]+)`", page))
    assert metrics_reference.exported_series() == documented


def test_every_series_a_query_names_is_exported(dashboard: dict[str, Any]) -> None:
    queries = panel_queries(dashboard)
    assert len(queries) >= 20
    assert all(series_named(expr) for _, expr in queries), "a query that names no Shards series"
    assert unknown_series(dashboard) == []


@pytest.mark.parametrize("wrong", [
    "shards_runs_ended",  # a counter without _total
    "shards_pickup_seconds",  # a histogram without _bucket
    "shards_busy_slots",  # not exported at all
    "shards_runs_active_total",  # a gauge is not a counter
])
def test_a_series_the_code_does_not_export_is_caught(dashboard: dict[str, Any], wrong: str) -> None:
    broken = json.loads(json.dumps(dashboard))
    [*_, last] = [panel for panel in panels(broken["panels"]) if panel.get("targets")]
    last["targets"].append({"refId": "Z", "expr": f"sum(rate({wrong}[5m]))",
                            "datasource": {"type": "prometheus", "uid": DATASOURCE}})
    assert unknown_series(broken) == [f"panel {last['title']!r}: {wrong}"]


def test_the_panels_show_what_the_issue_asks_for(dashboard: dict[str, Any]) -> None:
    named = set().union(*(series_named(expr) for _, expr in panel_queries(dashboard)))
    assert {
        "shards_pending_launches", "shards_live_workers", "shards_ownerless_runs",
        "shards_runs_ended_total", "shards_launch_to_running_seconds_count",
        "shards_pickup_seconds_bucket", "shards_launch_to_running_seconds_bucket",
        "shards_stop_seconds_bucket", "shards_run_duration_seconds_bucket",
        "shards_operator_status_lag_seconds_bucket",
        "shards_schedule_lag_seconds_bucket", "shards_schedule_fires_total",
        "shards_change_stream_errors_total", "shards_operator_stream_errors_total",
    } <= named


def test_buckets_are_read_through_histogram_quantile_by_le(dashboard: dict[str, Any]) -> None:
    for where, expr in panel_queries(dashboard):
        if "_bucket" in expr:
            assert expr.startswith("histogram_quantile("), (where, expr)
            assert re.search(r"\bby \((?:[\w ]*, *)?le\b", expr), (where, expr)
        assert expr.count("(") == expr.count(")"), (where, expr)


def test_every_panel_has_a_title_and_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    every = list(panels(dashboard["panels"]))
    assert any(panel["type"] == "row" and panel["collapsed"] and panel["panels"] for panel in every)
    for panel in every:
        assert panel.get("title"), panel
        assert panel.get("datasource") == {"type": "prometheus", "uid": DATASOURCE}, panel["title"]
        for target in panel.get("targets", []):
            assert target.get("datasource") == {"type": "prometheus", "uid": DATASOURCE}, panel["title"]
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_the_variables(dashboard: dict[str, Any]) -> None:
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "pool"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == {"type": "prometheus", "uid": DATASOURCE}
        # "All" is a regex matching a missing label too: a Prometheus without `namespace` works.
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
    used = " ".join(expr for _, expr in panel_queries(dashboard))
    assert 'namespace=~"$namespace"' in used and 'pool=~"$pool"' in used


def test_the_chart_ships_the_file() -> None:
    assert '.Files.Get "dashboards/shards.json"' in CONFIGMAP.read_text()
