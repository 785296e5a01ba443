"""The example app, after the seed's README: breed, count and butcher sheep.

Run a worker for it with:  shards worker examples/sheep.py:app
"""

from __future__ import annotations

import time

import shards

app = shards.App()


@app.process("breed-sheep", name="Breed sheep", detail_level=1)
def breed_sheep(ctx: shards.ProcessContext) -> None:
    """Breeds a flock, then counts it with a child process."""
    flock = int(ctx.args.get("flock", 5))
    for lamb in range(flock):
        if not ctx.should_continue():
            return
        ctx.report_progress(f"breeding lamb {lamb + 1} of {flock}", lamb / flock / 2)
        time.sleep(float(ctx.args.get("pause", 0.2)))
    ctx.report_progress("counting the flock", 0.5)
    ctx.run_process("count-sheep", args={"n": flock, "pause": ctx.args.get("pause", 0.2)})


@app.process("count-sheep", name="Count sheep", detail_level=2)
def count_sheep(ctx: shards.ProcessContext) -> None:
    n = int(ctx.args.get("n", 10))
    for i in range(n):
        if not ctx.should_continue():
            return
        ctx.report_progress(f"sheep {i + 1}", (i + 1) / n)
        ctx.log.info("sheep %d", i + 1)  # the run's log: shards logs, kubectl shards logs
        time.sleep(float(ctx.args.get("pause", 0.2)))


@app.process(
    "butcher-sheep",
    name="Butcher sheep",
    warning="This will butcher all the sheep. There is no way back.",
    detail_level=1,
)
def butcher_sheep(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("sharpening knives", 0.5)
    time.sleep(float(ctx.args.get("pause", 0.2)))
    if ctx.args.get("fail"):
        raise RuntimeError("the sheep escaped")


@app.process("inspect-flock", name="Inspect the flock (debug)", detail_level=4, special=True)
def inspect_flock(ctx: shards.ProcessContext) -> None:
    ctx.report_progress(f"scope data: {sorted(ctx.scope_data)}", 1.0)
