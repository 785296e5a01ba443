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

    def kill(self) -> None:  # as ForkedProcess: nothing once it has exited
        if self.exitcode is None:
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


class FreeSlots:
    def __init__(self, count: int) -> None:
        self.count = count

    def __call__(self) -> int:
        return self.count


def _started(free: FreeSlots) -> tuple[Standbys, Forks]:
    forks = Forks()
    standbys = Standbys(forks, free)
    standbys.start()
    wait_until(lambda: len(standbys.waiting()) == free.count, 10, f"{free.count} standbys")
    return standbys, forks


def test_one_standby_waits_per_free_slot_and_is_replaced_once_its_slot_frees() -> None:
    free = FreeSlots(2)
    standbys, forks = _started(free)
    try:
        free.count -= 1  # a launch is claimed...
        first = standbys.take()  # ...and its run takes the oldest standby
        assert first is forks.made[0]
        assert standbys.waiting() == [forks.made[1].process.pid]  # one slot free, one standby
        free.count -= 1
        second = standbys.take()
        assert second is forks.made[1] and standbys.waiting() == []
        assert standbys.take() is None  # none ready: the caller forks one itself
        standbys.lay_to_rest(first.process)  # its run ended: the process exits on its own
        standbys.slot_freed()
        assert len(forks.made) == 2  # no slot free yet: nothing forked
        free.count += 1
        standbys.slot_freed()
        wait_until(lambda: len(standbys.waiting()) == 1, 10, "a replacement")
        assert standbys.waiting() == [forks.made[2].process.pid]
        cast(FakeProcess, first.process).exitcode = 0
        wait_until(lambda: cast(FakeProcess, first.process).closed, 10, "the ended run's process reaped")
    finally:
        standbys.close()


def test_a_standby_that_died_while_waiting_is_not_handed_out_and_is_replaced() -> None:
    free = FreeSlots(1)
    standbys, forks = _started(free)
    try:
        cast(FakeProcess, forks.made[0].process).exitcode = -9  # the OOM killer, say
        assert standbys.take() is None
        assert forks.made[0].conn.closed
        wait_until(lambda: len(forks.made) == 2 and standbys.waiting() == [forks.made[1].process.pid], 10,
                   "its replacement")
    finally:
        standbys.close()


def test_an_ended_run_process_that_does_not_exit_is_killed() -> None:
    standbys, _ = _started(FreeSlots(1))
    stuck = FakeProcess()
    try:
        standbys.lay_to_rest(cast(Any, stuck))
    finally:
        standbys.close()  # close lays to rest what is still exiting, killing it
    assert stuck.killed and stuck.closed


def test_close_ends_every_waiting_standby() -> None:
    standbys, forks = _started(FreeSlots(3))
    standbys.close()
    assert all(standby.conn.closed for standby in forks.made)
    assert all(cast(FakeProcess, standby.process).killed for standby in forks.made)  # fakes never exit
    assert standbys.waiting() == []
