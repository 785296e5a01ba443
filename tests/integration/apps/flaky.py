"""Processes for the retry and hand-off tests. Each attempt appends a line to the file named in
its args ("start <pid> <run id>", then "done"/"failed"), so a test reads which attempts ran
where, and how many completed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import shards

app = shards.App()


def _log(ctx: shards.ProcessContext, line: str) -> int:
    """Append a line to the run's journal; returns how many attempts have started so far."""
    journal = Path(ctx.args["journal"])
    with journal.open("a") as out:
        out.write(f"{line}\n")
    return sum(1 for text in journal.read_text().splitlines() if text.startswith("start"))


@app.process("flaky", name="Flaky")
def flaky(ctx: shards.ProcessContext) -> None:
    """Fails its first `fail` attempts, then succeeds."""
    started = _log(ctx, f"start {os.getpid()} {ctx.run_id}")
    assert ctx.attempt == started, f"attempt {ctx.attempt} is start {started}"
    if started <= int(ctx.args.get("fail", 1)):
        _log(ctx, "failed")
        raise RuntimeError(f"flaky failure {started}")
    _log(ctx, "done")


@app.process("hopeless", name="Hopeless", retries=2, retry_backoff=0.2)
def hopeless(ctx: shards.ProcessContext) -> None:
    """Always fails; retried twice by default."""
    started = _log(ctx, f"start {os.getpid()} {ctx.run_id}")
    raise RuntimeError(f"hopeless attempt {started}")


@app.process("invalid", name="Invalid input", retries=3, retry_backoff=0.1)
def invalid(ctx: shards.ProcessContext) -> None:
    """A failure no retry can fix."""
    _log(ctx, f"start {os.getpid()} {ctx.run_id}")
    raise shards.Permanent("the input is invalid")


def _work(ctx: shards.ProcessContext) -> None:
    """Works cooperatively for `seconds`, then notes its completion."""
    _log(ctx, f"start {os.getpid()} {ctx.run_id}")
    deadline = time.monotonic() + float(ctx.args.get("seconds", 3))
    while time.monotonic() < deadline:
        if not ctx.should_continue():
            _log(ctx, "stopped")
            return
        ctx.report_progress(f"pid {os.getpid()}", 0.5)
        time.sleep(0.05)
    _log(ctx, "done")


app.process("handed-off", name="Handed off")(_work)  # on_shutdown="retry", the default
app.process("stops-on-shutdown", name="Stops on shutdown", on_shutdown="stop")(_work)


@app.process("oblivious", name="Oblivious")
def oblivious(ctx: shards.ProcessContext) -> None:
    """Never looks at should_continue(): only the end of its worker (or a kill) stops it early."""
    _log(ctx, f"start {os.getpid()} {ctx.run_id}")
    time.sleep(float(ctx.args.get("seconds", 3)))
    _log(ctx, "done")


@app.process("stamped", name="Stamped")
def stamped(ctx: shards.ProcessContext) -> None:
    """Fails its first `fail` attempts; each writes "start <attempt> <time>" and "end <attempt>
    <time>" (this machine's clock, which the skewed clock of a worker leaves alone)."""
    _log(ctx, f"start {ctx.attempt} {time.time():.3f}")
    failing = ctx.attempt <= int(ctx.args.get("fail", 1))
    _log(ctx, f"end {ctx.attempt} {time.time():.3f}")
    if failing:
        raise RuntimeError(f"stamped failure {ctx.attempt}")
