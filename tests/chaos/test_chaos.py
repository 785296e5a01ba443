"""A small seeded chaos run: nothing lost, duplicated or stuck, no run ended otherwise than it
must (crashes, runaways, the runs beside a crash), every fault really injected; and the schedules
that fired throughout (one per overlap policy) fired no nominal time twice and lost none.

About two minutes: 60 launches over 50 s on 3 workers, lease 3 s, a few faults of each kind,
then the bounded wait for quiescence. `make chaos` runs the full-size version.
"""

from __future__ import annotations

from pathlib import Path

from chaos.config import CRASH_REASONS, DEFAULT_MIX, RUNAWAY, ChaosConfig, Fault
from chaos.suite import run_chaos

SMALL_FAULTS = {
    Fault.WORKER_KILL: 2,
    Fault.WORKER_KILL_RESTART: 2,
    Fault.WORKER_TERM: 2,
    Fault.CLIENT_KILL: 3,
    Fault.MONGO_SHORT: 1,
    Fault.MONGO_LONG: 1,
    Fault.STOP: 6,
    Fault.FORCE_STOP: 2,
}
# More crashes and runaways than the full run's share, so that 60 launches surely have some of each.
SMALL_MIX = {**DEFAULT_MIX, **{kind: 0.05 for kind in CRASH_REASONS}, RUNAWAY: 0.25}


def test_small_chaos_run_loses_duplicates_and_strands_nothing(tmp_path: Path) -> None:
    config = ChaosConfig(
        seed=7, launches=60, workers=3, concurrency=4, scopes=20, lease=3.0, heartbeat=0.5,
        duration=50.0, faults=dict(SMALL_FAULTS), mix=dict(SMALL_MIX), workdir=tmp_path,
    )
    report = run_chaos(config)

    # Not vacuous: every fault kind happened, and runs ended in every final state.
    missing = [fault.value for fault in SMALL_FAULTS if report.injected[fault.value] == 0]
    assert not missing, f"faults never injected: {missing}"
    for state in ("Done", "Stopped", "Failed"):
        assert report.state_count(state) > 0, f"no run ended {state}"
    assert report.launches.accepted > 0
    for rule in ("crash", "beside a crash", "runaway, deadline", "runaway, forced stop"):
        assert report.endings_checked[rule] > 0, f"no run checked by the rule {rule!r}"

    assert report.lost == [], f"{len(report.lost)} lost runs (logs in {tmp_path})"
    assert report.duplicated == [], f"{len(report.duplicated)} duplicated runs (logs in {tmp_path})"
    assert report.stuck == [], f"{len(report.stuck)} stuck records (logs in {tmp_path})"
    assert report.wrong_endings == [], f"{report.wrong_endings[:8]} (logs in {tmp_path})"

    # Schedules: each fired, their overlap policies acted, and every nominal time came to one end.
    assert len(report.schedules) == 5
    for check in report.schedules:
        assert check.launched > 0 and check.executions > 0, f"{check.name} launched nothing"
    assert sum(check.skipped for check in report.schedules) > 0, "no schedule skipped a time"
    assert report.schedule_defects == [], f"{report.schedule_defects[:8]} (logs in {tmp_path})"
