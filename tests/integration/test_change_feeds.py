"""A change feed never goes silent after its server restarts: it delivers the next change, or it
ends (ChangeFeedEnded) so that its follower sweeps and opens it again. pymongo raises nothing for
a cursor the server ended, and a restarted embedded server gives the ids of the cursors it forgot
to new ones, so a getMore can read another client's stream (found by the chaos run: a worker
never heard of a forced stop addressed to it)."""

from __future__ import annotations

import time

from shards.requests import Request, RequestKind
from shards_store import ChangeFeed, Store, connect
from shards_store.changes import ChangeFeedEnded
from tooling.harness import EmbeddedMongo

from integration.harness import ShardsHarness

WAIT = 3.0  # seconds a feed may take to deliver or end (the client learns of a loss within one)


def _stop_for(store: Store, worker_id: str) -> None:
    store.requests.submit(Request(kind=RequestKind.STOP, scope_id="s", process_id="p",
                                  run_id=f"run-for-{worker_id}", target_worker=worker_id))


def _delivered_or_ended(feed: ChangeFeed, worker_id: str) -> str:
    """What the feed does within WAIT: "delivered" (the stop addressed to worker_id), "ended",
    or "silent"; a change addressed to any other worker is a defect."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            change = feed.next_change(0.2)
        except ChangeFeedEnded:
            return "ended"
        if change is not None:
            target = change["fullDocument"]["targetWorker"]
            assert target == worker_id, f"the feed of {worker_id} read a change for {target}"
            return "delivered"
    return "silent"


def test_a_feed_whose_server_restarted_delivers_or_ends_and_reads_no_other_stream(
    outage_env: tuple[ShardsHarness, EmbeddedMongo],
) -> None:
    _, mongo = outage_env
    mine, theirs = connect(mongo.uri), connect(mongo.uri)
    try:
        mine.ensure_indexes()
        feed = mine.request_feed("w1", "default")
        feed.open()
        assert feed.next_change(0.2) is None
        mongo.kill()
        mongo.start()
        # Both clients meet the restart on a read first (retried by pymongo, so unseen by the
        # caller); the other one then opens a stream, which the server numbers afresh.
        assert mine.requests.get("none") is None and theirs.requests.get("none") is None
        other = theirs.request_feed("w2", "default")
        other.open()
        _stop_for(theirs, "w1")
        _stop_for(theirs, "w2")
        assert _delivered_or_ended(feed, "w1") != "silent"
        assert _delivered_or_ended(other, "w2") != "silent"
        # Opened again, a feed delivers what comes next.
        for store, worker_id in ((mine, "w1"), (theirs, "w2")):
            reopened = store.request_feed(worker_id, "default")
            reopened.open()
            _stop_for(store, worker_id)
            assert _delivered_or_ended(reopened, worker_id) == "delivered"
            reopened.close()
    finally:
        mine.close()
        theirs.close()
