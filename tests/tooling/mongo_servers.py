"""MongoDB wire-protocol servers for the tests: NX-27017 and mongo-java-server, or an external URI.

`start_server("nx" | "java", workdir)` starts one server on 127.0.0.1 and returns a handle with
`.uri`, `.kind` and `.stop()`. `external_uri()` is `SHARDS_TEST_MONGO_URI` when set: tests then use
that server (a real MongoDB replica set) and start nothing.

mongo-java-server is a Java library; `ensure_java_launcher()` builds its launcher
(`tests/tooling/mongo_java/Launcher.java`) into a cache outside the git clone,
`${SHARDS_TOOLS_CACHE:-$HOME/.cache/shards/tools}/mongo-java-server-<version>/`, with Maven (Maven
Central only) and javac, and reuses it while the launcher and the pom are unchanged.

Also a command line for people: `python tests/tooling/mongo_servers.py build-java` and
`python tests/tooling/mongo_servers.py serve nx|java` (runs until Ctrl-C).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

if __package__ in (None, ""):  # run as a script: `python tests/tooling/mongo_servers.py ...`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tooling.harness import EmbeddedMongo, reap

URI_ENV = "SHARDS_TEST_MONGO_URI"
SERVER_ENV = "SHARDS_TEST_MONGO_SERVER"
CACHE_ENV = "SHARDS_TOOLS_CACHE"
KINDS = ("nx", "java")

JAVA_SOURCES = Path(__file__).resolve().parent / "mongo_java"
LAUNCHER_CLASS = "Launcher"
BUILD_TIMEOUT_S = 600.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class MongoServerError(RuntimeError):
    """A test server could not be built, started or stopped."""


def external_uri() -> str | None:
    """The URI of an externally managed server (`SHARDS_TEST_MONGO_URI`), if one is set."""
    uri = os.environ.get(URI_ENV, "").strip()
    return uri or None


@dataclass(frozen=True)
class MongoServerInfo:
    """What a test needs to know about the server: where it is and which implementation."""

    uri: str
    kind: str  # "nx", "java" or "external"


def unique_db_name(test_name: str) -> str:
    """`t_<short test name>_<random>`: letters, digits and underscores, well under 64 bytes."""
    short = re.sub(r"[^A-Za-z0-9]+", "_", test_name.removeprefix("test_")).strip("_")[:24]
    return f"t_{short or 'x'}_{secrets.token_hex(4)}"


def with_database(uri: str, db_name: str) -> str:
    """`uri` with its database path set to `db_name`, keeping hosts, credentials and options.

    If the URI has credentials and no `authSource`, the original database (or "admin") is kept
    as `authSource`: per the connection string spec the path database is also the auth database.
    """
    parts = urlsplit(uri)
    query = parts.query
    options = parse_qsl(query, keep_blank_values=True)
    has_auth_source = any(key.lower() == "authsource" for key, _ in options)
    if "@" in parts.netloc and not has_auth_source:
        auth_source = urlencode({"authSource": unquote(parts.path.strip("/")) or "admin"})
        query = f"{query}&{auth_source}" if query else auth_source
    return urlunsplit((parts.scheme, parts.netloc, f"/{db_name}", query, ""))


@dataclass
class MongoServerHandle:
    """One running test server, started by this process."""

    kind: str
    uri: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    port: int
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop exactly this server's process: SIGTERM, a bounded wait, then SIGKILL."""
        if self._stopped:
            return
        self._stopped = True
        proc = self.proc
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        reap(proc, grace=timeout)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> MongoServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(kind: str, workdir: Path) -> MongoServerHandle:
    """Start a server of `kind` ("nx" or "java") on 127.0.0.1, with its files under `workdir`."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if kind == "nx":
        return _start_nx(workdir)
    if kind == "java":
        return _start_java(workdir)
    raise MongoServerError(f"unknown server kind {kind!r}: expected one of {', '.join(KINDS)}")


def _start_nx(workdir: Path) -> MongoServerHandle:
    last_error: Exception | None = None
    for _ in range(3):  # the free port it picks can be taken by another process before it listens
        server = EmbeddedMongo(workdir / "nx-data", grace=STOP_TIMEOUT_S)
        try:
            server.start()
        except Exception as exc:
            last_error = exc
            continue
        assert server.child is not None
        return MongoServerHandle("nx", server.uri, server.child.popen, workdir, server.port)
    raise MongoServerError(f"NX-27017 did not start: {last_error}")


# ---------------------------------------------------------------- mongo-java-server


def java_server_version() -> str:
    """The pinned mongo-java-server version: the property in mongo_java/pom.xml."""
    pom = (JAVA_SOURCES / "pom.xml").read_text()
    match = re.search(r"<mongo-java-server\.version>([^<]+)</mongo-java-server\.version>", pom)
    if match is None:
        raise MongoServerError("mongo_java/pom.xml has no <mongo-java-server.version>")
    return match.group(1).strip()


def tools_cache() -> Path:
    """Where built tools live, outside any git clone."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    return Path(configured) if configured else Path.home() / ".cache" / "shards" / "tools"


def java_launcher_dir() -> Path:
    return tools_cache() / f"mongo-java-server-{java_server_version()}"


def _sources_digest() -> str:
    digest = hashlib.sha256()
    for name in ("pom.xml", f"{LAUNCHER_CLASS}.java"):
        digest.update(name.encode() + b"\0" + (JAVA_SOURCES / name).read_bytes() + b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock file, so concurrent test runs build the launcher once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        result = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
        )
    except FileNotFoundError as exc:
        raise MongoServerError(f"{cmd[0]} is not installed (needed for mongo-java-server)") from exc
    except subprocess.TimeoutExpired as exc:
        raise MongoServerError(f"{' '.join(cmd)} took over {BUILD_TIMEOUT_S:.0f}s") from exc
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-4000:]
        raise MongoServerError(f"{' '.join(cmd)} failed ({result.returncode}):\n{output}")


def ensure_java_launcher() -> Path:
    """Build the mongo-java-server launcher into the tools cache unless it is already there.

    The directory holds `lib/*.jar` (from Maven Central via `dependency:copy-dependencies`),
    `classes/Launcher.class` and a `STAMP` with the digest of the pom and the launcher source.
    A build happens in a temporary sibling directory that replaces the old one when complete.
    """
    target = java_launcher_dir()
    stamp = _sources_digest()
    if _is_built(target, stamp):
        return target
    with _locked(target.parent / f".{target.name}.lock"):
        if _is_built(target, stamp):
            return target
        build = Path(tempfile.mkdtemp(prefix=f".{target.name}.build-", dir=target.parent))
        try:
            shutil.copy2(JAVA_SOURCES / "pom.xml", build / "pom.xml")
            shutil.copy2(JAVA_SOURCES / f"{LAUNCHER_CLASS}.java", build / f"{LAUNCHER_CLASS}.java")
            _run(
                [
                    "mvn",
                    "-q",
                    "-B",
                    "-Dstyle.color=never",
                    "-f",
                    str(build / "pom.xml"),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={build / 'lib'}",
                    "-DincludeScope=runtime",
                ],
                build,
            )
            _run(
                [
                    "javac",
                    "--release",
                    "17",
                    "-cp",
                    str(build / "lib" / "*"),
                    "-d",
                    str(build / "classes"),
                    str(build / f"{LAUNCHER_CLASS}.java"),
                ],
                build,
            )
            (build / "STAMP").write_text(stamp + "\n")
            if target.exists():
                shutil.rmtree(target)
            build.rename(target)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return target


def _is_built(target: Path, stamp: str) -> bool:
    stamp_file = target / "STAMP"
    return (
        stamp_file.is_file()
        and stamp_file.read_text().strip() == stamp
        and (target / "classes" / f"{LAUNCHER_CLASS}.class").is_file()
        and any((target / "lib").glob("mongo-java-server-*.jar"))
    )


def java_command(launcher_dir: Path, port: int = 0, *, change_streams: bool = True) -> list[str]:
    classpath = os.pathsep.join([str(launcher_dir / "classes"), str(launcher_dir / "lib" / "*")])
    return [
        "java",
        "-cp",
        classpath,
        LAUNCHER_CLASS,
        "--port",
        str(port),
        "--exit-on-stdin-eof",
        *([] if change_streams else ["--no-oplog"]),
    ]


def start_java_without_change_streams(workdir: Path) -> MongoServerHandle:
    """A server that refuses change streams: how the workers' polling fallback is tested."""
    workdir.mkdir(parents=True, exist_ok=True)
    return _start_java(workdir, change_streams=False)


def _start_java(workdir: Path, change_streams: bool = True) -> MongoServerHandle:
    launcher_dir = ensure_java_launcher()
    log_path = workdir / "mongo-java-server.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            java_command(launcher_dir, change_streams=change_streams),
            stdin=subprocess.PIPE,  # the launcher exits when this closes, e.g. if we die
            stdout=subprocess.PIPE,
            stderr=log,
        )
    port = _read_listening_port(proc, START_TIMEOUT_S)
    if port is None:
        handle = MongoServerHandle("java", "", proc, workdir, 0)
        handle.stop()
        tail = log_path.read_text(errors="replace")[-2000:]
        raise MongoServerError(f"mongo-java-server did not report its port; log:\n{tail}")
    return MongoServerHandle("java", f"mongodb://127.0.0.1:{port}", proc, workdir, port)


def _read_listening_port(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Read the launcher's `LISTENING <port>` line, waiting at most `timeout` seconds."""
    found: list[int] = []

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("LISTENING "):
                found.append(int(line.split()[1]))
                return

    reader = threading.Thread(target=read, name="mongo-java-port", daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0] if found else None


# ---------------------------------------------------------------- command line


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _main(argv: list[str]) -> int:
    usage = "usage: mongo_servers.py build-java | serve nx|java"
    if argv[:1] == ["build-java"]:
        started = time.monotonic()
        path = ensure_java_launcher()
        print(f"{path} ({time.monotonic() - started:.1f}s)")
        return 0
    if len(argv) == 2 and argv[0] == "serve" and argv[1] in KINDS:
        signal.signal(signal.SIGTERM, _interrupt)
        with tempfile.TemporaryDirectory(prefix=f"shards-{argv[1]}-") as tmp:
            handle = start_server(argv[1], Path(tmp))
            print(f"{handle.kind} pid {handle.pid}: {handle.uri}", flush=True)
            try:
                while handle.proc.poll() is None:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
            finally:
                handle.stop()
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
