"""Upgrades lose nothing: what an older version left in the database is handled by this one.

A release before pools queued launches without a `pool` field; a worker of today claims only
its pool's launches, so such a launch waited forever. The upgrade step (shards_store.upgrade),
run by every worker and operator at start, gives it the default pool."""

from __future__ import annotations

import threading

from shards.records import DEFAULT_POOL, SCHEMA_VERSION
from shards.requests import Request, RequestKind, RequestState
from shards.states import State
from shards_store import Store
from shards_store.upgrade import upgrade

from integration.harness import ShardsHarness, wait_until


def _queue_as_the_old_version_did(env: ShardsHarness, scope: str, process_id: str) -> str:
    """A launch left pending by a release before pools and schema versions: Scheduled record,
    pending request without `pool` and without `schemaVersion`."""
    run_id = env.controller.launch(scope, process_id).run_id
    legacy = env.store.requests.collection.mongo.update_one(
        {"runId": run_id, "state": RequestState.PENDING},
        {"$unset": {"pool": "", "schemaVersion": ""}},
    )
    assert legacy.matched_count == 1
    return run_id


def test_a_launch_left_pending_by_a_release_before_pools_runs_once_after_the_upgrade(
    shards_env: ShardsHarness,
) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm")
    shards_env.processes.stop_workers()  # the old version's workers are gone
    wait_until(lambda: not shards_env.store.workers.alive(), what="no live worker")
    run_id = _queue_as_the_old_version_did(shards_env, "farm", "quick")

    shards_env.start_worker()  # the new version
    done = shards_env.wait_state("farm", "quick", State.DONE)
    assert done.run_id == run_id
    # The history entry's end is written just after the record's (end_run: the record first).
    [run] = wait_until(lambda: [entry for entry in shards_env.controller.history("farm", "quick")
                                if entry.state is State.DONE], what="the history entry's end")
    assert (run.run_id, run.state, run.attempt) == (run_id, State.DONE, 1)
    assert not shards_env.store.requests.for_runs([run_id])


def _legacy_launches(store: Store, count: int) -> None:
    store.requests.collection.mongo.insert_many([
        {"_id": f"old-{n}", "kind": RequestKind.LAUNCH, "scopeId": "farm", "processId": f"p{n}",
         "runId": f"old-{n}", "args": {}, "options": {}, "targetWorker": "", "state": RequestState.PENDING,
         "takenBy": "", "createdAt": 1_700_000_000_000 + n}
        for n in range(count)
    ])


def test_the_upgrade_step_is_idempotent_and_safe_from_several_pods_at_once(shards_env: ShardsHarness) -> None:
    store = shards_env.store
    _legacy_launches(store, 5)
    store.requests.collection.mongo.insert_one(
        {"_id": "taken", "kind": RequestKind.LAUNCH, "scopeId": "farm", "processId": "t", "runId": "taken",
         "targetWorker": "", "state": RequestState.TAKEN, "takenBy": "w-old", "createdAt": 1})
    store.requests.submit(Request(kind=RequestKind.LAUNCH, scope_id="farm", process_id="h", run_id="heavy",
                                  pool="heavy", id="heavy"))
    moved: list[int] = []
    pods = [threading.Thread(target=lambda: moved.append(upgrade(store).launches)) for _ in range(4)]
    for pod in pods:
        pod.start()
    for pod in pods:
        pod.join(timeout=60)
    assert sum(moved) == 5  # each legacy launch moved once, by one of the pods
    assert upgrade(store).launches == 0  # and nothing the second time
    docs = {doc["_id"]: doc for doc in store.requests.collection.find({})}
    for n in range(5):
        assert (docs[f"old-{n}"]["pool"], docs[f"old-{n}"]["schemaVersion"]) == (DEFAULT_POOL, SCHEMA_VERSION)
    assert "pool" not in docs["taken"]  # a taken one is its taker's: left as it is
    assert docs["heavy"]["pool"] == "heavy"
    claimed = [store.requests.claim(RequestKind.LAUNCH, "w-new", pool=DEFAULT_POOL) for _ in range(6)]
    expected = [*(f"old-{n}" for n in range(5)), None]  # oldest first, then none: each once
    assert [request.run_id if request else None for request in claimed] == expected



def test_a_legacy_launch_goes_to_its_process_pool_even_past_an_unreadable_record(
    shards_env: ShardsHarness,
) -> None:
    store = shards_env.store
    _legacy_launches(store, 3)  # processes p0, p1, p2 of scope farm
    processes = store.processes.collection.mongo
    processes.insert_one({"scopeId": "farm", "processId": "p0", "name": "P0", "pool": "heavy"})
    processes.insert_one({"scopeId": "farm", "processId": "p1", "status": {"state": "NoSuchState"}})
    assert upgrade(store).launches == 3
    pools = {doc["_id"]: doc["pool"] for doc in store.requests.collection.find({})}
    assert pools == {"old-0": "heavy", "old-1": DEFAULT_POOL, "old-2": DEFAULT_POOL}
