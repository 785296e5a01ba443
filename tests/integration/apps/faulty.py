"""Processes that misbehave: they crash their OS process, run out of memory or never look at
should_continue(). The isolation tests run them beside well-behaved ones on one worker."""

from __future__ import annotations

import ctypes
import os
import time

import shards

app = shards.App()


@app.process("exit-hard", name="Exit hard")
def exit_hard(ctx: shards.ProcessContext) -> None:
    """os._exit skips every handler: in a thread it would take the worker down."""
    ctx.report_progress("exiting", 0.3)
    os._exit(int(ctx.args.get("code", 3)))


@app.process("segfault", name="Segfault")
def segfault(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("reading address 0", 0.3)
    ctypes.string_at(0)


@app.process("oom", name="Out of memory")
def oom(ctx: shards.ProcessContext) -> None:
    """Asks for far more memory than any machine has: MemoryError."""
    ctx.report_progress("allocating", 0.3)
    hoard = [bytearray(1 << 60)]
    ctx.report_progress(f"got {len(hoard)}", 0.9)


@app.process("stubborn", name="Stubborn", timeout=600)
def stubborn(ctx: shards.ProcessContext) -> None:
    """Never calls should_continue(): only a kill ends it before `seconds`."""
    ctx.report_progress(f"pid {os.getpid()}", 0.1)
    time.sleep(float(ctx.args.get("seconds", 600)))


@app.process("short-fuse", name="Short fuse", timeout=1)
def short_fuse(ctx: shards.ProcessContext) -> None:
    """Cooperative, but slower than its own 1 s timeout."""
    while ctx.should_continue():
        time.sleep(0.05)


@app.process("count", name="Count")
def count(ctx: shards.ProcessContext) -> None:
    """Counts to n, reporting each step; cooperative."""
    n = int(ctx.args.get("n", 20))
    for i in range(n):
        if not ctx.should_continue():
            return
        ctx.report_progress(f"counted {i + 1}", (i + 1) / n)
        time.sleep(float(ctx.args.get("pause", 0.05)))
    print(f"counted to {n} in run {ctx.run_id}")  # the worker's output has it, even from a run's process


@app.process("parent", name="Parent")
def parent(ctx: shards.ProcessContext) -> None:
    """Runs `child` inline (in the same OS process), then reports that process's pid."""
    result = ctx.run_process(ctx.args.get("child", "count"), args=ctx.args.get("child_args"),
                             survive_failure=True, survive_stopping=True)
    ctx.report_progress(f"child {result} in pid {os.getpid()}", 0.9)
    if ctx.args.get("then_stubborn"):
        time.sleep(600)
