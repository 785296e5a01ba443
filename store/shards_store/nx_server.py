"""NX-27017's entry point with a bounded shutdown, so a stopped server always exits.

NX-27017 answers SIGTERM with `sys.exit`, which leaves through `asyncio.run`: that joins
the executor threads serving requests with no bound, and once (under CI load) a server
stayed up 30 s after SIGTERM. Every acknowledged write is already committed to SQLite, so
exiting hard after a short grace loses nothing.
"""

from __future__ import annotations

import os
import sys
import threading
from types import FrameType

from nx_27017 import daemon
from nx_27017.nx_27017 import main

SHUTDOWN_GRACE_SECONDS = 5.0


def _exit_within_grace(signum: int, frame: FrameType | None) -> None:
    timer = threading.Timer(SHUTDOWN_GRACE_SECONDS, os._exit, args=(0,))
    timer.daemon = True
    timer.start()
    sys.exit(0)


if __name__ == "__main__":
    # NX-27017 installs its handler by this module-level name when it starts.
    daemon._signal_exit_handler = _exit_within_grace
    main()
