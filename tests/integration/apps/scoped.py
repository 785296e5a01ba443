"""A catalog that depends on the scope, as the seed's getScopeData / getProcessList."""

from __future__ import annotations

import os

import shards


def get_scope_data(scope_id: str) -> dict[str, str]:
    return {"tier": "gold" if scope_id.startswith("gold") else "basic"}


@shards.process("report", name="Report")
def report(ctx: shards.ProcessContext) -> None:
    ctx.report_progress(f"tier {ctx.scope_data['tier']}", 1.0)


@shards.process("gold-audit", name="Gold audit", detail_level=2)
def gold_audit(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("audited", 1.0)


def get_process_list(scope_data: dict[str, str]) -> list[shards.ProcessDefinition]:
    processes = [report]
    if scope_data["tier"] == "gold":
        processes.append(gold_audit)
    if os.environ.get("SHARDS_TEST_DUPLICATE_IN_SCOPE") and scope_data["tier"] == "gold":
        processes.append(report)
    return processes


app = shards.App(get_process_list=get_process_list, get_scope_data=get_scope_data)
