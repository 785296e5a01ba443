"""Standbys: how many wait (one per free slot), which are handed out, replaced and laid to rest;
with stand-in processes (the real ones: tests/integration/test_standbys.py)."""

from __future__ import annotations

import itertools
from typing import Any, cast

from shards_worker.standbys import Standby, Standbys
from tooling.harness import wait_until

_pids = itertools.count(1000)


class FakeProcess:
    def __init__(self) -> None:
        self.pid = next(_pids)
        self.exitcode: int | None = None
        self.closed = False
        self.killed = False

    def is_alive(self) -> bool:
        return self.exitcode is None

    def kill(self) -> None:
        if self.closed:
            raise ValueError("process object is closed")
        self.killed = True
        self.exitcode = -9

    def join(self, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        if self.exitcode is None:
            raise ValueError("cannot close a process while it is still running")
        self.closed = True


class FakeConn:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Forks:
    def __init__(self) -> None:
        self.made: list[Standby] = []

    def __call__(self) -> Standby:
        standby = Standby(cast(Any, FakeProcess()), cast(Any, FakeConn()))
        self.made.append(standby)
        return standby


def _started(limit: int) -> tuple[Standbys, Forks]:
    forks = Forks()
    standbys = Standbys(forks, limit)
    standbys.start()
    wait_until(lambda: len(standbys.waiting()) == limit, 10, f"{limit} standbys")
    return standbys, forks


def test_one_standby_waits_per_free_slot_and_a_taken_one_is_replaced_when_its_run_ends() -> None:
    standbys, forks = _started(2)
    try:
        first = standbys.take()
        assert first is forks.made[0]
        assert standbys.waiting() == [forks.made[1].process.pid]  # one slot free, one standby
        second = standbys.take()
        assert second is forks.made[1] and standbys.waiting() == []
        assert standbys.take() is None  # none ready: the caller forks one itself
        standbys.ended(None)
        assert len(forks.made) == 2  # all slots busy: nothing forked meanwhile
        standbys.ended(first.process)  # the process that ran exits on its own
        wait_until(lambda: len(standbys.waiting()) == 1, 10, "a replacement")
        assert standbys.waiting() == [forks.made[2].process.pid]
        cast(FakeProcess, first.process).exitcode = 0
        wait_until(lambda: cast(FakeProcess, first.process).closed, 10, "the ended run's process reaped")
    finally:
        standbys.close()


def test_a_standby_that_died_while_waiting_is_not_handed_out() -> None:
    standbys, forks = _started(1)
    try:
        cast(FakeProcess, forks.made[0].process).exitcode = -9  # the OOM killer, say
        taken = standbys.take()
        assert taken is None
        assert forks.made[0].conn.closed
        standbys.ended(None)
        wait_until(lambda: len(forks.made) == 2 and standbys.waiting() == [forks.made[1].process.pid], 10,
                   "its replacement")
    finally:
        standbys.close()


def test_an_ended_run_process_that_does_not_exit_is_killed() -> None:
    standbys, _ = _started(1)
    stuck = FakeProcess()
    try:
        standbys.ended(cast(Any, stuck))
    finally:
        standbys.close()  # close lays to rest what is still exiting, killing it
    assert stuck.killed and stuck.closed


def test_close_ends_every_waiting_standby() -> None:
    standbys, forks = _started(3)
    for standby in forks.made:
        cast(FakeProcess, standby.process).exitcode = None
    standbys.close()
    assert all(standby.conn.closed for standby in forks.made)
    assert all(cast(FakeProcess, standby.process).killed for standby in forks.made)  # fakes never exit
    assert standbys.waiting() == []
