"""The embedded MongoDB wire-protocol server (NX-27017) used for local runs, the demo and tests."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from shards.errors import ShardsError

DEFAULT_PORT = 27017
DEFAULT_DATA_DIR = Path(".shards/mongo")


def embedded_command(port: int, data_dir: Path, host: str = "127.0.0.1") -> list[str]:
    """The command line that runs NX-27017 in the foreground on loopback (or on `host`: the
    local node's private address, for Pods).

    Each instance gets its own pid and log file inside its data directory: NX-27017
    refuses to start a second instance that shares the default pid file.
    """
    if importlib.util.find_spec("nx_27017") is None:
        raise ShardsError("the embedded server (nx-27017) is not installed: "
                          "pip install 'shards-process-manager[embedded]'")
    data_dir = data_dir.resolve()
    return [
        sys.executable,
        "-m",
        "shards_store.nx_server",
        "--host",
        host,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--pid-file",
        str(data_dir / "nx-27017.pid"),
        "--log-file",
        str(data_dir / "nx-27017.log"),
    ]


def prepare_data_dir(data_dir: Path) -> None:
    """Create the data directory and drop a pid file left behind by a killed server."""
    data_dir.mkdir(parents=True, exist_ok=True)
    pid_file = data_dir / "nx-27017.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), 0)
        except (OSError, ValueError):
            pid_file.unlink(missing_ok=True)


def start_embedded(port: int, data_dir: Path, host: str = "127.0.0.1") -> subprocess.Popen[bytes]:
    """Start NX-27017 as a child process and return once it accepts connections."""
    prepare_data_dir(data_dir)
    proc = subprocess.Popen(
        embedded_command(port, data_dir, host),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc, host=host)
    return proc


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0, host: str = "127.0.0.1"
) -> None:
    """Bounded wait until something listens on host:port, failing fast if proc died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ShardsError(f"the embedded server exited with code {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise ShardsError(f"the embedded server did not listen on {host}:{port} in {timeout:.0f}s")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
