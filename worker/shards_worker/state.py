"""What the worker's services share, explicitly: who this worker is and the flags of its life."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class WorkerState:
    name: str  # kept across restarts; the id is per incarnation
    id: str = ""  # this incarnation's id, given at registration
    # claim nothing more; runs are asked to stop
    stopping: threading.Event = field(default_factory=threading.Event)
    # heartbeats end: this incarnation leaves
    closed: threading.Event = field(default_factory=threading.Event)
    # the lease is running out: claim nothing until it is renewed
    fenced: threading.Event = field(default_factory=threading.Event)
    may_own_records: bool = True  # a record may name this worker (set at each claim): check them

    def may_claim(self) -> bool:
        return not self.stopping.is_set() and not self.fenced.is_set()
