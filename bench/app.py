"""The benchmark catalog: many no-op processes and one that waits to be stopped."""

from __future__ import annotations

import time

import shards

JOBS = 200


def _noop(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("done", 1.0)


def _wait(ctx: shards.ProcessContext) -> None:
    deadline = time.monotonic() + 60
    while ctx.should_continue() and time.monotonic() < deadline:
        time.sleep(0.01)


def process_list(scope_data: dict[str, object]) -> list[shards.ProcessDefinition]:
    noops = [shards.process(f"noop-{n}")(_noop) for n in range(JOBS)]
    waits = [shards.process(f"wait-{n}")(_wait) for n in range(20)]
    return noops + waits


app = shards.App(get_process_list=process_list)
