"""The fork server of isolated runs: a single-threaded process, started as a fresh interpreter
(never forked from the threaded worker: unsafe with pymongo's threads and locks), that imports
the app once; every run's OS process is a plain fork of it (shards_worker.standbys asks for them,
shards_worker.run_process is what they execute).

Not multiprocessing's forkserver: each of its processes ran the worker's own command again
(`shards worker`, a console script, imported the whole CLI: about 30 ms of CPU per run), and a
fork through it cost 6 ms of CPU, against 2.6 ms here (docs/benchmarks.md, issue 25).

The worker and its fork server talk over one Unix socket pair (SOCK_SEQPACKET: one message per
send, file descriptors with it). The worker sends its configuration (pickled), then b"F" per
process wanted; the server sends fixed-size messages:

    R  ready: the app is imported (or failed to: each run's process then says why, in one line)
    F  forked: pid; with it the worker's end of the process's pipe, and a pidfd for the process
    E  could not fork: errno
    X  exited: pid and exit code (negative: the signal), reaped here

A pidfd lets the worker kill a process it did not fork without ever hitting a reused pid. The
server exits when the worker's end closes (the worker stopped, or died); its processes then see
their own pipes close and exit too.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any, NamedTuple, NoReturn

from shards.errors import ShardsError

from shards_worker import logs, run_process
from shards_worker.failures import error_line

log = logging.getLogger("shards.worker")

START_WAIT = 120.0  # seconds the server gets to import the app and say so
FORK_WAIT = 30.0  # seconds a fork is waited for (then the server is taken for wedged, and replaced)
CLOSE_WAIT = 5.0  # seconds the server gets to exit once its channel closes (then it is killed)
IDLE_CHECK = 5.0  # seconds between the server's looks for exited processes when no signal woke it
EXIT_STATUS_LOST = 1000  # an exit code no process has: it exited after its fork server was gone

_MESSAGE = struct.Struct("!cii")  # kind, pid, value
READY, FORKED, FAILED, EXITED, FORK = b"R", b"F", b"E", b"X", b"F"
_CONFIG_MAX = 1 << 20
# Not `-m shards_worker.fork_server`: the package imports this module before runpy would run it
# again as __main__ (two copies of it, and a RuntimeWarning on stderr).
_ENTRY = "import sys; from shards_worker.fork_server import serve_fd; serve_fd(int(sys.argv[1]))"


class _Reply(NamedTuple):
    """The server's answer to a start or a fork: for a fork, the process and the worker's end of
    its pipe (None: it could not fork, `value` is the errno)."""

    kind: bytes
    value: int
    forked: tuple[ForkedProcess, int] | None


class ForkedProcess:
    """A run's OS process, as the worker sees it: the subset of multiprocessing's Process the
    standbys and the process host use (pid, is_alive, exitcode, join, kill, close)."""

    def __init__(self, pid: int, pidfd: int | None) -> None:
        self.pid = pid
        self._pidfd = pidfd
        self._exitcode: int | None = None
        self._exited = threading.Event()
        self._orphaned = False  # its fork server is gone: no exit will be reported, its pidfd tells

    def exited(self, code: int) -> None:
        """Its fork server reaped it."""
        self._exitcode = code
        self._exited.set()

    def orphan(self) -> None:
        self._orphaned = True

    @property
    def exitcode(self) -> int | None:
        if self._exited.is_set():
            return self._exitcode
        if self._orphaned and self._gone():
            return EXIT_STATUS_LOST
        return None

    def is_alive(self) -> bool:
        return self.exitcode is None

    def join(self, timeout: float) -> None:
        """Until it has exited, at most `timeout` seconds."""
        if self._exited.wait(timeout if not self._orphaned else 0):
            return
        if self._orphaned and self._pidfd is not None:
            with contextlib.suppress(OSError, ValueError):
                select.select([self._pidfd], [], [], timeout)

    def kill(self) -> None:
        """SIGKILL, through the pidfd: never another process that took its pid after it."""
        if self._exited.is_set():
            return
        if self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
                return
            except ProcessLookupError:
                return  # it has exited
            except OSError:
                pass  # refused (a seccomp profile without pidfds): by pid, as below
        # No pidfd (Linux before 5.3): by pid, while its exit is not reported.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        """Release the pidfd; a ValueError while it runs, as multiprocessing's Process."""
        if self.exitcode is None:
            raise ValueError("cannot close a process while it is still running")
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def _gone(self) -> bool:
        if self._pidfd is None:
            return True  # nothing left to tell by: taken as gone once its server is
        try:
            readable, _, _ = select.select([self._pidfd], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)


class ForkServer:
    """The worker's side: starts the server, asks it for processes, hears of their exits."""

    def __init__(self, app_spec: str, pump_interval: float) -> None:
        self.app_spec = app_spec
        self.pump_interval = pump_interval
        self.lost = False  # the server went away: exits are told by the processes' pidfds
        self._lock = threading.Lock()  # one fork (or start) at a time
        self._server: subprocess.Popen[bytes] | None = None
        self._channel: socket.socket | None = None
        self._reply: _Reply | None = None
        self._replied = threading.Condition()
        self._processes: dict[int, ForkedProcess] = {}  # forked, exit not reported yet

    def start(self) -> None:
        """Start the server and wait (bounded) until it has imported the app."""
        with self._lock:
            self._start()

    def fork(self) -> tuple[ForkedProcess, Connection]:
        """A new process waiting for a run (run_process.standby) and the worker's end of its pipe."""
        with self._lock:
            if self._channel is None or self.lost:
                self._start()
            assert self._channel is not None
            try:
                self._channel.send(FORK)
            except OSError as error:
                self._lose(f"its channel failed: {error_line(error)}")
                raise ShardsError(f"the fork server is gone ({error_line(error)})") from error
            reply = self._await(FORK_WAIT, "fork a run's process")
            if reply.forked is None:
                raise ShardsError(f"the fork server could not fork: {os.strerror(reply.value)}")
            process, conn_fd = reply.forked
            return process, Connection(conn_fd)

    def close(self) -> None:
        """The worker stops: the server exits (bounded; killed after CLOSE_WAIT)."""
        with self._lock:
            self._close_channel()
            server, self._server = self._server, None
        if server is not None:
            try:
                server.wait(CLOSE_WAIT)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(CLOSE_WAIT)

    # -- the channel ----------------------------------------------------------------------------
    def _start(self) -> None:
        self._close_channel()
        if self._server is not None:  # a lost or wedged server: make sure it is gone
            self._server.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._server.wait(CLOSE_WAIT)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._server = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        except OSError as error:
            ours.close()
            raise ShardsError(f"process isolation could not start its fork server ({error_line(error)}); "
                              "or use --isolation thread") from error
        finally:
            theirs.close()
        config = {"sys_path": sys.path, "app": self.app_spec, "log": logs.settings(),
                  "pump_interval": self.pump_interval}
        ours.send(pickle.dumps(config))
        with self._replied:
            self._channel, self.lost, self._reply = ours, False, None
        threading.Thread(target=self._read, args=(ours,), name="shards-fork-server", daemon=True).start()
        self._await(START_WAIT, "import the app")

    def _await(self, timeout: float, what: str) -> _Reply:
        with self._replied:
            if not self._replied.wait_for(lambda: self._reply is not None or self.lost, timeout):
                self._lose_locked(f"it did not {what} within {timeout:.0f}s")
                raise ShardsError(f"the fork server did not {what} within {timeout:.0f}s")
            reply, self._reply = self._reply, None
        if reply is None:
            code = None if self._server is None else self._server.poll()
            raise ShardsError(f"the fork server exited (code {code}) before it could {what}")
        return reply

    def _read(self, channel: socket.socket) -> None:
        """The reader's thread: replies to the waiting fork, exits to their processes."""
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(channel, _MESSAGE.size, 2)
            except OSError:
                message, fds = b"", []
            if len(message) != _MESSAGE.size:
                with self._replied:
                    if self._channel is channel:
                        self._lose_locked("its channel closed")
                return
            kind, pid, value = _MESSAGE.unpack(message)
            with self._replied:
                if kind == EXITED:
                    process = self._processes.pop(pid, None)
                    if process is not None:
                        process.exited(value)
                    continue
                forked = None
                if kind == FORKED:  # known before its exit can be read (the server sends that later)
                    conn_fd, *pidfd = fds
                    forked = (ForkedProcess(pid, pidfd[0] if pidfd else None), conn_fd)
                    self._processes[pid] = forked[0]
                self._reply = _Reply(kind, value, forked)
                self._replied.notify_all()

    def _lose(self, why: str) -> None:
        with self._replied:
            self._lose_locked(why)

    def _lose_locked(self, why: str) -> None:
        if not self.lost:
            log.warning("the fork server of isolated runs is gone (%s); a new one starts with the next "
                        "run", why)
        self.lost = True
        self._replied.notify_all()
        for process in self._processes.values():
            process.orphan()  # their exits can no longer be reported: their pidfds tell
        self._processes.clear()

    def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            with contextlib.suppress(OSError):
                channel.shutdown(socket.SHUT_RDWR)
            channel.close()


# -- the server ---------------------------------------------------------------------------------
def serve(channel: socket.socket) -> NoReturn:
    """Import the app, then fork a process per request and report each exit, until the worker's
    end of the channel closes. Single-threaded: a fork copies only the thread that forks."""
    config: dict[str, Any] = pickle.loads(channel.recv(_CONFIG_MAX))
    sys.path[:] = config["sys_path"]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when its runs stop
    with contextlib.suppress(ShardsError):
        logs.configure_logging(*config["log"])
    with contextlib.suppress(Exception):  # a run's process says what failed, in one line
        run_process.app_for(config["app"])
    logs.capture_prints()  # for the runs (each of its processes logs its prints about its run)
    # What is imported stays shared with every fork: the collector of a run's process then
    # never walks (and so copies) those objects.
    gc.freeze()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the select below
    _send(channel, _MESSAGE.pack(READY, os.getpid(), 0))
    while True:
        readable, _, _ = select.select([channel.fileno(), wake_r], [], [], IDLE_CHECK)
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        _report_exits(channel)
        if channel.fileno() in readable:
            request = channel.recv(1)
            if not request:
                os._exit(0)  # the worker is gone: its processes' pipes close, and they exit too
            _fork(channel, (wake_r, wake_w), config["pump_interval"])


def _send(channel: socket.socket, message: bytes, fds: list[int] | None = None) -> None:
    """To the worker; if it is gone, so is the reason to serve."""
    try:
        if fds:
            socket.send_fds(channel, [message], fds)
        else:
            channel.send(message)
    except OSError:
        os._exit(0)


def _fork(channel: socket.socket, wakeup: tuple[int, int], pump_interval: float) -> None:
    ours, theirs = socket.socketpair()
    try:
        pid = os.fork()
    except OSError as error:
        ours.close()
        theirs.close()
        _send(channel, _MESSAGE.pack(FAILED, 0, error.errno or errno.EAGAIN))
        return
    if pid == 0:  # the run's process: nothing of the server's loop stays with it
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in wakeup:
                os.close(fd)
            channel.close()
            ours.close()
            run_process.standby(Connection(theirs.detach()), pump_interval)
        finally:
            os._exit(1)
    theirs.close()
    fds = [ours.fileno()]
    pidfd = _pidfd(pid)  # opened before this process can reap it: it is the child's
    if pidfd is not None:
        fds.append(pidfd)
    try:
        _send(channel, _MESSAGE.pack(FORKED, pid, 0), fds)
    finally:
        ours.close()
        if pidfd is not None:
            os.close(pidfd)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux 5.3+: the worker kills by pid
        return None


def _report_exits(channel: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(channel, _MESSAGE.pack(EXITED, pid, os.waitstatus_to_exitcode(status)))


def serve_fd(fd: int) -> NoReturn:
    """The fork server's entry point (_ENTRY): its end of the channel is inherited as `fd`."""
    serve(socket.socket(fileno=fd))
