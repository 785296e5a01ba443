"""The operator's reconciler: stranded records are settled even when no worker is left.

Workers reconcile on their heartbeats (shards_store.reconciler); with none alive (all crashed, a
pool scaled to zero after an outage) nobody would. The operator runs the same plain reconciler on
a thread of its own, every RECONCILE_INTERVAL: it reaps workers whose heartbeat stood still for a
whole lease of theirs (watched here, on this process's monotonic clock) and settles their runs
(hand-offs: shards.retries), and ends records that stay without an owner. Its writes are guarded
like every reconciler's, so it settles nothing twice beside the workers'. No Kubernetes here.
"""

from __future__ import annotations

import logging
import threading

from shards.errors import StoreUnavailable
from shards_store import Store
from shards_store.reconciler import Reconciler

log = logging.getLogger("shards.operator")

# About a quarter of the default worker lease (45 s): a silent worker is reaped at most this long
# after its lease ran out. Bounded waits: every pass is a few queries of the store's timeout.
RECONCILE_INTERVAL = 10.0
ORPHAN_GRACE = 5.0  # as the workers' --orphan-grace: how long a record may lack an owner


def reconcile_once(reconciler: Reconciler, interval: float = RECONCILE_INTERVAL) -> list[str]:
    """One pass; the ids of the workers and runs it settled. An outage is logged, not raised."""
    try:
        settled = reconciler.reconcile(max_gap=3 * interval)
    except StoreUnavailable as error:
        log.warning("reconciler: %s; trying again in %gs", error, interval)
        return []
    except Exception:  # a bug must not end the loop
        log.exception("reconciler: a pass failed")
        return []
    if settled:
        log.info("reconciler: settled %s", ", ".join(settled))
    return settled


def reconcile_until(store: Store, stop: threading.Event, interval: float = RECONCILE_INTERVAL,
                    orphan_grace: float = ORPHAN_GRACE) -> None:
    """The reconciler's thread, until `stop` is set."""
    reconciler = Reconciler(store, orphan_grace=orphan_grace)
    while not stop.is_set():
        reconcile_once(reconciler, interval)
        stop.wait(interval)


def start_reconciler(store: Store, stop: threading.Event,
                     interval: float = RECONCILE_INTERVAL) -> threading.Thread:
    """Start the reconciler's thread (a daemon: it holds no state worth a flush at exit)."""
    thread = threading.Thread(target=reconcile_until, args=(store, stop, interval),
                              name="shards-reconciler", daemon=True)
    thread.start()
    return thread
