"""The benchmark catalog: many no-op processes, some that wait to be stopped, some that sleep for
args["seconds"] (figure 10's active runs), and one that calls report_progress, then ctx.log.info,
in a tight loop (figure 5)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import shards

JOBS = 1000  # as many as figure 2's runs: no launch waits for an id's previous run
SLEEPY = 200  # figure 10: active runs per scope, each its own process id


def _noop(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("done", 1.0)


def _wait(ctx: shards.ProcessContext) -> None:
    deadline = time.monotonic() + 60
    while ctx.should_continue() and time.monotonic() < deadline:
        time.sleep(0.01)


def _sleepy(ctx: shards.ProcessContext) -> None:
    """Active for args["seconds"] (bounded to 10 minutes), unless stopped before."""
    seconds = max(0.0, min(float(ctx.args.get("seconds", 60)), 600.0))
    deadline = time.monotonic() + seconds
    while ctx.should_continue() and time.monotonic() < deadline:
        time.sleep(0.1)


def _progress(ctx: shards.ProcessContext) -> None:
    """The same loop twice, without and with a report_progress call per iteration, then calls
    without pause for args["spread_s"] seconds (so the run spans several progress intervals);
    the timings go to the file named by args["out"]. args["n"]: iterations (bounded)."""
    n = max(1, min(int(ctx.args.get("n", 100_000)), 10_000_000))
    spread = max(0.0, min(float(ctx.args.get("spread_s", 0.0)), 60.0))
    report = ctx.report_progress
    sink = 0.0
    began = time.perf_counter()
    for i in range(n):
        sink += i / n
    plain = time.perf_counter() - began
    began = time.perf_counter()
    for i in range(n):
        report("step", i / n)
    reported = time.perf_counter() - began
    logged = min(n, 20_000)  # ctx.log.info calls: each also a line in the worker's own log
    began = time.perf_counter()
    for i in range(logged):
        ctx.log.info("step %d", i)
    with_log = time.perf_counter() - began
    spread_calls, until = 0, time.perf_counter() + spread
    while time.perf_counter() < until:
        report("spread", spread_calls % 100 / 100)
        spread_calls += 1
    result = {"n": n, "plain_s": plain, "with_calls_s": reported, "sink": sink, "spread_calls": spread_calls,
              "log_n": logged, "with_log_s": with_log}
    out = ctx.args.get("out")
    if out:
        Path(str(out)).write_text(json.dumps(result))


CATALOG = [
    *(shards.process(f"noop-{n}")(_noop) for n in range(JOBS)),
    *(shards.process(f"wait-{n}")(_wait) for n in range(20)),
    *(shards.process(f"sleepy-{n}")(_sleepy) for n in range(SLEEPY)),
    shards.process("progress")(_progress),
]


def process_list(scope_data: dict[str, object]) -> list[shards.ProcessDefinition]:
    return CATALOG  # built once: the worker asks for it at every launch


app = shards.App(get_process_list=process_list)
