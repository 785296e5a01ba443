"""The run log buffer: bounds (lines and bytes), the dropped count behind the marker, batching
(one delivery per flush, in order, nothing lost when a delivery fails), and ctx.log's format."""

from __future__ import annotations

import logging
import re
import threading

import pytest
from shards.context import ProcessContext
from shards.runlog import MAX_LINE, RunLog, clip, dropped_marker, entry
from shards.states import State
from shards_worker.runlogs import LogBatch, LogBuffer

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


class Store:
    """Applies batches as the runlogs collection does ($push + $each + $slice, $set dropped)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.dropped = 0
        self.writes = 0

    def deliver(self, batch: LogBatch) -> None:
        self.lines = (self.lines + batch.lines)[-batch.keep:]
        self.dropped = batch.dropped
        self.writes += 1


def test_lines_are_delivered_in_one_batch_per_flush_and_nothing_when_none_came() -> None:
    buffer, store = LogBuffer(), Store()
    for i in range(250):
        buffer.append(f"l{i}")
    assert store.writes == 0  # appending never writes
    assert buffer.flush(store.deliver) is True
    assert (store.writes, store.lines[0], len(store.lines), store.dropped) == (1, "l0", 250, 0)
    assert buffer.flush(store.deliver) is False and store.writes == 1


def test_the_store_keeps_the_last_lines_and_counts_the_dropped_ones() -> None:
    buffer, store = LogBuffer(max_lines=10, max_bytes=10_000), Store()
    for batch in range(4):
        for i in range(7):
            buffer.append(f"b{batch}l{i}")
        buffer.flush(store.deliver)
    assert store.lines == [f"b{b}l{i}" for b, i in [(2, 4), (2, 5), (2, 6)] + [(3, i) for i in range(7)]]
    assert store.dropped == 28 - 10


def test_a_chatty_run_between_flushes_is_bounded_in_memory_and_counted() -> None:
    buffer, store = LogBuffer(max_lines=100, max_bytes=10_000), Store()
    for i in range(1000):
        buffer.append(f"{i}")
    assert buffer.pending() == 100 + 900  # 100 lines held, 900 counted as dropped
    buffer.flush(store.deliver)
    assert (store.lines[0], store.lines[-1], store.dropped, store.writes) == ("900", "999", 900, 1)


def test_bytes_bound_the_lines_kept_utf8_counted() -> None:
    buffer, store = LogBuffer(max_lines=1000, max_bytes=100), Store()
    for i in range(30):
        buffer.append(f"é{i:03d}")  # 5 bytes each (é is 2 in UTF-8)
        if i % 7 == 0:
            buffer.flush(store.deliver)
    buffer.flush(store.deliver)
    assert len(store.lines) == 20 and store.lines[-1] == "é029"
    assert store.dropped == 10


def test_a_failed_delivery_keeps_the_lines_for_the_next_flush_in_order() -> None:
    buffer, store = LogBuffer(max_lines=5, max_bytes=10_000), Store()
    buffer.append("a")
    buffer.append("b")

    def outage(batch: LogBatch) -> None:
        raise ConnectionError("away")

    with pytest.raises(ConnectionError):
        buffer.flush(outage)
    for line in "cdefg":
        buffer.append(line)
    buffer.flush(store.deliver)
    assert (store.lines, store.dropped) == (list("cdefg"), 2)


def test_a_relayed_batch_carries_what_it_dropped_on_the_way() -> None:
    child, worker, store = LogBuffer(max_lines=3), LogBuffer(max_lines=3), Store()
    for i in range(5):
        child.append(f"{i}")
    child.flush(lambda batch: worker.extend(batch.lines, batch.skipped))
    worker.flush(store.deliver)
    assert (store.lines, store.dropped) == (["2", "3", "4"], 2)


def test_appends_from_threads_while_flushing_lose_nothing() -> None:
    buffer, store = LogBuffer(max_lines=100_000, max_bytes=10**8), Store()
    done = threading.Event()

    def flusher() -> None:
        while not done.is_set():
            buffer.flush(store.deliver)

    thread = threading.Thread(target=flusher)
    thread.start()
    def write(n: int) -> None:
        for i in range(5000):
            buffer.append(f"{n}:{i}")

    writers = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    done.set()
    thread.join()
    buffer.flush(store.deliver)
    assert len(store.lines) == 15000 and store.dropped == 0
    for n in range(3):
        assert [line for line in store.lines if line.startswith(f"{n}:")] == [f"{n}:{i}" for i in range(5000)]


def test_a_huge_line_is_cut() -> None:
    assert len(clip("x" * (MAX_LINE * 2))) == MAX_LINE and clip("x" * (MAX_LINE * 2)).endswith("(cut)")
    assert clip("short") == "short"


class Runtime:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.log_line = self.lines.append

    def should_continue(self) -> bool:
        return True

    def report_progress(self, message: str, rate: float) -> None:
        pass

    def run_child(self, process_id: str, args: dict[str, object]) -> tuple[State, str]:
        raise NotImplementedError


def test_ctx_log_is_a_logger_whose_entries_are_time_level_message_and_traceback() -> None:
    runtime = Runtime()
    ctx = ProcessContext("farm", "count", "r1", runtime)
    assert isinstance(ctx.log, logging.Logger) and ctx.log.name == "shards.run.count"
    ctx.log.setLevel(logging.DEBUG)
    ctx.log.info("counted %d sheep", 3)
    ctx.log.debug("detail")
    try:
        raise ValueError("bad\nsheep")
    except ValueError:
        ctx.log.exception("lost count")
    assert all(LINE.match(line) for line in runtime.lines)
    assert runtime.lines[0].endswith("INFO counted 3 sheep")
    assert runtime.lines[1].endswith("DEBUG detail")
    head, *trace = runtime.lines[2].splitlines()
    assert head.endswith("ERROR lost count") and trace[0] == "Traceback (most recent call last):"
    assert trace[-2:] == ["ValueError: bad", "sheep"]
    assert logging.getLogger("shards.run").getChild("count") is not ctx.log  # not kept by logging


def test_worker_entries_and_the_marker() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError as error:
        failed = entry(logging.ERROR, "the run failed: boom", error)
    assert LINE.match(failed) and failed.splitlines()[-1] == "RuntimeError: boom"
    assert entry(logging.ERROR, "exit", SystemExit(3)).count("\n") == 0
    assert dropped_marker(1) == "… 1 earlier line dropped"
    log = RunLog("r", "s", "p", "Done", False, ["x"], dropped=1500)
    assert log.text_lines() == ["… 1500 earlier lines dropped", "x"]
    assert RunLog("r", "s", "p", "Done", False, ["x"]).text_lines() == ["x"]
