"""The report: issue 8's targets, the table (figure | Shards | baseline | ratio | target | met?)
built from min/median over repeats, the machine, and the JSON files."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from stats import over_repeats, ratio

REPO = Path(__file__).resolve().parents[1]

TARGETS = {
    "pickup_p50_vs_same_wait_raw": "<= 2x the raw client with the same wait strategy",
    "pickup_p50_vs_tight_raw": "<= raw tight loop + 5 ms (adaptive wait hot)",
    "pickup_p99_ms": "<= 50 ms",
    "vs_polling_1s": ">= 20x better than the worker polling at 1 s",
    "overhead_p50_ms": "<= 3 ms p50, event at worker -> Running",
    "claims_per_launch": "<= 2 at any worker count",
    "fanout_p99": "p99 at the most workers <= 2x one worker",
    "idle_server_cpu_pct": "<= 10% of a core with the most (30) idle workers",
    "throughput_vs_floor": ">= 0.8x the floor with 4 workers",
    "throughput_not_falling": "not falling as workers are added (each >= 95% of the previous)",
    "history_p50": "within 1.2x of an empty history",
    "progress_us_per_call": "<= 5 us per call",
    "progress_writes_per_interval": "<= 1 write per interval",
    "dashboard_change_to_page_ms": "p50 and p99 <= 100 ms on loopback (a change in MongoDB -> 10 open pages)",
    "client_launch_to_running": "<= 1.5x the bare-pymongo floor, p50 (launch call -> Running seen)",
}

Row = dict[str, Any]


def summarize(configs: dict[str, list[dict[str, Any]]], *path: str) -> dict[str, Any]:
    """One value (at `path` in each repeat's result) of every configuration, min/median over repeats."""
    found: dict[str, Any] = {}
    for name, repeats in configs.items():
        values = []
        for result in repeats:
            value: Any = result
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            values.append(value if isinstance(value, int | float) else None)
        found[name] = over_repeats(values)
    return found


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def _cell(stat: dict[str, Any] | None, unit: str = "", digits: int = 1) -> str:
    if not stat or stat.get("median") is None:
        return "n/a"
    if len([v for v in stat["repeats"] if v is not None]) == 1:
        return _fmt(stat["median"], unit, digits)
    return f"{_fmt(stat['median'], unit, digits)} ({_fmt(stat['min'], '', digits)})"


def _med(stat: dict[str, Any] | None) -> float | None:
    return None if not stat else stat.get("median")


def _row(figure: str, shards: str, baseline: str = "", rate: float | None = None, target: str = "",
         met: bool | None = None, rate_text: str = "") -> Row:
    return {"figure": figure, "shards": shards, "baseline": baseline,
            "ratio": rate_text or ("" if rate is None else f"{rate:.2f}x"), "target": target, "met": met}


def _check(value: float | None, ok: bool) -> bool | None:
    return None if value is None else ok


def rows_figure1(fig: dict[str, Any]) -> list[Row]:
    p50 = summarize(fig["configs"], "insert_to_running_ms", "p50")
    p99 = summarize(fig["configs"], "insert_to_running_ms", "p99")
    overhead = summarize(fig["configs"], "worker_pickup_p50_ms")
    tight, same = p50.get("raw_tight"), p50.get("raw_adaptive")
    rows = []
    for name in [n for n in fig["configs"] if n.startswith("shards_") and n.endswith("w")]:
        w = name.removeprefix("shards_")
        s50 = _med(p50[name])
        r = ratio(s50, _med(same))
        rows.append(_row(f"1 pickup p50, {w} vs raw same wait", _cell(p50[name], " ms"),
                         _cell(same, " ms"), r, "<= 2x", _check(r, (r or 0) <= 2)))
        gap = None if s50 is None or _med(tight) is None else s50 - (_med(tight) or 0)
        rows.append(_row(f"1 pickup p50, {w} vs raw tight loop", _cell(p50[name], " ms"), _cell(tight, " ms"),
                         target="<= tight + 5 ms", met=_check(gap, (gap or 0) <= 5),
                         rate_text="" if gap is None else f"+{gap:.1f} ms"))
        s99 = _med(p99[name])
        rows.append(_row(f"1 pickup p99, {w}", _cell(p99[name], " ms"), _cell(p99.get("raw_tight"), " ms"),
                         ratio(s99, _med(p99.get("raw_tight"))), "<= 50 ms", _check(s99, (s99 or 0) <= 50)))
    one = p50.get("shards_1w")
    poll = p50.get("shards_polling_1s")
    better = ratio(_med(poll), _med(one))
    rows.append(_row("1 pickup p50, 1w vs polling at 1 s", _cell(one, " ms"), _cell(poll, " ms"),
                     target=">= 20x better", met=_check(better, (better or 0) >= 20),
                     rate_text="" if better is None else f"{better:.1f}x better"))
    for name, label in (("shards_1w", "1w"), ("shards_1w_thread", "1w, threads")):
        own = _med(overhead.get(name))
        rows.append(_row(f"1 overhead event->Running p50, {label}", _cell(overhead.get(name), " ms", 2),
                         target="<= 3 ms", met=_check(own, (own or 0) <= 3)))
    return rows


def rows_figure2(fig: dict[str, Any]) -> list[Row]:
    rate = summarize(fig["configs"], "runs_per_s")
    rows, previous, falling = [], None, False
    names = sorted((n for n in fig["configs"] if n.startswith("shards_")), key=lambda n: int(n[7:-1]))
    for name in names:
        w = int(name[7:-1])
        value, floor = _med(rate[name]), _med(rate.get(f"floor_{w}w"))
        r = ratio(value, floor)
        last = name == names[-1]
        rows.append(_row(f"2 throughput, {w} workers (runs/s)", _cell(rate[name]),
                         _cell(rate.get(f"floor_{w}w")), r, ">= 0.8x floor" if last else "",
                         _check(r, (r or 0) >= 0.8) if last else None))
        if previous is not None and value is not None and value < 0.95 * previous:
            falling = True
        previous = value if value is not None else previous
    capacity = summarize(fig["configs"], "launcher_capacity_per_s")
    if names:
        w = int(names[-1][7:-1])
        rows.append(_row(f"2 launcher capacity, {w} workers (launches/s)", _cell(capacity[names[-1]]),
                         _cell(capacity.get(f"floor_{w}w")), rate_text="(not the limit if > runs/s)"))
    if len(names) > 1:
        values = " / ".join(_fmt(_med(rate[n])) for n in names)
        rows.append(_row("2 throughput as workers are added", values, target="not falling",
                         met=None if previous is None else not falling))
    return rows


def rows_figure3(fig: dict[str, Any]) -> list[Row]:
    configs = fig["configs"]
    p50 = summarize(configs, "insert_to_running_ms", "p50")
    p99 = summarize(configs, "insert_to_running_ms", "p99")
    claims = summarize(configs, "claims_per_launch")
    server = summarize(configs, "idle_server_pct")
    workers = summarize(configs, "idle_workers_pct")
    names = sorted(configs, key=lambda n: int(n[7:-1]))
    rows = []
    for name in names:
        w = name[7:-1]
        rows.append(_row(f"3 pickup p50 / p99, {w} idle workers",
                         f"{_cell(p50[name], ' ms')} / {_cell(p99[name], ' ms')}"))
    first, most = names[0], names[-1]
    r = ratio(_med(p99[most]), _med(p99[first]))
    rows.append(_row(f"3 fan-out p99, {most[7:-1]} vs {first[7:-1]} worker(s)", _cell(p99[most], " ms"),
                     _cell(p99[first], " ms"), r, "<= 2x", _check(r, (r or 0) <= 2)))
    for name in names:
        c = _med(claims[name])
        rows.append(_row(f"3 claims per launch, {name[7:-1]} workers", _cell(claims[name], "", 2),
                         target="<= 2", met=_check(c, (c or 0) <= 2)))
    for name in names:
        cpu = _med(server[name])
        last = name == most
        rows.append(_row(f"3 idle CPU server / workers, {name[7:-1]} workers",
                         f"{_cell(server[name], '%')} / {_cell(workers[name], '%')}",
                         target="server <= 10%" if last else "",
                         met=_check(cpu, (cpu or 0) <= 10) if last else None))
    return rows


def rows_figure4(fig: dict[str, Any]) -> list[Row]:
    configs = fig["configs"]
    big = next((n for n in configs if n != "empty"), None)
    if big is None or "empty" not in configs:
        return [_row("4 history", "n/a")]
    rows = []
    for q in ("p50", "p99"):
        stat = summarize(configs, "insert_to_running_ms", q)
        r = ratio(_med(stat[big]), _med(stat["empty"]))
        size = big.removeprefix("history_")
        rows.append(_row(f"4 pickup {q}, {size} runs vs empty", _cell(stat[big], " ms"),
                         _cell(stat["empty"], " ms"), r, "<= 1.2x" if q == "p50" else "",
                         _check(r, (r or 0) <= 1.2) if q == "p50" else None))
    return rows


def rows_figure5(fig: dict[str, Any]) -> list[Row]:
    configs = fig["configs"]
    per_call = summarize(configs, "per_call_us")["progress"]
    plain = summarize(configs, "plain_per_iteration_us")["progress"]
    writes = summarize(configs, "writes")["progress"]
    per_interval = summarize(configs, "writes_per_interval")["progress"]
    us, wpi = _med(per_call), _med(per_interval)
    return [
        _row("5 report_progress added time per call", _cell(per_call, " us", 2), _cell(plain, " us", 3),
             target="<= 5 us", met=_check(us, (us or 0) <= 5), rate_text="(loop alone)"),
        _row("5 progress writes", f"{_cell(writes, '', 0)}, {_fmt(wpi, '', 2)} per interval",
             target="<= 1 per interval", met=_check(wpi, (wpi or 0) <= 1)),
    ]


def rows_figure6(fig: dict[str, Any]) -> list[Row]:
    latency, burst, met = fig.get("latency", {}), fig.get("burst", {}), fig.get("met", {})
    targets = fig.get("targets", {})
    return [
        _row("6 operator apply->Running p50", _fmt(latency.get("p50_ms"), " ms"),
             target=f"<= {targets.get('p50_ms', '?')} ms", met=met.get("apply->Running p50")),
        _row("6 operator apply->Running p99", _fmt(latency.get("p99_ms"), " ms"),
             target=f"<= {targets.get('p99_ms', '?')} ms", met=met.get("apply->Running p99")),
        _row(f"6 operator burst of {burst.get('resources', '?')}: all Done", _fmt(burst.get("seconds"), " s"),
             target=f"<= {targets.get('burst_s', '?')} s",
             met=next((v for k, v in met.items() if k.startswith("burst of")), None)),
        _row("6 operator status patches/resource", _fmt(burst.get("status_patches_per_resource"), "", 2),
             target=f"<= {targets.get('patches_per_resource', '?')}",
             met=met.get("burst: status patches/resource")),
    ]


def rows_figure7(fig: dict[str, Any]) -> list[Row]:
    configs = fig["configs"]
    p50, p99 = summarize(configs, "run_ms", "p50"), summarize(configs, "run_ms", "p99")
    rate = summarize(configs, "runs_per_s")
    rows = [_row(f"7 no-op run Running -> end p50 / p99, {mode} (ms)",
                 f"{_cell(p50[mode])} / {_cell(p99[mode])}",
                 "" if mode == "thread" else f"thread {_cell(p50.get('thread'))}") for mode in configs]
    values = " / ".join(f"{mode} {_cell(rate[mode])}" for mode in configs)
    rows.append(_row("7 no-op throughput, 1 worker x 4 (runs/s)", values))
    return rows


def rows_figure8(fig: dict[str, Any]) -> list[Row]:
    configs, rows = fig["configs"], []
    for key, what, target in (("help_ms", "shards --help", 150.0), ("status_ms", "shards status PROC", 300.0),
                              ("list_json_ms", "shards list -o json, 1,000 processes", None)):
        p50, p99 = summarize(configs, key, "p50")["startup"], summarize(configs, key, "p99")["startup"]
        rows.append(_row(f"8 {what}: start to exit p50 / p99", f"{_cell(p50, ' ms')} / {_cell(p99, ' ms')}",
                         target=f"p50 <= {target:.0f} ms" if target else "",
                         met=_check(_med(p50), (_med(p50) or 0) <= target) if target else None))
    return rows


def rows_figure9(fig: dict[str, Any]) -> list[Row]:
    configs = fig["configs"]
    p50 = summarize(configs, "latency_ms", "p50")["dashboard"]
    p99 = summarize(configs, "latency_ms", "p99")["dashboard"]
    cpu = summarize(configs, "busy_cpu_pct")["dashboard"]
    rate = summarize(configs, "messages_per_page_per_s")["dashboard"]
    ok = (_med(p50) or 0) <= 100 and (_med(p99) or 0) <= 100
    return [
        _row("9 dashboard: change in MongoDB -> 10 pages p50 / p99",
             f"{_cell(p50, ' ms')} / {_cell(p99, ' ms')}",
             target="<= 100 ms", met=_check(_med(p50), ok)),
        _row("9 dashboard CPU, 10 pages, 1,000 processes, one chatty + 1,000 changes/s", _cell(cpu, "%"),
             baseline=f"{_cell(rate)} messages/page/s"),
    ]


def rows_figure10(fig: dict[str, Any]) -> list[Row]:
    """bench/operator_scale.py's own table (Shards beside the bare kopf floor of the same run)."""
    return [{"figure": f"10 {row['figure']}", "shards": row["shards"], "baseline": f"floor {row['floor']}",
             "ratio": row["ratio"], "target": row["target"], "met": row["met"]} for row in fig["table"]]


def rows_figure11(fig: dict[str, Any]) -> list[Row]:
    configs = fig["configs"]
    p50 = summarize(configs, "launch_to_seen_running_ms", "p50")
    p99 = summarize(configs, "launch_to_seen_running_ms", "p99")
    rows = []
    for name in [n for n in configs if n.startswith("shards")]:
        r = ratio(_med(p50[name]), _med(p50.get("floor")))
        rows.append(_row(f"11 client: launch -> Running seen p50, {name.removeprefix('shards_')}",
                         _cell(p50[name], " ms"), _cell(p50.get("floor"), " ms"), r, "<= 1.5x",
                         _check(r, (r or 0) <= 1.5)))
        rows.append(_row(f"11 client: launch -> Running seen p99, {name.removeprefix('shards_')}",
                         _cell(p99[name], " ms"), _cell(p99.get("floor"), " ms"),
                         ratio(_med(p99[name]), _med(p99.get("floor")))))
    return rows


ROWS = {1: rows_figure1, 2: rows_figure2, 3: rows_figure3, 4: rows_figure4, 5: rows_figure5, 6: rows_figure6,
        7: rows_figure7, 8: rows_figure8, 9: rows_figure9, 10: rows_figure10, 11: rows_figure11}


def table(figures: dict[str, dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for key in sorted(figures, key=int):
        fig = figures[key]
        if "error" in fig:
            rows.append(_row(f"{key} {fig.get('title', '')}", f"error: {fig['error'][:60]}", met=False))
            continue
        try:
            rows.extend(ROWS[int(key)](fig))
        except (KeyError, TypeError, ValueError) as error:
            rows.append(_row(f"{key} {fig.get('title', '')}", f"no table: {error!r}"[:70], met=False))
    return rows


def render(rows: list[Row]) -> str:
    head = ["figure", "Shards", "baseline", "ratio", "target", "met?"]
    cells = [[r["figure"], r["shards"], r["baseline"], r["ratio"], r["target"],
              {True: "yes", False: "NO", None: "" if not r["target"] else "n/a"}[r["met"]]] for r in rows]
    widths = [max(len(str(c[i])) for c in [head, *cells]) for i in range(len(head))]
    lines = [" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
             "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join(lines) + "\n(Shards and baseline: median over repeats, (min) when repeated)"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30,
                              check=False).stdout.rstrip()  # porcelain lines start with a space
    except OSError:
        return ""


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "loadavg_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "pymongo": _version("pymongo"),
        "nx_27017": _version("nx-27017"),
        "platform": platform.platform(),
    }


def code(root: str | None) -> dict[str, Any]:
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty_files": [
            line[3:] for line in _git("--no-optional-locks", "status", "--porcelain").splitlines() if line
        ],
        "code_root": root or str(REPO),
    }


def write(result: dict[str, Any], results_dir: Path, name: str | None) -> list[Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(result, indent=2, default=str) + "\n"
    paths = [results_dir / f"{stamp}.json", results_dir / "latest.json"]
    if name:
        paths.append(results_dir / f"{name}.json")
    for path in paths:
        path.write_text(text)
    return paths
