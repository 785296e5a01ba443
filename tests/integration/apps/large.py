"""Large catalogs: scope `big-N` has N processes besides `quick`.

With $SHARDS_TEST_GATE set (a directory), a define holds while the file `hold` is there, at a
point the test chooses (bounded: it goes on after a minute), and says so with the file
`holding`: while the catalog is computed (`hold` says "catalog"), or when the process
`p01500` is written (`hold` says "writes": the batches before it are written)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shards

HOLD_LIMIT = 60.0


def hold(where: str) -> None:
    gate = os.environ.get("SHARDS_TEST_GATE")
    if not gate:
        return
    held = Path(gate, "hold")
    if not held.exists() or held.read_text().strip() != where:
        return
    Path(gate, "holding").write_text(where)
    deadline = time.monotonic() + HOLD_LIMIT
    while held.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


@shards.process("quick", name="Quick")
def quick(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("done", 1.0)


def work(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("done", 1.0)


@dataclass(frozen=True)
class HeldDefinition(shards.ProcessDefinition):
    """A definition whose writing can be held (the worker reads its fields as it writes)."""

    def to_fields(self) -> dict[str, Any]:
        hold("writes")
        return super().to_fields()


def get_scope_data(scope_id: str) -> dict[str, int]:
    size = scope_id.removeprefix("big-")
    return {"size": int(size) if size.isdigit() else 0}


def get_process_list(scope_data: dict[str, int]) -> list[shards.ProcessDefinition]:
    size = scope_data["size"]
    if size:
        hold("catalog")
    made = [(HeldDefinition if i == 1500 else shards.ProcessDefinition)(f"p{i:05d}", f"Process {i}", work)
            for i in range(size)]
    return [quick, *made]


app = shards.App(get_process_list=get_process_list, get_scope_data=get_scope_data)
