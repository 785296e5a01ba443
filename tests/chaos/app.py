"""The chaos app: processes of every shape, each recording its executions outside MongoDB.

Every execution appends `start <run_id> <scope> <process_id> <pid> <time>` on entry and
`end <run_id> <pid> <time>` on exit (pid: its worker's) to the file named by SHARDS_CHAOS_LOG.
Each line is one write of well under 4 KiB to a file opened for append, so lines from concurrent
workers never interleave. The log is the ground truth the suite compares the store's story against.
A run whose OS process crashes or is killed writes no `end`: its worker has reaped the process
before it records the run's end, so the analysis takes that end as the execution's.
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path

import shards

app = shards.App()

LOG_ENV = "SHARDS_CHAOS_LOG"
Body = Callable[[shards.ProcessContext], None]


def _append(line: str) -> None:
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a") as log:
            log.write(line + "\n")


def _worker_pid() -> int:
    """The worker this execution belongs to: its own process for a run in a thread; for a run in
    an OS process of its own, the parent of the fork server that forked it (which exits with its
    worker)."""
    parent = os.getppid()
    try:
        if b"shards_worker.fork_server" in Path(f"/proc/{parent}/cmdline").read_bytes():
            return int(Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        pass  # gone already: this process exits too
    return os.getpid()


@contextmanager
def _recorded(ctx: shards.ProcessContext) -> Iterator[None]:
    pid = _worker_pid()
    _append(f"start {ctx.run_id} {ctx.scope_id} {ctx.process_id} {pid} {time.time():.6f}")
    try:
        yield
    finally:
        _append(f"end {ctx.run_id} {pid} {time.time():.6f}")


def recorded(body: Body) -> Body:
    @wraps(body)
    def wrapper(ctx: shards.ProcessContext) -> None:
        with _recorded(ctx):
            body(ctx)

    return wrapper


@app.process("quick", name="Quick")
@recorded
def quick(ctx: shards.ProcessContext) -> None:
    time.sleep(0.05)


@app.process("slow", name="Slow")
@recorded
def slow(ctx: shards.ProcessContext) -> None:
    """Cooperative: checks for a stop every 50 ms for `seconds` (2-4 s), reporting progress."""
    seconds = float(ctx.args.get("seconds", 3.0))
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        if not ctx.should_continue():
            return
        ctx.report_progress(f"{elapsed:.1f}s of {seconds:.1f}s", elapsed / seconds)
        time.sleep(0.05)


@app.process("failing", name="Failing")
@recorded
def failing(ctx: shards.ProcessContext) -> None:
    time.sleep(0.05)
    raise RuntimeError("chaos failure on purpose")


@app.process("exiting", name="Exiting")
@recorded
def exiting(ctx: shards.ProcessContext) -> None:
    """Calls sys.exit mid-run: SystemExit is not an Exception, so a worker must catch it explicitly."""
    ctx.report_progress("about to exit", 0.5)
    time.sleep(0.1)
    sys.exit(3)


FLAKY_BACKOFF = 0.2  # seconds: a flaky launch's first retry waits between half of this and all of it
FLAKY_ERROR = "flaky on its first attempt"


@app.process("flaky", name="Flaky", retries=2, retry_backoff=FLAKY_BACKOFF)
@recorded
def flaky(ctx: shards.ProcessContext) -> None:
    """Fails its first attempt, then succeeds: a retry with backoff, under faults."""
    time.sleep(0.05)
    if ctx.attempt == 1:
        raise RuntimeError(FLAKY_ERROR)


@app.process("stubborn", name="Stubborn")
@recorded
def stubborn(ctx: shards.ProcessContext) -> None:
    """Never checks should_continue(): a stop can only take effect when it returns."""
    time.sleep(3.0)


@app.process("parent", name="Parent")
@recorded
def parent(ctx: shards.ProcessContext) -> None:
    ctx.report_progress("running child", 0.3)
    ctx.run_process("quick")
    ctx.report_progress("child done", 0.9)


@app.process("scheduled", name="Scheduled")
@recorded
def scheduled(ctx: shards.ProcessContext) -> None:
    """What the chaos schedules launch: cooperative, 0.5-4 s (drawn from its run id), so that
    times overlap runs still active, and a stop (CancelOther) or a kill (TerminateOther) finds one."""
    seconds = 0.5 + 3.5 * (zlib.crc32(ctx.run_id.encode()) % 1000) / 999
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not ctx.should_continue():
            return
        time.sleep(0.05)


# -- crashes and runaways: these need process isolation (in a thread they would take the worker down)
RUNAWAY_OWN_TIMEOUT = 8.0  # a backstop: the suite launches each runaway with a shorter timeout=
RUNAWAY_SECONDS = 600.0  # far beyond any chaos run: if no kill came, the run shows up as stuck


def _crash_soon(ctx: shards.ProcessContext) -> None:
    """Crash a moment after starting, so that the runs beside it are caught mid-flight."""
    ctx.report_progress("about to crash", 0.5)
    time.sleep(0.1)


@app.process("crash-exit", name="Crash: os._exit")
@recorded
def crash_exit(ctx: shards.ProcessContext) -> None:
    """os._exit skips every handler, this log's `end` line included."""
    _crash_soon(ctx)
    os._exit(3)


@app.process("crash-segv", name="Crash: segfault")
@recorded
def crash_segv(ctx: shards.ProcessContext) -> None:
    _crash_soon(ctx)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core files in the repository
    ctypes.string_at(0)


@app.process("crash-oom", name="Crash: out of memory")
@recorded
def crash_oom(ctx: shards.ProcessContext) -> None:
    """Asks for more memory than any machine has: MemoryError at once, nothing really allocated."""
    _crash_soon(ctx)
    hoard = bytearray(1 << 60)
    ctx.report_progress(f"got {len(hoard)} bytes", 0.9)


@app.process("runaway", name="Runaway", timeout=RUNAWAY_OWN_TIMEOUT)
@recorded
def runaway(ctx: shards.ProcessContext) -> None:
    """Never calls should_continue(): only a kill ends it, by a forced stop, or after the grace
    that follows a stop or its deadline. Sleeps in steps, so it stays cheap however long it lasts."""
    ctx.report_progress("running away", 0.1)
    deadline = time.monotonic() + RUNAWAY_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.1)
