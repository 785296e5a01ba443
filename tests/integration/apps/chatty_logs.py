"""Processes that log and print: the worker's log lines about a run carry its id, and so do
what the run's code logs through `logging` and what it prints."""

from __future__ import annotations

import logging
import sys
import time

import shards

app = shards.App()
log = logging.getLogger("chatty_logs")


@app.process("talk", name="Talk")
def talk(ctx: shards.ProcessContext) -> None:
    log.info("logged by %s", ctx.run_id)
    log.debug("debug by %s", ctx.run_id)
    print(f"printed by {ctx.run_id}")
    print(f"to stderr by {ctx.run_id}", file=sys.stderr)
    log.warning("two lines\nby %s", ctx.run_id)
    try:
        raise ValueError(f"raised\nby {ctx.run_id}")
    except ValueError:
        log.exception("caught by %s", ctx.run_id)
    ctx.report_progress("talked", 0.5)


@app.process("talk-parent", name="Talk, then have a child talk")
def talk_parent(ctx: shards.ProcessContext) -> None:
    log.info("parent logged by %s", ctx.run_id)
    ctx.run_process("talk")
    print(f"parent printed by {ctx.run_id}")


@app.process("talk-fail", name="Talk, then fail")
def talk_fail(ctx: shards.ProcessContext) -> None:
    print(f"printed by {ctx.run_id}", end="")  # no newline: logged when the run's process exits
    raise RuntimeError(f"failed\nby {ctx.run_id}")


@app.process("wait", name="Wait until stopped")
def wait(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("waiting", 0.1)
    while ctx.should_continue():
        time.sleep(0.05)
