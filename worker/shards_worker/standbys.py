"""Standbys: the OS processes of isolated runs, forked ahead of demand (one per free slot), so a
run's start pays no fork and its end no wait for its process's exit.

A standby is forked from the fork server (shards_worker.fork_server) and waits on its pipe for
the one run it will execute (shards_worker.run_process.standby); it never serves a second run, so
every run starts from the fork server's fresh state. As many wait as the worker has free slots:
a claimed run takes one (its slot was taken a moment before), and a replacement is forked by the
keeper's thread once a slot frees again, after the run's end is recorded, off every run's path.
The same thread lays ended runs' processes to rest (each exits on its own after its end; one that
does not is killed after a bound). A standby whose worker goes away sees its pipe close and exits;
close() ends them all at the worker's stop.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

from shards_worker import metrics
from shards_worker.failures import error_line
from shards_worker.fork_server import ForkedProcess

log = logging.getLogger("shards.worker")

CHECK = 5.0  # seconds between looks at waiting standbys (one may have died: it is replaced)
REAP_POLL = 0.02  # seconds between looks at ended runs' processes while some are exiting
EXIT_WITHIN = 5.0  # seconds an ended run's process gets to exit on its own (then it is killed)
CLOSE_WAIT = 5.0  # seconds close() waits for each standby to exit (then it is killed)
RETRY_PAUSE = 1.0  # after a failed fork, before trying again


@dataclass
class Standby:
    """An OS process waiting for its run, and the worker's end of its pipe."""

    process: ForkedProcess
    conn: Connection

    def kill(self) -> None:
        """Kill the process (a forced stop, a deadline, the fence); a no-op once it has exited."""
        self.process.kill()


Fork = Callable[[], Standby]  # starts one standby (the process host's context and target)


class Standbys:
    def __init__(self, fork: Fork, free_slots: Callable[[], int]) -> None:
        self._fork = fork
        self._free_slots = free_slots  # the worker's: no more standbys wait than this
        self._lock = threading.Lock()
        self._waiting: deque[Standby] = deque()
        self._exiting: list[tuple[ForkedProcess, float]] = []  # ended runs' processes, by deadline
        self._wanted = threading.Event()  # rung: a slot freed, or a process is exiting
        self._closed = threading.Event()
        self._keeper: threading.Thread | None = None

    def start(self) -> None:
        """Fork the first standbys now and keep them (the keeper's thread)."""
        self._keeper = threading.Thread(target=self._keep, name="shards-standbys", daemon=True)
        self._keeper.start()

    def take(self) -> Standby | None:
        """A live standby for a run that starts now (its slot is taken), or None: none is ready
        (the caller forks one on demand)."""
        with self._lock:
            while self._waiting:
                standby = self._waiting.popleft()
                if standby.process.is_alive():
                    self._gauge()
                    return standby
                self._drop(standby)
            self._gauge()
        self._wanted.set()
        return None

    def slot_freed(self) -> None:
        """A slot is free again (its run's end is recorded): fork its standby now."""
        self._wanted.set()

    def lay_to_rest(self, process: ForkedProcess) -> None:
        """A process that will run nothing more (its run ended, or it was killed): reaped here,
        killed if it has not exited within EXIT_WITHIN."""
        with self._lock:
            self._exiting.append((process, time.monotonic() + EXIT_WITHIN))
        self._wanted.set()

    def waiting(self) -> list[int]:
        """The pids of the standbys waiting now (tests, and the debugger)."""
        with self._lock:
            return [s.process.pid for s in self._waiting if s.process.pid is not None]

    def close(self) -> None:
        """End every standby (its pipe closes: it exits) and the keeper; bounded."""
        self._closed.set()
        self._wanted.set()
        if self._keeper is not None:
            self._keeper.join(CLOSE_WAIT)
        with self._lock:
            waiting, self._waiting = list(self._waiting), deque()
            exiting, self._exiting = [p for p, _ in self._exiting], []
            self._gauge()
        for standby in waiting:
            standby.conn.close()
        for process in [s.process for s in waiting] + exiting:
            _lay_to_rest(process, CLOSE_WAIT)

    # -- the keeper ---------------------------------------------------------------------------
    def _keep(self) -> None:
        while not self._closed.is_set():
            self._reap()
            if not self._fill():
                self._closed.wait(RETRY_PAUSE)
            with self._lock:
                pause = REAP_POLL if self._exiting else CHECK
            self._wanted.wait(pause)
            self._wanted.clear()
            self._drop_dead()

    def _fill(self) -> bool:
        """Fork standbys until the free slots have one each; False if a fork failed."""
        while not self._closed.is_set():
            with self._lock:
                if len(self._waiting) >= self._free_slots():
                    return True
            try:
                standby = self._fork()
            except Exception as error:  # runs then fork on demand, as without standbys
                log.warning("could not fork a standby process for runs: %s", error_line(error))
                return False
            with self._lock:
                if not self._closed.is_set() and len(self._waiting) < self._free_slots():
                    self._waiting.append(standby)
                    self._gauge()
                    continue
            standby.conn.close()  # not wanted after all (closed, or slots taken meanwhile)
            self.lay_to_rest(standby.process)
        return True

    def _reap(self) -> None:
        now = time.monotonic()
        with self._lock:
            exiting, self._exiting = self._exiting, []
        left = []
        for process, deadline in exiting:
            if process.exitcode is not None:
                process.close()
            elif now >= deadline:
                log.warning("a run's OS process %s did not exit after its end; killing it", process.pid)
                _lay_to_rest(process, CLOSE_WAIT)
            else:
                left.append((process, deadline))
        with self._lock:
            self._exiting.extend(left)

    def _drop_dead(self) -> None:
        with self._lock:
            alive = deque(s for s in self._waiting if s.process.is_alive())
            dead = [s for s in self._waiting if s not in alive]
            self._waiting = alive
            for standby in dead:
                self._drop(standby)
            self._gauge()

    def _drop(self, standby: Standby) -> None:
        """A standby that died while waiting (the OOM killer, say): forgotten, replaced."""
        log.warning("standby process %s exited while waiting (code %s); replacing it",
                    standby.process.pid, standby.process.exitcode)
        standby.conn.close()
        self._exiting.append((standby.process, time.monotonic()))

    def _gauge(self) -> None:
        metrics.STANDBYS.set(len(self._waiting))


def _lay_to_rest(process: ForkedProcess, wait: float) -> None:
    """Bounded: wait for the exit, else kill; then release the process's handles."""
    process.join(wait)
    if process.exitcode is None:
        process.kill()
        process.join(wait)
    with contextlib.suppress(ValueError):  # still running after a kill: leave its handles
        process.close()
