"""docs/metrics.md, generated from the metric definitions of the worker and the operator, so the
page cannot drift from the code: `make docs-metrics` writes it, and
tests/unit/test_metrics_reference.py fails while it is behind."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

PAGE = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
COMPONENTS = (  # (title, module, where it is served)
    ("Worker", "shards_worker.metrics",
     "`shards worker --metrics-port PORT` (loopback unless `--metrics-address` says otherwise)"),
    ("Operator", "shards_operator.metrics",
     "`shards operator --metrics-port PORT`; the chart serves it on the operator's metrics Service"),
)
EXPOSED = {  # what Prometheus scrapes for a family of each type
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}
HEADER = """# Metrics reference

Every series the worker and the operator export, generated from their definitions
(`make docs-metrics`; a unit test fails while this page is behind the code). Histograms also carry
`le` on their `_bucket` series.

Label sets are bounded: `kind`, `state`, `outcome` and `forced` take a handful of values each;
`pool` is one per worker pool; `process` names a process only for a worker with a declared catalog
of at most 50 processes (`shards_worker.metrics.PROCESS_LABEL_LIMIT`), and is `other` otherwise (a
worker serving per-scope catalogs, whose processes are not known in advance).
"""


@dataclass(frozen=True, order=True)
class Series:
    name: str
    kind: str
    labels: tuple[str, ...]
    meaning: str

    def row(self) -> str:
        names = "<br>".join(f"`{self.name}{suffix}`" for suffix in EXPOSED[self.kind])
        labels = ", ".join(f"`{label}`" for label in self.labels) or "-"
        return f"| {names} | {self.kind} | {labels} | {self.meaning} |"


def families(module: ModuleType) -> list[Series]:
    """The metric families a module defines: its metric objects, and the families of its
    collectors (described without reading anything)."""
    found: list[Any] = []
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase):
            [family] = value.describe()
            found.append((family, value._labelnames))
    census = getattr(module, "PoolCensus", None)
    if census is not None:
        found += [(family, family._labelnames) for family in census(None).describe()]
    return sorted(Series(family.name, family.type, tuple(labels), family.documentation)
                  for family, labels in found)


def exported_series() -> set[str]:
    """What Prometheus scrapes from the worker and the operator: a counter's `_total`, a gauge's
    name, a histogram's `_bucket`, `_sum` and `_count` (what dashboards and alerts may name)."""
    return {family.name + suffix
            for _, module_name, _ in COMPONENTS
            for family in families(importlib.import_module(module_name))
            for suffix in EXPOSED[family.kind]}


def render() -> str:
    parts = [HEADER]
    for title, module_name, served in COMPONENTS:
        parts.append(f"\n## {title}\n\nServed by {served}.\n\n| series | type | labels | meaning |\n"
                     "|---|---|---|---|\n")
        parts.append("\n".join(series.row() for series in families(importlib.import_module(module_name))))
        parts.append("\n")
    return "".join(parts)


def main() -> int:
    PAGE.write_text(render())
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
