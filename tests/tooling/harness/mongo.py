"""The embedded MongoDB server (NX-27017) of one test, chaos run or bench measurement.

It keeps its port and data directory for its whole life, so a server killed with SIGKILL (an
outage) comes back as itself on `start()`, and clients reconnect to the same data.
"""

from __future__ import annotations

import logging
from pathlib import Path

from shards_store.embedded import free_port, start_embedded

from tooling.harness.child import WAIT, Child

logger = logging.getLogger("harness")


class EmbeddedMongo:
    """`EmbeddedMongo(data_dir, "db").start()`; `.uri` names the database `database` (none if "")."""

    def __init__(self, data_dir: Path, database: str = "", *, host: str = "127.0.0.1",
                 grace: float = WAIT) -> None:
        self.data_dir = data_dir
        self.database = database
        self.host = host
        self.port = free_port()
        self.grace = grace
        self.child: Child | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}" + (f"/{self.database}" if self.database else "")

    @property
    def up(self) -> bool:
        return self.child is not None and self.child.running

    @property
    def pid(self) -> int:
        return self.child.pid if self.child is not None else 0

    def start(self) -> EmbeddedMongo:
        """Start the server, or start it again after `kill()`; returns once its port listens."""
        assert not self.up, f"the server on port {self.port} is already running"
        popen = start_embedded(self.port, self.data_dir, host=self.host)
        self.child = Child(popen, self.data_dir / "nx-27017.log", self.grace)
        logger.info("mongo up on port %d (pid %d)", self.port, popen.pid)
        return self

    def kill(self) -> None:
        """SIGKILL: an outage; the data directory stays for `start()`."""
        if self.up:
            assert self.child is not None
            self.child.kill()
            logger.info("mongo (pid %d) killed", self.child.pid)

    def stop(self) -> None:
        if self.child is not None:
            self.child.terminate()

    def __enter__(self) -> EmbeddedMongo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
