"""Numbers: percentiles of samples, min/median over repeats, and the workers' Prometheus metrics
(counters summed over workers, histogram quantiles from their buckets)."""

from __future__ import annotations

import math
import statistics
import urllib.request
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, dict[str, str], float]  # (name, labels, value)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def latency(samples_ms: Sequence[float]) -> dict[str, Any]:
    """p50/p99/max of latency samples in milliseconds; empty -> n/a (None)."""
    if not samples_ms:
        return {"n": 0, "p50": None, "p99": None, "max": None, "mean": None}
    return {
        "n": len(samples_ms),
        "p50": round(percentile(samples_ms, 50), 3),
        "p99": round(percentile(samples_ms, 99), 3),
        "max": round(max(samples_ms), 3),
        "mean": round(statistics.fmean(samples_ms), 3),
    }


def over_repeats(values: Iterable[float | None]) -> dict[str, Any]:
    """min and median of one figure over its repeats (None when any repeat has no value)."""
    listed = list(values)
    known = [v for v in listed if v is not None]
    if not known:
        return {"min": None, "median": None, "repeats": listed}
    return {
        "min": round(min(known), 4),
        "median": round(statistics.median(known), 4),
        "repeats": [None if v is None else round(v, 4) for v in listed],
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


# -- Prometheus ---------------------------------------------------------------------------------
def scrape(port: int, timeout: float = 5.0) -> list[Sample]:
    """Every sample a worker serves on 127.0.0.1:port; [] when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as reply:
            text = reply.read().decode()
    except OSError:
        return []
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def has_metric(samples: Iterable[Sample], name: str) -> bool:
    return any(s[0] == name or s[0].startswith(name + "_") for s in samples)


def total(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """The sum of a counter over every sample (every worker) whose labels include `labels`."""
    return sum(
        value
        for sample_name, sample_labels, value in samples
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )


def by_label(samples: Iterable[Sample], name: str, label: str, **labels: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for sample_name, sample_labels, value in samples:
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items()):
            key = sample_labels.get(label, "")
            found[key] = found.get(key, 0.0) + value
    return found


def buckets(samples: Iterable[Sample], name: str) -> dict[float, float]:
    """Cumulative bucket counts of a histogram, summed over workers: {upper bound: count}."""
    found: dict[float, float] = {}
    for sample_name, labels, value in samples:
        if sample_name == f"{name}_bucket":
            bound = float(labels["le"])
            found[bound] = found.get(bound, 0.0) + value
    return found


def bucket_delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {bound: count - before.get(bound, 0.0) for bound, count in after.items()}


def histogram_quantile(cumulative: dict[float, float], q: float) -> float | None:
    """Prometheus' estimate: linear interpolation inside the bucket the quantile falls in."""
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] <= 0:
        return None
    rank = q * cumulative[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound
