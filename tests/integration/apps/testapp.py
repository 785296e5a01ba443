"""Processes the integration tests drive through real worker OS processes."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import shards

app = shards.App()


def _wait_until_stopped(ctx: shards.ProcessContext, limit: float) -> None:
    deadline = time.monotonic() + limit
    while ctx.should_continue() and time.monotonic() < deadline:
        time.sleep(0.05)


@app.process("wait-for-stop", name="Wait for stop", on_shutdown="stop")
def wait_for_stop(ctx: shards.ProcessContext) -> None:
    """Runs until stopped (or `limit` seconds), reporting which worker pid runs it. A worker
    shutting down stops it (the hand-off of the default policy has tests of its own)."""
    ctx.report_progress(f"pid {os.getpid()}", 0.1)
    _wait_until_stopped(ctx, float(ctx.args.get("limit", 120)))
    time.sleep(float(ctx.args.get("linger_after_stop", 0)))  # a slow, cooperative shutdown


@app.process("quick", name="Quick")
def quick(ctx: shards.ProcessContext) -> None:
    """Appends one line per execution to a log file: how tests count executions."""
    log = ctx.args.get("log")
    if log:
        with Path(log).open("a") as file:
            file.write(f"{ctx.run_id} {os.getpid()}\n")
    time.sleep(float(ctx.args.get("pause", 0.05)))


@app.process("fail", name="Fail")
def fail(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("about to fail", 0.3)
    raise RuntimeError(f"boom: {ctx.args.get('why', 'no reason')}")


@app.process("chatty", name="Chatty")
def chatty(ctx: shards.ProcessContext) -> None:
    """Reports progress as fast as it can for `seconds`, then waits to be stopped."""
    deadline = time.monotonic() + float(ctx.args.get("seconds", 2.0))
    count = 0
    while time.monotonic() < deadline:
        count += 1
        ctx.report_progress(f"report {count}", 0.5)
    ctx.report_progress(f"final {count}", 0.75)
    _wait_until_stopped(ctx, 120)


@app.process("parent", name="Parent")
def parent(ctx: shards.ProcessContext) -> None:
    result = ctx.run_process(
        ctx.args["child"],
        args=ctx.args.get("child_args"),
        survive_failure=bool(ctx.args.get("survive_failure")),
        survive_stopping=bool(ctx.args.get("survive_stopping")),
    )
    ctx.report_progress(f"after child: {result}", 0.9)
    if ctx.args.get("linger"):
        _wait_until_stopped(ctx, 120)


@app.process("child-ok", name="Child that succeeds", detail_level=2)
def child_ok(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("child working", 0.5)


@app.process("child-fail", name="child that fails", detail_level=2)
def child_fail(ctx: shards.ProcessContext) -> None:
    raise ValueError("child broke")


@app.process("child-stop", name="Child that waits", detail_level=2)
def child_stop(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("child waiting", 0.2)
    _wait_until_stopped(ctx, 120)


@app.process("dangerous", name="Dangerous", warning="This deletes everything.", detail_level=1)
def dangerous(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("deleted nothing after all", 1.0)


@app.process("debug-dump", name="Debug dump", detail_level=4, special=True)
def debug_dump(ctx: shards.ProcessContext) -> None:
    ctx.report_progress(f"scope data keys: {sorted(ctx.scope_data)}", 1.0)


@app.process("exit", name="Exit")
def exit_(ctx: shards.ProcessContext) -> None:
    """Calls sys.exit inside the run (SystemExit is not an Exception)."""
    ctx.report_progress("exiting", 0.4)
    sys.exit(int(ctx.args.get("code", 3)))


@app.process("interrupt", name="Interrupt")
def interrupt(ctx: shards.ProcessContext) -> None:
    raise KeyboardInterrupt


@app.process("finish-later", name="Finish later")
def finish_later(ctx: shards.ProcessContext) -> None:
    """Sleeps `pause` seconds without looking at the store, then appends a line to `log`:
    tests use it to end a run at a moment of their choosing (e.g. during an outage)."""
    time.sleep(float(ctx.args.get("pause", 1.0)))
    with Path(ctx.args["log"]).open("a") as file:
        file.write(f"{ctx.run_id} {os.getpid()}\n")


@app.process("ticker", name="Ticker")
def ticker(ctx: shards.ProcessContext) -> None:
    """Appends "attempt pid time" to `journal` every 20 ms for `seconds`, never asking whether to
    go on (the worst case): the journal, outside MongoDB, shows when its code really executed."""
    deadline = time.monotonic() + float(ctx.args.get("seconds", 10.0))
    with Path(ctx.args["journal"]).open("a", buffering=1) as journal:
        while time.monotonic() < deadline:
            journal.write(f"{ctx.attempt} {os.getpid()} {time.time():.3f}\n")
            time.sleep(0.02)
