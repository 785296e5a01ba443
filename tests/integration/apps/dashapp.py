"""Processes the dashboard's browser tests drive: a slow dangerous one to watch and stop, one
that fails, one whose name, warning and messages are HTML (shown as text), a detail and a
special one for the filters."""

from __future__ import annotations

import time

import shards

app = shards.App()
XSS = '<img src=x onerror="window.__xss=1">'


@app.process("slow-danger", name="Slow danger", warning="Deletes the flock <b>for real</b>")
def slow_danger(ctx: shards.ProcessContext) -> None:
    steps = int(ctx.args.get("steps", 400))
    for step in range(steps):
        if not ctx.should_continue():
            time.sleep(float(ctx.args.get("linger", 1.5)))  # a stop that takes a moment: Stopping shows
            return
        ctx.report_progress(f"sheep {step + 1} of {steps}", (step + 1) / steps)
        time.sleep(0.15)


@app.process("broken", name="Broken")
def broken(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("about to break", 0.4)
    raise RuntimeError("the fence is down")


@app.process("xss", name=f"XSS {XSS}")
def xss(ctx: shards.ProcessContext) -> None:
    ctx.report_progress(f"<script>window.__xss=2</script>{XSS}<b>bold?</b>", 1.0)
    raise RuntimeError(f"failed with {XSS}")


@app.process("detail", name="A detail", detail_level=3)
def detail(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("detail", 1.0)


@app.process("debug", name="Debug helper", special=True)
def debug(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("debug", 1.0)
