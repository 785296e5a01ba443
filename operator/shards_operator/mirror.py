"""Status follows MongoDB: one change stream on the process records for the whole operator
(never one per resource), a sweep at start and after stream errors, at most one status patch
per resource per interval, and the final state always delivered. A new launch's first status
waits a moment (SETTLE), so that a short run shows its end in one patch.

The mirror is the only writer of ShardProcess status, so it knows what each status holds: a
patch carries only what changed, and none is sent when nothing did (an operator restarted over
thousands of finished resources sends none). Patches go out on a bounded pool of threads, one
at a time per resource, so that a burst is not one API round trip after another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from shards.errors import ShardsError
from shards.records import ProcessRecord
from shards.states import FINAL, State
from shards_controller import Controller
from shards_store import ChangeFeed

from shards_operator import metrics
from shards_operator.resource import (
    Outcome,
    Resource,
    current_run,
    launch_done,
    launch_of,
    observed,
    view_of,
)
from shards_operator.status import for_tenant

log = logging.getLogger("shards.operator")

EVENT_LINES = 10  # a Failed run's Event ends with its last log lines...
EVENT_MESSAGE = 1024  # ...within the Event's message (bytes; the API server keeps 1 KiB)

EVENT_ON_STATE = {
    State.STOPPING: ("Normal", "Stopping"),
    State.STOPPED: ("Normal", "Stopped"),
    State.DONE: ("Normal", "Done"),
    State.FAILED: ("Warning", "Failed"),
}
EVENT_STATES = {state.value for state in EVENT_ON_STATE}
# How far a launch's attempt has gone: a run's state never moves back within one attempt, so a
# queued status that shows less (a handler's read older than the stream's news) is dropped.
STATE_RANK = {State.IDLE.value: 0, State.SCHEDULED.value: 1, State.RUNNING.value: 2,
              State.STOP_REQUESTED.value: 3, State.STOPPING.value: 4, State.STOPPED.value: 5,
              State.FAILED.value: 5, State.DONE.value: 5}
PATCH_THREADS = 8  # status patches in flight at once (the API server's fairness limits decide the rest)
# A launch's first status waits this long (at most the interval): a short run then shows its end
# in that one patch, instead of a launch patch and an end patch a whole interval later.
SETTLE = 0.25


class Patcher(Protocol):
    """Where statuses and events go (the Kubernetes API; a list in unit tests)."""

    def patch_status(self, resource: Resource, status: dict[str, Any]) -> None: ...

    def event(self, resource: Resource, kind: str, reason: str, message: str, key: str = "") -> None:
        """Post an Event; one with a `key` is posted at most once per resource and key."""


@dataclass(frozen=True)
class Shown:
    """What a resource's stored status shows of its runs: Events are posted when a status patch
    moves it, so that they follow what the API server holds, not what an operator remembers (a
    new operator starts from the status the last one patched)."""

    runs: int = 0
    run_id: str = ""
    state: str = ""
    attempt: int = 0

    @classmethod
    def of(cls, status: dict[str, Any]) -> Shown:
        return cls().moved_by(status)

    def moved_by(self, status: dict[str, Any]) -> Shown:
        """What the status shows once `status` (a merge patch) is applied."""
        return Shown(runs=int(status.get("runs") or self.runs),
                     run_id=str(status.get("runId") or self.run_id),
                     state=str(status.get("state") or self.state),
                     attempt=int(status.get("attempt") or self.attempt))


@dataclass
class Tracked:
    resource: Resource
    stored: dict[str, Any]  # its status as the API server holds it: the first body's, then our patches
    runs: int = 0  # the resource's launched runs, as the mirror last learnt them
    pending: dict[str, Any] = field(default_factory=dict)
    pending_since: float | None = None  # monotonic: when the oldest change in `pending` came
    sending_since: float = 0.0  # the same for the patch in flight (the status lag metric)
    last_patch: float = 0.0
    not_before: float = 0.0  # monotonic: no patch before (a new launch settles, see SETTLE)
    state: str = ""  # as last queued (the resources-by-state gauge)
    sending: bool = False  # a patch of it is in flight: the next waits (one at a time per resource)
    reached: tuple[int, int, int] = (0, 0, 0)  # (launch, attempt, state rank) queued or shown so far

    @property
    def shown(self) -> Shown:
        return Shown.of(self.stored)


class StatusMirror:
    def __init__(self, controller: Controller, patcher: Patcher, interval: float = 1.0,
                 patch_threads: int = PATCH_THREADS) -> None:
        self.controller = controller
        self.patcher = patcher
        self.interval = interval
        self._lock = threading.Lock()
        self._by_uid: dict[str, Tracked] = {}
        self._queued: set[str] = set()  # uids with a pending status: a flush looks at these only
        self._states: Counter[str] = Counter()  # tracked resources by state (the gauge)
        self._pool = ThreadPoolExecutor(max_workers=patch_threads, thread_name_prefix="shards-patch")
        self._feed: ChangeFeed | None = None

    # -- what the handlers tell it ----------------------------------------------------------
    def update(self, resource: Resource, outcome: Outcome) -> None:
        """A handler decided: remember the resource, queue its status and events."""
        with self._lock:
            # First seen: its stored status is what the API server holds (what an earlier
            # operator patched). Later bodies may lag this mirror's own patches: not read again.
            tracked = self._by_uid.get(resource.uid)
            if tracked is None:
                shown = str(resource.status.get("state") or "")  # counted as its status shows it
                tracked = self._by_uid[resource.uid] = Tracked(resource, dict(resource.status), state=shown)
                if shown:
                    tracked.reached = (resource.launched_runs, int(resource.status.get("attempt") or 1),
                                       STATE_RANK.get(shown, 0))
                self._states[tracked.state] += 1
            tracked.resource = resource
            if int(outcome.status.get("runs") or 0) > max(tracked.runs, Shown.of(tracked.stored).runs):
                tracked.not_before = time.monotonic() + min(SETTLE, self.interval)  # a new launch
            tracked.runs = max(tracked.runs, resource.launched_runs, int(outcome.status.get("runs") or 0))
            self._pend(tracked, outcome.status)
        for kind, reason, message in outcome.events:
            self._post_event(resource, kind, reason, message)
        if "runs" in outcome.status:
            # Just launched: the run may have started, even ended, before this resource was
            # tracked, and the changes seen then were not matched to it. Read it once more.
            launched = self._with_runs(resource)
            try:
                run = current_run(self.controller, launched)
            except ShardsError as error:  # later changes come by the stream, or the sweep reads it
                log.warning("shards.operator: could not read the run of %s/%s just launched: %s",
                            resource.namespace, resource.name, error)
                run = None
            if run is not None:
                self._queue(launched, observed(launched, run).status)
        self.flush()

    def forget(self, uid: str) -> None:
        with self._lock:
            tracked = self._by_uid.pop(uid, None)
            self._queued.discard(uid)
            if tracked is not None:
                self._states[tracked.state] -= 1

    def resources(self) -> list[Resource]:
        with self._lock:
            return [tracked.resource for tracked in self._by_uid.values()]

    # -- the loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Follow the records until `stop`; every wait is bounded by the patch interval. The
        patches go out on the pool, while this thread reads on."""
        while not stop.is_set():
            try:
                if self._feed is None:
                    self._feed = self.controller.store.process_feed()
                    self._feed.open()
                    self.sweep()  # what changed while no stream was open
                # Statuses wait their turn: look again soon while any does.
                pause = min(self.interval, SETTLE if self._queued else 0.5)
                change = self._feed.next_change(pause, interrupted=stop.is_set)
                if change is not None and change.get("fullDocument"):
                    self.observe(ProcessRecord.from_doc(change["fullDocument"]))
                for due in self._take_due(force=False):
                    self._pool.submit(self._send, due)
            except ShardsError as error:  # stream broke or MongoDB is away: reopen, then sweep
                metrics.STREAM_ERRORS.inc()
                log.warning("shards.operator: %s; sweeping after a pause", error)
                if self._feed is not None:
                    self._feed.close()
                    self._feed = None
                stop.wait(self.interval)
            except Exception:  # a bug (or the API server refusing a patch) must not stop following
                log.exception("shards.operator: status mirror failed; going on")
                stop.wait(self.interval)
        if self._feed is not None:
            self._feed.close()

    def close(self) -> None:
        """At the end: wait for the patches in flight (each is bounded by the client's timeout),
        then send what is still queued."""
        self._pool.shutdown(wait=True)
        for due in self._take_due(force=True):
            self._send(due)

    def sweep(self) -> None:
        """Read every tracked resource's run afresh (at start and after stream errors); one whose
        status shows its launch Done has nothing more to learn."""
        for resource in map(self._with_runs, self.resources()):
            if not resource.launched_runs or launch_done(resource):
                continue
            run = current_run(self.controller, resource)
            if run is not None:
                self._queue(resource, observed(resource, run).status)

    def observe(self, record: ProcessRecord) -> None:
        """A process record changed: if its launch belongs to a tracked resource, queue its status."""
        launch_id = launch_of(record)
        uid = uid_of_launch(launch_id)
        with self._lock:
            tracked = self._by_uid.get(uid) if uid else None
        if tracked is None:
            return
        resource = self._with_runs(tracked.resource)
        if launch_id != resource.launch_id(resource.launched_runs):
            return  # an older run of the resource
        self._queue(resource, observed(resource, view_of(self.controller, record)).status)

    def flush(self, force: bool = False) -> int:
        """Send each queued status that is due (at most one patch per resource per interval;
        a final state waits for its turn but is never dropped), each with the Events of what it
        moves, and wait for them. Returns how many were sent."""
        due = self._take_due(force)
        if len(due) <= 1:
            return sum(map(self._send, due))
        return sum(self._pool.map(self._send, due))

    def _take_due(self, force: bool) -> list[tuple[Tracked, Resource, dict[str, Any]]]:
        """The queued statuses whose turn has come, each taken with what it changes in the
        stored status (a status that changes nothing is dropped here, unsent)."""
        now = time.monotonic()
        due = []
        with self._lock:
            for uid in list(self._queued):
                tracked = self._by_uid.get(uid)
                if tracked is None or not tracked.pending:
                    self._queued.discard(uid)
                    continue
                waits = now < tracked.not_before or now - tracked.last_patch < self.interval
                if tracked.sending or (waits and not force):
                    continue
                self._queued.discard(uid)
                change, tracked.pending = changes(tracked.stored, tracked.pending), {}
                since, tracked.pending_since = tracked.pending_since, None
                if change:
                    tracked.sending, tracked.last_patch = True, now
                    tracked.sending_since = now if since is None else since
                    due.append((tracked, tracked.resource, change))
            self._set_gauge()
        return due

    def _send(self, due: tuple[Tracked, Resource, dict[str, Any]]) -> bool:
        tracked, resource, status = due
        after = merged(tracked.stored, status)  # only this thread moves it (one patch at a time)
        try:
            # Before the patch, under names that make them idempotent: an operator killed
            # between the two leaves the Events, and the next one's same Events are no-ops.
            self._announce(resource, tracked.shown, Shown.of(after), after)
            self.patcher.patch_status(resource, status)
        except Exception:  # refused or unreachable: send it again with the next one
            log.warning("shards.operator: status patch of %s/%s failed; retrying", resource.namespace,
                        resource.name, exc_info=True)
            with self._lock:
                tracked.pending = {**status, **tracked.pending}
                tracked.pending_since = tracked.sending_since  # the oldest of them came then
                tracked.sending = False
                self._queued.add(resource.uid)
            return False
        with self._lock:
            tracked.stored, tracked.sending = after, False
        metrics.STATUS_PATCHES.inc()
        metrics.STATUS_LAG.observe(time.monotonic() - tracked.sending_since)
        return True

    def _queue(self, resource: Resource, status: dict[str, Any]) -> None:
        with self._lock:
            tracked = self._by_uid.get(resource.uid)
            if tracked is not None:
                self._pend(tracked, status)

    def _pend(self, tracked: Tracked, status: dict[str, Any]) -> None:
        """Under the lock: `status` joins what waits to be sent for the resource, unless it shows
        the launch less far on than a status already queued or shown (an older read)."""
        if "state" in status:
            reached = (max(tracked.runs, int(status.get("runs") or 0)), int(status.get("attempt") or 1),
                       STATE_RANK.get(str(status["state"]), 0))
            if reached < tracked.reached:
                return
            tracked.reached = reached
        new_state = str(status.get("state") or tracked.state)
        if new_state != tracked.state:
            self._states[tracked.state] -= 1
            self._states[new_state] += 1
            tracked.state = new_state
        if tracked.pending_since is None:
            tracked.pending_since = time.monotonic()
        tracked.pending.update(status)
        self._queued.add(tracked.resource.uid)

    def _set_gauge(self) -> None:
        for state in State:
            metrics.RESOURCES.labels(state.value).set(self._states[state.value])

    def _announce(self, resource: Resource, before: Shown, after: Shown, status: dict[str, Any]) -> None:
        """The Events of what a status patch moves from `before` to `after` (`status`: the whole
        status it leaves): a launch, a retry, a state. Each is named after what it announces, so
        that posting it twice posts it once."""
        if after.runs > before.runs:
            scope = status.get("scope") or resource.scope
            self._post_event(resource, "Normal", "Launched",
                             f"run {after.runs} of {resource.spec.get('process')} in scope {scope}",
                             key=f"launched/{after.runs}")
        earlier_attempt = before.attempt if after.runs == before.runs else 1
        if after.attempt > max(earlier_attempt, 1) and status.get("attempts"):
            self._post_event(resource, *retry_event(status["attempts"][-1], after.attempt),
                             key=f"retrying/{after.run_id}")
        moved = (after.state, after.run_id) != (before.state, before.run_id)
        if moved and after.state in EVENT_STATES:
            self._post_event(resource, *self._state_event(resource, State(after.state), status),
                             key=f"{after.state}/{after.run_id}")

    def _state_event(self, resource: Resource, state: State, status: dict[str, Any]) -> tuple[str, str, str]:
        kind, reason = EVENT_ON_STATE[state]
        error = status.get("error") or ""
        message = f"the run ended {state.value}" + (f": {error}" if error else "")
        if state not in FINAL:
            message = "the run is stopping"
        elif state is State.FAILED:
            message = self._with_last_lines(message, resource, str(status.get("runId") or ""))
        return kind, reason, message

    def _with_runs(self, resource: Resource) -> Resource:
        """The resource as last known, with its status as this mirror will have left it (what
        it sent, then what waits to be sent): a condition's lastTransitionTime moves only when
        the condition does, however old the body a handler was given."""
        with self._lock:
            tracked = self._by_uid.get(resource.uid)
            if tracked is None:
                return resource
            status = merged(tracked.stored, tracked.pending)
            status["runs"] = max(tracked.runs, int(status.get("runs") or 0))
        return Resource(resource.namespace, resource.name, resource.uid, resource.generation,
                        resource.spec, status)

    def _with_last_lines(self, message: str, resource: Resource, run_id: str) -> str:
        """The run's last log lines after the message (the status keeps only the error)."""
        try:
            run_log = self.controller.run_logs(resource.scope, str(resource.spec["process"]), run_id or None)
        except Exception:  # no log, or MongoDB away: the Event goes without it
            log.debug("shards.operator: no log lines for the Failed event of %s/%s", resource.namespace,
                      resource.name, exc_info=True)
            return message
        return last_lines(message, run_log.lines)

    def _post_event(self, resource: Resource, kind: str, reason: str, message: str, key: str = "") -> None:
        """`key` names what the Event announces, once per resource (see Patcher.event)."""
        try:
            self.patcher.event(resource, kind, reason, for_tenant(message), key=key)
        except Exception:  # an event is a courtesy: never fail on it
            log.warning("shards.operator: could not post event %s on %s/%s", reason,
                        resource.namespace, resource.name, exc_info=True)


def retry_event(ended: dict[str, Any], attempt: int) -> tuple[str, str, str]:
    """(type, reason, message) of the Event that says a launch runs again: a Warning after a
    failure, Normal after a hand-off (its worker shut down, the attempt ended Stopped)."""
    error = f": {ended['error']}" if ended.get("error") else ""
    kind = "Warning" if ended.get("state") == State.FAILED.value else "Normal"
    message = f"attempt {ended.get('attempt')} ended {ended.get('state')}{error}; attempt {attempt} follows"
    return kind, "Retrying", message


def last_lines(message: str, lines: list[str], count: int = EVENT_LINES, limit: int = EVENT_MESSAGE) -> str:
    """`message`, then the last `count` lines of a run's log (a traceback counts line by line),
    cut at the front so that the whole stays within `limit` bytes."""
    tail = "\n".join("\n".join(lines[-count:]).splitlines()[-count:])
    head = f"{message}\nlast log lines:\n"
    room = limit - len(head.encode())
    if not tail or room < 40:
        return message
    encoded = tail.encode()
    if len(encoded) > room:
        tail = "…" + encoded[len(encoded) - room + len("…".encode()):].decode(errors="ignore")
    return head + tail


def uid_of_launch(launch_id: str) -> str:
    """The resource uid in a launch id the operator made (`k8s-<uid>-<n>`), else ""."""
    if not launch_id.startswith("k8s-"):
        return ""
    uid, _, number = launch_id[4:].rpartition("-")
    return uid if number.isdigit() else ""


def merged(status: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`status` once the JSON merge patch `patch` is applied (RFC 7386: objects merge, null
    removes, anything else replaces)."""
    result = dict(status)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            inner = result.get(key)
            result[key] = merged(inner if isinstance(inner, dict) else {}, value)
        else:
            result[key] = value
    return result


def changes(status: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The part of the merge patch `patch` that changes `status` (empty: nothing to send)."""
    return {key: value for key, value in patch.items()
            if (key in status if value is None else merged(status, {key: value}).get(key) != status.get(key))}
