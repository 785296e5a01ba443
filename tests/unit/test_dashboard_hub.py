"""The dashboard's fan-out: latest document per process, at most one message per interval per
page, bounded (a page that falls behind gets a snapshot), only the pages of the scope."""

from __future__ import annotations

import threading

import pytest
from shards_dashboard.hub import Hub, Page


def doc(pid: str, n: int) -> dict[str, object]:
    return {"id": pid, "progress": {"message": f"report {n}"}}


def test_a_chatty_process_coalesces_to_its_latest_document() -> None:
    wakes: list[int] = []
    page = Page("farm", lambda: wakes.append(1))
    for n in range(1000):
        page.offer("chatty", doc("chatty", n))
    page.offer("quick", doc("quick", 1))
    docs, resync = page.take(now=10.0)
    assert not resync
    assert docs == [doc("chatty", 999), doc("quick", 1)]
    assert len(wakes) == 1  # woken once, when the first change arrived
    assert page.offered == 1001 and page.sent == 1
    assert page.take(now=10.05) == ([], False)


def test_a_page_is_sent_at_most_once_per_interval() -> None:
    page = Page("farm", lambda: None, interval=0.1)
    assert page.delay(now=5.0) == 0.0  # the first change goes out at once
    page.offer("a", doc("a", 1))
    page.take(now=5.0)
    assert abs(page.delay(now=5.03) - 0.07) < 1e-9
    assert page.delay(now=5.2) == 0.0


def test_a_page_that_falls_behind_gets_a_snapshot_not_unbounded_memory() -> None:
    wakes: list[int] = []
    page = Page("farm", lambda: wakes.append(1), limit=10)
    for n in range(50):
        page.offer(f"p{n}", doc(f"p{n}", n))
    assert page.pending == 0
    assert page.take(now=1.0) == ([], True)
    assert len(wakes) == 1
    page.offer("p1", doc("p1", 2))
    assert page.take(now=2.0) == ([doc("p1", 2)], False)


def test_changes_reach_only_the_pages_of_their_scope() -> None:
    hub = Hub()
    farm = [hub.subscribe("farm", lambda: None) for _ in range(3)]
    other = hub.subscribe("other", lambda: None)
    hub.publish("farm", "chatty", doc("chatty", 1))
    assert all(page.take(now=1.0) == ([doc("chatty", 1)], False) for page in farm)
    assert other.take(now=1.0) == ([], False)
    assert hub.scopes() == {"farm", "other"}
    for page in farm:
        hub.unsubscribe(page)
    assert hub.scopes() == {"other"}
    hub.publish("farm", "chatty", doc("chatty", 2))  # nobody listens: nothing is kept
    hub.resync()
    assert other.take(now=2.0) == ([], True)


def test_publishing_from_another_thread_is_safe() -> None:
    hub = Hub()
    page = hub.subscribe("farm", lambda: None)
    seen: dict[str, object] = {}

    def feed(worker: int) -> None:
        for n in range(2000):
            hub.publish("farm", f"p{worker}-{n % 50}", doc(f"p{worker}", n))

    threads = [threading.Thread(target=feed, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(200):
        seen.update((d["id"], d) for d in page.take(now=0.0)[0])  # type: ignore[misc]
    for thread in threads:
        thread.join()
    seen.update((d["id"], d) for d in page.take(now=0.0)[0])  # type: ignore[misc]
    assert page.offered == 8000
    assert seen  # nothing raised; the last documents are all there


def test_live_pages_are_bounded() -> None:
    """Each page holds a queue and a connection: past the bound a new one is refused, not queued."""
    from shards.errors import ShardsError

    hub = Hub(max_pages=2)
    first = hub.subscribe("farm", lambda: None)
    hub.subscribe("other", lambda: None)
    with pytest.raises(ShardsError, match="too many live pages"):
        hub.subscribe("farm", lambda: None)
    hub.unsubscribe(first)
    hub.subscribe("farm", lambda: None)


def test_live_pages_are_bounded_per_client_too() -> None:
    from shards.errors import ShardsError

    hub = Hub(max_pages=3, max_per_client=2)
    hub.subscribe("farm", lambda: None, client="10.0.0.1")
    second = hub.subscribe("farm", lambda: None, client="10.0.0.1")
    with pytest.raises(ShardsError, match="too many live pages from this client"):
        hub.subscribe("other", lambda: None, client="10.0.0.1")
    hub.subscribe("farm", lambda: None, client="10.0.0.2")
    with pytest.raises(ShardsError, match=r"too many live pages \(3,"):
        hub.subscribe("farm", lambda: None, client="10.0.0.3")
    hub.unsubscribe(second)
    hub.subscribe("farm", lambda: None, client="10.0.0.1")
