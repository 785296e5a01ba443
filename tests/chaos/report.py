"""The chaos report: what was attempted, how runs ended, and the defects found; printed with rich."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from chaos.launches import LaunchCounts
from chaos.schedules import ScheduleCheck, totals

EXAMPLES = 8  # defects listed by name in the printed report


@dataclass
class SettleStats:
    """How long the runs hit by one kind of fault took to reach a final state."""

    faults: int = 0
    victims: int = 0
    settled: list[float] = field(default_factory=list)  # seconds from the fault to the final state
    unsettled: int = 0

    def percentile(self, share: float) -> float | None:
        if not self.settled:
            return None
        ordered = sorted(self.settled)  # nearest rank
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class Report:
    seed: int
    launches: LaunchCounts
    runs: int  # distinct run ids in the execution log
    final_states: Counter[tuple[str, str]]  # (state, reason prefix) -> runs
    lost: list[str]
    duplicated: list[str]
    stuck: list[str]
    wrong_endings: list[str]  # crashes, runaways and their neighbours that ended otherwise than they must
    endings_checked: Counter[str]  # rule -> runs it checked (see chaos.outcomes)
    settle: dict[str, SettleStats]
    injected: Counter[str]
    worker_exits: list[str]
    elapsed: float
    quiescent_after: float | None  # seconds the final wait took; None when the bound ran out
    workdir: str
    schedules: list[ScheduleCheck] = field(default_factory=list)  # one per schedule (chaos.schedules)
    schedules_caught_up_after: float | None = None  # seconds from the faults' end until none was overdue

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.stuck or self.wrong_endings
                    or self.schedule_defects)

    @property
    def schedule_defects(self) -> list[str]:
        return [defect for check in self.schedules for defect in check.defects]

    def state_count(self, state: str) -> int:
        return sum(count for (name, _), count in self.final_states.items() if name == state)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def print_report(report: Report, console: Console | None = None) -> None:
    console = console or Console(width=120)  # wide enough for the reasons, also when piped
    counts = report.launches
    summary = Table(title=f"Chaos run, seed {report.seed} ({report.elapsed:.0f}s, logs in {report.workdir})")
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    rows = [
        ("launches attempted", counts.attempted),
        ("  accepted", counts.accepted),
        ("  refused (ProcessActive)", counts.refused),
        ("  client killed", counts.client_killed),
        ("  errored", counts.errored),
        ("  deferred (Mongo down)", counts.deferred),
        ("runs executed", report.runs),
        ("workers that exited on their own", len(report.worker_exits)),
        ("quiescent after", _seconds(report.quiescent_after) if report.quiescent_after is not None
         else "never (bound reached)"),
        ("LOST", len(report.lost)),
        ("DUPLICATED", len(report.duplicated)),
        ("STUCK", len(report.stuck)),
        *((f"  runs checked: {rule}", count) for rule, count in sorted(report.endings_checked.items())),
        ("WRONG ENDINGS", len(report.wrong_endings)),
        *_schedule_rows(report),
    ]
    for name, value in rows:
        style = "bold red" if name.isupper() and value else None
        summary.add_row(name, str(value), style=style)
    console.print(summary)

    states = Table(title="Final states of runs (from the run history)")
    for column in ("state", "reason", "runs"):
        states.add_column(column, justify="right" if column == "runs" else "left")
    for (state, reason), count in sorted(report.final_states.items()):
        states.add_row(state, reason or "-", str(count))
    console.print(states)

    if report.schedules:
        console.print(_schedule_table(report.schedules))

    settle = Table(title="Settle time: fault -> final state of the runs it hit")
    for column in ("fault", "injected", "victims", "settled", "unsettled", "p50", "p99", "max"):
        settle.add_column(column, justify="left" if column == "fault" else "right")
    for kind in sorted(set(report.settle) | set(report.injected)):
        stats = report.settle.get(kind, SettleStats())
        settle.add_row(
            kind, str(report.injected.get(kind, 0)), str(stats.victims), str(len(stats.settled)),
            str(stats.unsettled), _seconds(stats.percentile(0.5)), _seconds(stats.percentile(0.99)),
            _seconds(max(stats.settled) if stats.settled else None),
            style="red" if stats.unsettled else None,
        )
    console.print(settle)

    for title, items in (("lost", report.lost), ("duplicated", report.duplicated),
                         ("stuck", report.stuck), ("wrong endings", report.wrong_endings),
                         ("schedule defects", report.schedule_defects),
                         ("worker exits", report.worker_exits)):
        if items:
            console.print(f"[bold]{title}[/bold] ({len(items)}):")
            for item in items[:EXAMPLES]:
                console.print(f"  {item}", soft_wrap=True, highlight=False)
            if len(items) > EXAMPLES:
                console.print(f"  ... and {len(items) - EXAMPLES} more")


def _schedule_rows(report: Report) -> list[tuple[str, int | str]]:
    if not report.schedules:
        return []
    total = totals(report.schedules)
    return [
        ("schedules", total.schedules),
        ("  caught up before the pause after", _seconds(report.schedules_caught_up_after)
         if report.schedules_caught_up_after is not None else "never (bound reached)"),
        ("  nominal times due (creation to pause)", total.due),
        ("  launched or queued, once each", total.launched),
        ("  skipped (overlap policy)", total.skipped),
        ("  missed (older than the catch-up window)", total.missed),
        ("  failed to launch", total.failed),
        ("  in flight at the pause", total.cut_off),
        ("FIRED TWICE", total.twice),
        ("UNACCOUNTED", total.unaccounted),
        ("QUEUED FOREVER", total.stuck),
    ]


def _schedule_table(checks: list[ScheduleCheck]) -> Table:
    table = Table(title="Schedules: nominal times from creation to pause")
    table.add_column("schedule", no_wrap=True)
    # launches: of its nominal times, in the history; execs: executions of their runs, in the log
    for column in ("due", "launched", "skipped", "missed", "failed", "in flight", "launches", "execs",
                   "defects"):
        table.add_column(column, justify="right")
    for check in checks:
        table.add_row(check.name, *(str(n) for n in (
            check.due, check.launched, check.skipped, check.missed, check.failed, check.cut_off,
            check.launches, check.executions, len(check.defects))), style="red" if check.defects else None)
    return table
