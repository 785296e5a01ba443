"""Processes that write run logs through ctx.log: a few lines or many, fast or slowly, and a
failure (its traceback is appended to the run's log)."""

from __future__ import annotations

import time

import shards

app = shards.App()


def _end(ctx: shards.ProcessContext) -> None:
    if ctx.args.get("fail"):
        raise ValueError(f"gave up after {ctx.args.get('n', 0)} lines")


@app.process("log-lines", name="Log lines")
def log_lines(ctx: shards.ProcessContext) -> None:
    """args: n (lines), fail; a warning, a caught exception's traceback, then n info lines."""
    ctx.log.warning("starting run %s", ctx.run_id)
    try:
        raise KeyError("caught")
    except KeyError:
        ctx.log.exception("handled an error")
    for i in range(int(ctx.args.get("n", 3))):
        ctx.log.info("line %d", i)
    ctx.log.debug("not recorded at the worker's default level (info)")
    _end(ctx)


@app.process("log-slowly", name="Log slowly")
def log_slowly(ctx: shards.ProcessContext) -> None:
    """args: n (lines, one per 0.05 s), fail; stops early when asked."""
    for i in range(int(ctx.args.get("n", 40))):
        if not ctx.should_continue():
            ctx.log.info("asked to stop at line %d", i)
            return
        ctx.log.info("slow line %d", i)
        time.sleep(0.05)
    _end(ctx)
