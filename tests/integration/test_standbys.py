"""Standby processes: under process isolation a run's OS process is forked before its run is
claimed, one per free slot. A run executes in one of them, the one it used is replaced once its
slot frees, and none outlives the worker. (That a run on a standby keeps every guarantee of
isolation is what test_isolation.py, test_frozen_worker.py and test_run_logs.py check: every
isolated run starts on one.)"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from shards.states import State

from integration.harness import ShardsHarness, WorkerProcess, wait_until

FAULTY = "tests/integration/apps/faulty.py:app"


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.add(int(stat.parent.name))
    return found


def _fork_server(worker: WorkerProcess) -> int:
    def found() -> int | None:
        for pid in _children(worker.pid):
            try:
                if b"shards_worker.fork_server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except FileNotFoundError:
                continue
        return None
    server = wait_until(found, what="the worker's fork server")
    assert isinstance(server, int)
    return server


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def _waiting(server: int, running: set[int], count: int) -> set[int]:
    """The fork server's children that run nothing, once there are exactly `count` of them."""
    found: set[int] = set()

    def settled() -> bool:
        nonlocal found
        found = _children(server) - running
        return len(found) == count

    wait_until(settled, what=lambda: f"{count} standby processes (have {sorted(found)})")
    return found


def _start(shards_env: ShardsHarness, concurrency: int) -> WorkerProcess:
    worker = shards_env.start_worker(FAULTY, concurrency=concurrency)
    wait_until(lambda: shards_env.store.workers.alive(), what="a live worker")
    shards_env.define("a")
    shards_env.define("b")
    return worker


def _pid_of(shards_env: ShardsHarness, scope: str, process_id: str) -> int:
    record = wait_until(lambda: (r := shards_env.record(scope, process_id)).progress.message.startswith("pid")
                        and r, what=f"{scope}/{process_id} to report its pid")
    return int(record.progress.message.split()[1])


def test_a_run_executes_in_a_standby_and_each_free_slot_keeps_one(shards_env: ShardsHarness) -> None:
    worker = _start(shards_env, concurrency=2)
    server = _fork_server(worker)
    standbys = _waiting(server, set(), 2)
    shards_env.ok("launch", "stubborn", "--scope", "a")
    first = _pid_of(shards_env, "a", "stubborn")
    assert first in standbys  # forked before the run was claimed
    # One slot left free: one standby waits, not two.
    assert _waiting(server, {first}, 1) <= standbys
    shards_env.ok("launch", "stubborn", "--scope", "b")
    second = _pid_of(shards_env, "b", "stubborn")
    assert second in standbys and second != first
    _waiting(server, {first, second}, 0)  # no free slot, no standby
    shards_env.ok("stop", "stubborn", "--scope", "a", "--force")
    assert shards_env.wait_state("a", "stubborn", State.STOPPED, State.FAILED).state is State.STOPPED
    wait_until(lambda: _gone(first), what=f"the killed run's process {first} to exit")
    # The freed slot gets a new standby; the process that ran is not reused.
    replacement = _waiting(server, {second}, 1)
    assert first not in replacement and second not in replacement
    shards_env.ok("launch", "stubborn", "--scope", "a", "--args", '{"seconds": 0}')
    assert shards_env.wait_state("a", "stubborn", State.DONE, State.FAILED).state is State.DONE
    assert worker.popen.poll() is None


def test_standbys_stop_with_the_worker(shards_env: ShardsHarness) -> None:
    worker = _start(shards_env, concurrency=3)
    server = _fork_server(worker)
    standbys = _waiting(server, set(), 3)
    assert worker.terminate() == 0
    for pid in {server, *standbys}:
        wait_until(lambda pid=pid: _gone(pid), what=f"process {pid} to exit with its worker")


def test_standbys_never_outlive_a_killed_worker(shards_env: ShardsHarness) -> None:
    worker = _start(shards_env, concurrency=2)
    server = _fork_server(worker)
    standbys = _waiting(server, set(), 2)
    shards_env.ok("launch", "stubborn", "--scope", "a")
    running = _pid_of(shards_env, "a", "stubborn")
    worker.kill()  # SIGKILL: no shutdown; every pipe to the worker closes
    for pid in {server, running, *standbys}:
        wait_until(lambda pid=pid: _gone(pid), what=f"process {pid} to exit with its worker")


def test_the_workers_own_command_runs_once_not_once_per_run(shards_env: ShardsHarness,
                                                            tmp_path: Path) -> None:
    """A worker started as a script (`shards worker`, a console script, in the images): its runs'
    processes are forks of the fork server, none runs the worker's script again (under
    multiprocessing's forkserver each did, importing the whole CLI per run)."""
    marker = tmp_path / "ran"
    script = tmp_path / "shards-worker"
    script.write_text(
        "import sys\n"
        "from pathlib import Path\n"
        f"with Path({str(marker)!r}).open('a') as marker:\n"
        "    marker.write('ran\\n')\n"
        "from shards_cli.main import main\n"
        "if __name__ == '__main__':\n"
        "    sys.exit(main())\n")
    command = [sys.executable, str(script), "worker", FAULTY, "--lease", "3", "--heartbeat", "0.5"]
    shards_env.processes.spawn(command, "script-worker.log", worker=True)
    wait_until(lambda: shards_env.store.workers.alive(), what="a live worker")
    shards_env.define("a")
    for _ in range(3):
        shards_env.ok("launch", "stubborn", "--scope", "a", "--args", '{"seconds": 0}')
        assert shards_env.wait_state("a", "stubborn", State.DONE, State.FAILED).state is State.DONE
    assert marker.read_text().splitlines() == ["ran"]


def test_runs_go_on_after_the_fork_server_is_killed(shards_env: ShardsHarness) -> None:
    worker = _start(shards_env, concurrency=1)
    server = _fork_server(worker)
    _waiting(server, set(), 1)
    os.kill(server, signal.SIGKILL)
    for _ in range(3):  # the first on the standby forked before, the next on a new fork server's
        shards_env.ok("launch", "stubborn", "--scope", "a", "--args", '{"seconds": 0}')
        assert shards_env.wait_state("a", "stubborn", State.DONE, State.FAILED).state is State.DONE
    assert _fork_server(worker) != server
    assert worker.popen.poll() is None
