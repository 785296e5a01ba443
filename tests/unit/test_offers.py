"""Who claims a request first, and when the others back it up (no I/O)."""

from __future__ import annotations

from shards.records import WorkerRecord
from shards.requests import Request, RequestKind
from shards_store import PollPace
from shards_worker.offers import Offers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def worker(worker_id: str, catalog: list[str] | None = None, pool: str = "default") -> WorkerRecord:
    return WorkerRecord(worker_id=worker_id, name=worker_id, host="h", pid=1, catalog=catalog or [],
                        concurrency=1, lease=15.0, pool=pool)


def launch(request_id: str, process_id: str = "job", pool: str = "default") -> Request:
    return Request(kind=RequestKind.LAUNCH, scope_id="s", process_id=process_id, run_id=request_id,
                   id=request_id, pool=pool)


def offers_of(ids: list[str], stagger: float = 0.02, clock: Clock | None = None) -> list[Offers]:
    everyone = [worker(i) for i in ids]
    result = []
    for me in ids:
        offers = Offers(me, [], stagger, clock=clock or Clock())
        offers.know_peers(everyone)
        result.append(offers)
    return result


def test_the_workers_stand_in_one_order_that_every_worker_computes_alike() -> None:
    ids = [f"w-{n}" for n in range(30)]
    turns = sorted(offers.turn(launch("r1")) or 0 for offers in offers_of(ids))
    assert turns == list(range(30))
    again = [offers.turn(launch("r2")) for offers in offers_of(ids)]
    assert again == [offers.turn(launch("r1")) for offers in offers_of(ids)]  # a fixed order


def test_a_request_addressed_to_a_worker_is_its_own_at_once() -> None:
    offers = offers_of(["a", "b", "c"])[2]
    stop = Request(kind=RequestKind.STOP, scope_id="s", process_id="job", run_id="r",
                   target_worker="c", id="x")
    assert offers.turn(stop) == 0


def test_only_workers_offering_the_process_stand_in_line() -> None:
    clock = Clock()
    mine = Offers("a", ["job"], 0.02, clock=clock)
    mine.know_peers([worker("a", ["job"]), worker("b", ["other"]), worker("c", [])])
    assert mine.turn(launch("r", "other")) is None  # not in this worker's catalog
    assert mine.add(launch("r", "other")) is None
    assert len(mine) == 0
    turn = mine.turn(launch("r", "job"))
    assert turn in (0, 1)  # b does not offer it; c (per-scope catalogs) offers everything


def test_only_workers_of_the_launchs_pool_stand_in_line() -> None:
    everyone = [worker("a", ["job"], "heavy"), worker("b", ["job"]), worker("c", ["job"], "heavy")]
    heavy = Offers("a", ["job"], 0.02, clock=Clock(), pool="heavy")
    heavy.know_peers(everyone)
    light = Offers("b", ["job"], 0.02, clock=Clock())
    light.know_peers(everyone)
    assert light.turn(launch("r", pool="heavy")) is None  # never a launch of another pool
    assert light.turn(launch("r")) == 0  # the only worker of its pool: first, whatever its hash
    assert heavy.turn(launch("r")) is None
    assert heavy.turn(launch("r", pool="heavy")) in (0, 1)  # behind or before c, never b
    stop = Request(kind=RequestKind.STOP, scope_id="s", process_id="job", run_id="r", id="x")
    assert light.turn(stop) is not None and heavy.turn(stop) is not None  # stops: any pool


def test_a_backup_claims_after_its_staggers_unless_it_saw_the_request_taken() -> None:
    clock = Clock()
    ids = ["a", "b", "c"]
    offers = {o.me: o for o in offers_of(ids, stagger=0.02, clock=clock)}
    backup = next(o for o in offers.values() if o.turn(launch("r1")) == 2)
    assert backup.add(launch("r1")) == 2
    clock.now += 0.039
    assert backup.due(RequestKind.LAUNCH, limit=5) == []  # not its turn yet
    clock.now += 0.002
    assert [o.request.id for o in backup.due(RequestKind.LAUNCH, limit=5)] == ["r1"]
    backup.add(launch("r1"))
    clock.now += 0.041
    backup.taken("r1")  # the first in line took it meanwhile
    assert backup.due(RequestKind.LAUNCH, limit=5) == []
    assert len(backup) == 0


def test_due_offers_wait_for_a_free_slot_and_expire() -> None:
    clock = Clock()
    first = next(o for o in offers_of(["a", "b"], clock=clock) if o.turn(launch("r1")) == 0)
    first.add(launch("r1"))
    assert first.due(RequestKind.LAUNCH, limit=0) == []
    assert first.next_due(frozenset({RequestKind.LAUNCH})) == clock.now
    assert first.next_due(frozenset({RequestKind.STOP})) is None  # a full worker does not spin
    assert [o.request.id for o in first.due(RequestKind.LAUNCH, limit=1)] == ["r1"]
    first.add(launch("r1"))
    clock.now += 10
    first.expire(older_than=5)
    assert first.next_due(frozenset({RequestKind.LAUNCH})) is None


def test_the_poll_pace_is_quick_while_busy_and_backs_off_when_idle() -> None:
    clock = Clock()
    pace = PollPace(0.002, 0.1, hot_for=1.0, clock=clock)
    pace.busy()
    assert [pace.next_pause() for _ in range(3)] == [0.002] * 3
    clock.now += 1.5
    pauses = [pace.next_pause() for _ in range(9)]
    assert pauses[:3] == [0.002, 0.004, 0.008]
    assert pauses[-1] == 0.1 and max(pauses) == 0.1


def test_a_backup_looks_again_before_it_claims() -> None:
    clock = Clock()
    backup = next(o for o in offers_of(["a", "b"], clock=clock) if o.turn(launch("r1")) == 1)
    backup.add(launch("r1"))
    clock.now += 0.021
    [offer] = backup.due(RequestKind.LAUNCH)
    assert (offer.turn, offer.rechecked) == (1, False)
    backup.recheck(offer)  # the worker asks its stream for a fresh read
    assert backup.due(RequestKind.LAUNCH) == []
    clock.now += 0.011
    [again] = backup.due(RequestKind.LAUNCH)
    assert again.rechecked
