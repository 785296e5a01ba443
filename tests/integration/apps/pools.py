"""Processes in three pools: the default one, `heavy`, and `gpu` (which tests start late)."""

from __future__ import annotations

import shards

app = shards.App()


@app.process("light-job", name="Light job")
def light_job(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("light", 1.0)


@app.process("heavy-job", name="Heavy job", pool="heavy")
def heavy_job(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("heavy", 1.0)


@app.process("gpu-job", name="GPU job", pool="gpu")
def gpu_job(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("gpu", 1.0)
