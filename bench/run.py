"""`make bench`: issue 8's benchmark (a benchmark, not a timed test). Each figure beside its
baseline from the same run, on the embedded server on loopback, a fresh server and database per
measurement, each repeated (min and median of the repeats):

  1 pickup insert -> Running (1 and 4 workers; raw tight-loop and same-wait baselines; polling at 1 s)
  2 throughput of no-op runs (1, 2, 4 workers; the bare-pymongo floor)
  3 fan-out (1, 10, 30 idle workers: pickup, claims per launch, idle CPU)
  4 pickup with 100,000 finished runs vs an empty history
  5 100,000 report_progress calls: added time and writes
  6 the operator path (bench/operator_path.py, merged)
  7 process isolation: a no-op run's cost and throughput, threads vs OS processes (bench/isolation.py)
  8 CLI start-up: `shards --help`, `status PROC` and `list -o json`, start to exit (bench/startup.py)
  9 the dashboard: a change in MongoDB -> 10 open pages, p50/p99; its CPU under load (bench/live_page.py)
 10 the operator at platform scale beside a bare kopf operator (bench/operator_scale.py, merged; 20-40 min)
 11 a client: launch call -> Running seen on a change stream, vs a bare-pymongo floor (bench/clientside.py)

Prints a table and writes bench/results/<UTC timestamp>.json and bench/results/latest.json.

  python bench/run.py                 # figures 1-11 (6 and 10 need `make tools`)
  python bench/run.py --smoke         # tiny counts, 1 repeat, no figures 6, 9 and 10 (checks the harness)
  python bench/run.py --smoke --only 10   # figure 10's harness alone (a local control plane)
  python bench/run.py --only 1,3 --repeats 1
  python bench/run.py --code-root DIR # measure the Shards packages in DIR (e.g. a `git archive`)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
OPERATOR_TITLES = {6: "operator path", 10: "operator at platform scale vs a bare kopf operator"}
PARTS = ("sdk", "store", "controller", "worker", "cli", "operator", "dashboard")
OPERATOR_TIMEOUT = 1500.0
SCALE_TIMEOUT = 5400.0  # figure 10 at its full size takes 20-40 minutes on 2 cores


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny counts: checks the harness, not the numbers")
    parser.add_argument("--only", default="", help="comma-separated figures, e.g. 1,3")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per figure (default 3; smoke 1)")
    parser.add_argument("--with-operator", action="store_true", help="run figures 6 and 10 in --smoke too")
    parser.add_argument("--worker-command", choices=["script", "module"], default="script",
                        help="run `shards` (every worker, and figure 8's CLI) as the console script, as "
                             "people and the images do, or as `python -m shards_cli`")
    parser.add_argument("--f7-modes", default="", help="figure 7's modes: thread,process")
    parser.add_argument("--results-dir", type=Path, default=BENCH / "results")
    parser.add_argument("--name", default=None, help="also write RESULTS_DIR/NAME.json")
    parser.add_argument("--note", action="append", default=[], help="a note kept in the JSON")
    parser.add_argument("--code-root", default=None,
                        help="import Shards from DIR/{sdk,store,...} (the harness and its workers)")
    return parser.parse_args(argv)


def use_code_root(args: argparse.Namespace) -> None:
    """Re-run this script with DIR's packages first on the path (workers inherit it)."""
    if not args.code_root:
        return
    root = str(Path(args.code_root).resolve())
    if os.environ.get("SHARDS_BENCH_CODE_ROOT") == root:
        return
    paths = [str(Path(root) / part) for part in PARTS]
    missing = [p for p in paths[:5] if not Path(p).is_dir()]
    if missing:
        sys.exit(f"run.py: --code-root {root}: missing {', '.join(missing)}")
    env = {**os.environ, "SHARDS_BENCH_CODE_ROOT": root,
           "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]], env)


def script_figure(script: str, smoke: bool, timeout: float) -> dict[str, Any]:
    """A figure measured by its own script in its own process (6: operator_path.py, 10:
    operator_scale.py): its JSON, merged."""
    with tempfile.TemporaryDirectory(prefix="shards-bench-script-") as tmp:
        out = Path(tmp) / "figure.json"
        command = [sys.executable, str(BENCH / script), "--out", str(out)]
        if smoke:
            command.append("--smoke")
        done = subprocess.run(command, cwd=BENCH.parent, timeout=timeout, check=False)
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"bench/{script} exited with {done.returncode}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    use_code_root(args)
    sys.path[:0] = [str(BENCH), str(BENCH.parent / "tests")]  # the figures, and tooling.harness
    import figures
    import report
    from tooling.harness import COMMAND_ENV

    os.environ[COMMAND_ENV] = args.worker_command  # every program the harness starts (scripts' too)
    plan = figures.Plan.smoke() if args.smoke else figures.Plan()
    if args.repeats is not None:
        plan.repeats = max(1, args.repeats)
    if args.f7_modes:
        plan.f7_modes = tuple(mode.strip() for mode in args.f7_modes.split(",") if mode.strip())
    wanted = [int(f) for f in args.only.split(",") if f.strip()] or [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    for operator in (6, 10):  # a local control plane each: `--smoke --with-operator` or `--only`
        if operator in wanted and args.smoke and not args.with_operator and not args.only:
            wanted.remove(operator)
    if 9 in wanted and args.smoke and not args.only:
        wanted.remove(9)  # `--smoke --only 9` checks it
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": "smoke" if args.smoke else "full",
        "machine": report.machine(),
        "code": report.code(os.environ.get("SHARDS_BENCH_CODE_ROOT")),
        "plan": plan.as_json(),
        "targets": report.TARGETS,
        "notes": [*args.note, f"workers started as {args.worker_command} (--worker-command)"],
        "figures": {},
    }
    began = time.monotonic()
    for number in wanted:
        known = figures.FIGURES.get(number)
        title = known[0] if known else OPERATOR_TITLES.get(number, "?")
        print(f"[bench] {time.strftime('%H:%M:%S')} figure {number}: {title}", flush=True)
        started = time.monotonic()
        try:
            if number == 6:
                fig = script_figure("operator_path.py", args.smoke, OPERATOR_TIMEOUT)
                fig["notes"] = ["one run, not repeated (bench/operator_path.py: a real API server, the "
                                "operator, 4 workers x 4); its own JSON merged as is"]
            elif number == 10:
                fig = script_figure("operator_scale.py", args.smoke, SCALE_TIMEOUT)
                fig["notes"] = ["one run, not repeated (bench/operator_scale.py: a real API server, the "
                                "operator beside a bare kopf operator, 2 workers x 8); its own JSON merged",
                                *fig.get("notes", [])]
            else:
                fig = figures.FIGURES[number][1](plan)
        except Exception as error:  # one figure's failure is reported; the others still run
            traceback.print_exc()
            fig = {"error": f"{type(error).__name__}: {error}"}
        fig["title"] = title
        fig["wall_s"] = round(time.monotonic() - started, 1)
        result["figures"][str(number)] = fig
    result["wall_s"] = round(time.monotonic() - began, 1)
    result["machine"]["loadavg_at_end"] = list(os.getloadavg())
    rows = report.table(result["figures"])
    result["table"] = rows
    print()
    print(report.render(rows))
    paths = report.write(result, args.results_dir, args.name)
    print(f"\n[bench] {result['wall_s']:.0f} s; wrote {', '.join(str(p) for p in paths)}")
    return 1 if any("error" in fig for fig in result["figures"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
