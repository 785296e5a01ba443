"""tooling.harness' bounds: a process that ignores SIGTERM is SIGKILLed after its grace, a paused
one is resumed so it can act on its signal, and a wait that never comes true fails in time."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest
from tooling.harness import Child, spawn, wait_until

SLEEPER = "import time; print('up', flush=True); time.sleep(60)"
STUBBORN = f"import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); {SLEEPER}"


def _started(command: str, log: Path, grace: float) -> Child:
    child = spawn([sys.executable, "-c", command], log, grace=grace)
    wait_until(lambda: "up" in child.output(), 30, "the child to start")
    return child


def test_a_process_that_ignores_sigterm_is_killed_after_its_grace(tmp_path: Path) -> None:
    child = _started(STUBBORN, tmp_path / "stubborn.log", grace=0.5)
    began = time.monotonic()
    assert child.terminate() == -signal.SIGKILL
    assert time.monotonic() - began < 10
    assert not child.running


def test_a_paused_process_is_resumed_to_act_on_sigterm(tmp_path: Path) -> None:
    child = _started(SLEEPER, tmp_path / "paused.log", grace=30)
    child.pause()
    wait_until(lambda: Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T", 10,
               "the child to be stopped")
    began = time.monotonic()
    assert child.terminate() == -signal.SIGTERM
    assert time.monotonic() - began < 10


def test_wait_until_fails_after_its_timeout_naming_what_it_waited_for() -> None:
    began = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0s waiting for nothing \(was 3\)"):
        wait_until(lambda: False, 0.2, lambda: "nothing (was 3)")
    assert time.monotonic() - began < 5
