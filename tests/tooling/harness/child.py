"""A child OS process: started here, signalled and stopped only by the pid it was started with.

Every wait is bounded: `wait_until` has a deadline, and `reap` (the one way anything here stops a
process) gives it `grace` seconds after its signal, then SIGKILL and another bounded wait.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("harness")

REPO = Path(__file__).resolve().parents[3]
WAIT = 60.0  # seconds: the default bound of a wait and of a process' exit after its signal


def wait_until(
    condition: Callable[[], Any],
    timeout: float = WAIT,
    what: str | Callable[[], str] = "condition",
    pause: float = 0.05,
) -> Any:
    """`condition()`'s first truthy value, polled every `pause` seconds; AssertionError after
    `timeout` seconds, naming `what` (a callable is asked only then)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {described}")
        time.sleep(pause)


def reap(*popens: subprocess.Popen[Any], grace: float = WAIT, sig: int = signal.SIGTERM) -> list[int]:
    """Stop processes this harness started: `sig` to each that still runs (all at once), then
    for each a wait of at most `grace` seconds, then SIGKILL and another such wait. Their exit codes."""
    for popen in popens:
        popen.send_signal(sig)  # a no-op once the process is known to have exited
        if sig != signal.SIGKILL and _stat(popen.pid).startswith("T"):
            popen.send_signal(signal.SIGCONT)  # paused: it acts on the signal once resumed
    codes = []
    for popen in popens:
        try:
            codes.append(popen.wait(timeout=grace))
        except subprocess.TimeoutExpired:
            logger.warning("pid %d outlived signal %d by %.0fs; killing it", popen.pid, sig, grace)
            popen.kill()
            codes.append(popen.wait(timeout=grace))
    return codes


def _stat(pid: int) -> str:
    """/proc/<pid>/stat after the command name (state first), or "" once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].strip()
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process so far (all its threads), from /proc/<pid>/stat; 0 once gone."""
    fields = _stat(pid).split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


@dataclass
class Child:
    """One OS process and its log (its stdout and stderr, or its stderr alone; see `spawn`)."""

    popen: subprocess.Popen[bytes]
    log: Path
    grace: float = WAIT  # SIGTERM -> SIGKILL, and the bound of every wait on it

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def send_signal(self, sig: int) -> None:
        """Send `sig` and return at once (nothing if the process has exited)."""
        self.popen.send_signal(sig)

    def pause(self) -> None:
        """SIGSTOP: frozen as a process descheduled for long (a stalled node)."""
        self.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.send_signal(signal.SIGCONT)

    def kill(self) -> int:
        """SIGKILL: the process vanishes without settling anything (a crashed pod)."""
        return reap(self.popen, grace=self.grace, sig=signal.SIGKILL)[0]

    def terminate(self, timeout: float | None = None, sig: int = signal.SIGTERM) -> int:
        """`sig` (SIGTERM), at most `timeout` seconds to exit, then SIGKILL; the exit code. A
        paused process is resumed after the signal, so that it can act on it."""
        return reap(self.popen, grace=self.grace if timeout is None else timeout, sig=sig)[0]


COMMAND_ENV = "SHARDS_HARNESS_COMMAND"  # "script": the console script (the bench's default); else -m


def shards_command(*args: str) -> list[str]:
    """`shards ARGS` with this interpreter, as the tests, the chaos suite and the bench run it:
    `python -m shards_cli`, or with SHARDS_HARNESS_COMMAND=script the `shards` console script
    beside the interpreter, as people and the images run it (how a worker is started decides how
    its isolated runs' processes start: make bench measures it that way)."""
    script = Path(sys.executable).parent / "shards"
    if os.environ.get(COMMAND_ENV) == "script" and script.is_file():
        return [str(script), *args]
    return [sys.executable, "-m", "shards_cli", *args]


def spawn(command: Sequence[str], log: Path, *, env: Mapping[str, str] | None = None,
          stdout: Path | None = None, append: bool = False, grace: float = WAIT) -> Child:
    """Start `command` in the repository, its stdout and stderr in `log` (or its stdout in a file
    of its own, `stdout`, and its stderr in `log`); `append` keeps what the files hold."""
    mode = "ab" if append else "wb"
    with log.open(mode) as sink:
        if stdout is None:
            popen = subprocess.Popen(list(command), cwd=REPO, env=None if env is None else dict(env),
                                     stdout=sink, stderr=subprocess.STDOUT)
        else:
            with stdout.open(mode) as out:
                popen = subprocess.Popen(list(command), cwd=REPO, env=None if env is None else dict(env),
                                         stdout=out, stderr=sink)
    logger.debug("started pid %d: %s", popen.pid, " ".join(command))
    return Child(popen, log, grace)
