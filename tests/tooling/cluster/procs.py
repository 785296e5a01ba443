"""Start long-running processes detached, and stop exactly those again by pid.

A process is identified by its pid *and* its start time (``/proc/<pid>/stat`` field 22),
so a recycled pid is never signalled by mistake.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ._common import ClusterError, log

STOP_TIMEOUT_S = 20.0
KILL_TIMEOUT_S = 10.0

# Popen handles of processes started by this Python process, so they can be reaped.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    start_ticks: int
    log_file: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(str(data["pid"])),
            start_ticks=int(str(data["start_ticks"])),
            log_file=str(data["log_file"]),
        )


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of ``pid``, or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)


def is_alive(record: ProcessRecord) -> bool:
    _reap(record.pid)
    stat = _stat(record.pid)
    return stat is not None and stat[1] == record.start_ticks and stat[0] not in ("Z", "X")


def start(name: str, argv: list[str], log_file: Path, env: dict[str, str] | None = None) -> ProcessRecord:
    """Start ``argv`` in its own session, output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log.info("starting %s (log: %s)", name, log_file)
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI that started it; no terminal signals
            env=env,
            close_fds=True,
        )
    _children[proc.pid] = proc
    stat = _stat(proc.pid)
    if stat is None:
        raise ClusterError(f"{name} exited immediately; see {log_file}")
    return ProcessRecord(name=name, pid=proc.pid, start_ticks=stat[1], log_file=str(log_file))


def _wait_gone(record: ProcessRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child = _children.get(record.pid)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=0.2)
        if not is_alive(record):
            return True
        time.sleep(0.1)
    return not is_alive(record)


def stop(record: ProcessRecord) -> None:
    """SIGTERM the recorded process, SIGKILL it if it lingers; never any other pid."""
    if not is_alive(record):
        log.info("%s (pid %d) is not running", record.name, record.pid)
        return
    log.info("stopping %s (pid %d)", record.name, record.pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGTERM)
    if _wait_gone(record, STOP_TIMEOUT_S):
        return
    log.warning("%s (pid %d) ignored SIGTERM for %.0fs; killing", record.name, record.pid, STOP_TIMEOUT_S)
    if is_alive(record):
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGKILL)
    if not _wait_gone(record, KILL_TIMEOUT_S):
        raise ClusterError(f"{record.name} (pid {record.pid}) survived SIGKILL")


def argv_of(record: ProcessRecord) -> list[str]:
    """The command line the recorded process runs (to start it again as itself)."""
    if not is_alive(record):
        raise ClusterError(f"{record.name} (pid {record.pid}) is not running")
    raw = Path(f"/proc/{record.pid}/cmdline").read_bytes()
    return [arg.decode() for arg in raw.split(b"\0") if arg]


def kill(record: ProcessRecord) -> None:
    """SIGKILL the recorded process (a crash) and wait until it is gone; never any other pid."""
    if is_alive(record):
        log.info("killing %s (pid %d)", record.name, record.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGKILL)
    if not _wait_gone(record, KILL_TIMEOUT_S):
        raise ClusterError(f"{record.name} (pid {record.pid}) survived SIGKILL")


def exit_reason(record: ProcessRecord) -> str | None:
    """None while the process runs, else a one-line reason pointing at its log."""
    if is_alive(record):
        return None
    tail = ""
    with contextlib.suppress(OSError):
        lines = Path(record.log_file).read_text(errors="replace").strip().splitlines()
        tail = f"; last log line: {lines[-1][:300]}" if lines else ""
    return f"{record.name} (pid {record.pid}) exited; see {record.log_file}{tail}"
