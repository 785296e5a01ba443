"""docs/metrics.md lists exactly the series the code exports (it is generated: `make docs-metrics`)."""

from __future__ import annotations

from tooling import metrics_reference


def test_the_metrics_page_is_generated_from_the_code() -> None:
    assert metrics_reference.PAGE.read_text() == metrics_reference.render(), (
        "docs/metrics.md is behind the metric definitions: run `make docs-metrics`")


def test_every_family_has_a_meaning_and_the_new_histograms_are_listed() -> None:
    page = metrics_reference.render()
    for name in ("shards_launch_to_running_seconds_bucket", "shards_run_duration_seconds_bucket",
                 "shards_stop_seconds_bucket", "shards_operator_status_lag_seconds_bucket",
                 "shards_pending_launches", "shards_requests_claimed_total"):
        assert f"`{name}`" in page
    for line in page.splitlines():
        if line.startswith("| `"):
            assert line.rstrip(" |").split("|")[-1].strip(), line
