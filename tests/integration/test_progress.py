"""Progress writes are coalesced, and the last value always lands."""

from __future__ import annotations

from shards.states import State

from integration.harness import ShardsHarness, wait_until


def test_a_chatty_process_causes_few_writes_and_its_last_report_lands(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)  # progress interval 0.2 s
    shards_env.define("farm")
    feed = shards_env.store.process_feed()
    feed.open()
    writes = 0
    try:
        shards_env.ok("launch", "chatty", "--scope", "farm", "--args", '{"seconds": 2}')

        def final_report_seen() -> bool:
            nonlocal writes
            change = feed.next_change(timeout=0.5)
            if change is None or change["fullDocument"]["processId"] != "chatty":
                return False
            writes += 1
            return str(change["fullDocument"]["progress"]["message"]).startswith("final")

        wait_until(final_report_seen, what="the final progress report")
    finally:
        feed.close()
    record = shards_env.record("farm", "chatty")
    assert record.state is State.RUNNING
    reports = int(record.progress.message.split()[1])
    assert record.progress.rate == 0.75
    assert reports > 1000, f"the process reported only {reports} times"
    # 2 s at one write per 0.2 s is ~10 progress writes, plus the state changes.
    assert writes < 40, f"{writes} writes for {reports} reports"
    shards_env.ok("stop", "chatty", "--scope", "farm")
    stopped = shards_env.wait_state("farm", "chatty", State.STOPPED)
    assert stopped.progress.message.startswith("final")  # a stopped run keeps its last progress
