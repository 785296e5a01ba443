"""The store: the only place that talks to MongoDB. Everything else gets plain records."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING, MongoClient
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError
from shards.errors import ShardsError
from shards.records import ProcessRecord, ProcessStatus, Progress, set_server_offset, utcnow, wall_clock
from shards.requests import ANY_POOL, ANY_WORKER, Request, RequestKind
from shards.retries import RetryPlan
from shards.states import State

from shards_store.changes import ChangeFeed, PollPace, ServerLosses
from shards_store.collection import Collection, Doc, QueryLog, translated
from shards_store.indexes import INDEXES, OBSOLETE
from shards_store.processes import ProcessRecords
from shards_store.reachability import TIMEOUT_ENV, brief, check_loopback_listens, mongo_timeout
from shards_store.requests import RequestQueue
from shards_store.runlogs import RunLogs
from shards_store.runs import RunHistory
from shards_store.schedules import ScheduleBook
from shards_store.scopes import ScopeCatalog
from shards_store.workers import WorkerRegistry

DEFAULT_URI = "mongodb://127.0.0.1:27017/shards"
DEFAULT_DATABASE = "shards"
CLOCK_SYNC_INTERVAL = 60.0  # seconds between measures of this machine's clock against the server's
CLOCK_SAMPLES = 3  # the quickest round trip of these measures the offset
CLOCK_TOLERANCE = 0.25  # seconds: an offset within this is no offset (see Store.sync_clock)
MAX_CLOCK_ROUND_TRIP = 0.5  # seconds: a slower measure says too little to change anything


def default_uri() -> str:
    return os.environ.get("SHARDS_MONGO_URI") or DEFAULT_URI


def redact(uri: str) -> str:
    """The URI without its password, for messages and logs."""
    return re.sub(r"(mongodb(?:\+srv)?://[^:/@]+):[^@/]*@", r"\1:***@", uri)


class Store:
    def __init__(self, client: MongoClient[Doc], database: Database[Doc], uri: str = "",
                 server_losses: ServerLosses | None = None) -> None:
        self.client = client
        self.server_losses = server_losses or ServerLosses()  # counts only if the client reports to it
        self.database = database
        self.uri = uri  # how it was reached (a run's own OS process connects the same way)
        self.query_log = QueryLog()
        self.processes = ProcessRecords(self._collection("processes"))
        self.requests = RequestQueue(self._collection("requests"))
        self.runs = RunHistory(self._collection("runs"))
        self.runlogs = RunLogs(self._collection("runlogs"))
        self.workers = WorkerRegistry(self._collection("workers"))
        self.scopes = ScopeCatalog(self._collection("scopes"))
        self.schedules = ScheduleBook(self._collection("schedules"), self.requests)
        self._clock_synced: float | None = None  # monotonic: when sync_clock last measured

    @translated
    def sync_clock(self, *, at_most_every: float = 0.0) -> float | None:
        """Measure the server's clock against this machine's (the `localTime` of a hello) and
        correct shards.records.utcnow by the difference, so that times that decide (when a retry
        may start, durations) do not depend on this host's wall clock. Returns the offset applied,
        in seconds (None: no measure this time). Raises StoreUnavailable.

        A measure is off by up to half its round trip, so the quickest of a few counts, and an
        offset within CLOCK_TOLERANCE (plus that error) is taken as none: clocks kept by NTP
        (milliseconds apart) stay exactly as they are, and processes of one host never disagree
        by a measure's noise (a stop request "in the future" for a worker would wait for it)."""
        if self._clock_synced is not None and time.monotonic() - self._clock_synced < at_most_every:
            return None
        self._clock_synced = time.monotonic()
        best: tuple[float, float] | None = None  # (round trip, offset)
        for _ in range(CLOCK_SAMPLES):
            sample = self._clock_sample()
            if sample is not None and (best is None or sample[0] < best[0]):
                best = sample
        if best is None or best[0] > MAX_CLOCK_ROUND_TRIP:
            return None
        round_trip, measured = best
        # Corrected only when surely beyond the tolerance, whatever the measure's error (up to
        # half its round trip): under load a slow measure must not invent an offset.
        offset = measured if abs(measured) > CLOCK_TOLERANCE + round_trip / 2 else 0.0
        set_server_offset(offset)
        return offset

    def _clock_sample(self) -> tuple[float, float] | None:
        """One (round trip, server minus this machine) measure, in seconds."""
        sent = wall_clock()
        try:
            reply = self.client.admin.command("hello")
        except OperationFailure:  # a server older than hello (mongo-java-server): the same reply
            reply = self.client.admin.command("isMaster")
        received = wall_clock()
        server = reply.get("localTime")
        if not isinstance(server, datetime):
            return None
        server = server if server.tzinfo else server.replace(tzinfo=UTC)
        return (received - sent).total_seconds(), (server - (sent + (received - sent) / 2)).total_seconds()

    def _collection(self, name: str) -> Collection:
        return Collection(self.database[name], self.query_log)

    def request_feed(self, worker_id: str, pool: str, pace: PollPace | None = None) -> ChangeFeed:
        """Wakes a worker on the requests it may act on: new ones for any worker or addressed
        to it, of its pool or of none, and their updates (taken by a worker). No document is
        looked up: an update event carries no document on MongoDB (null matches it) and its
        post-image on the embedded server. `$or` would say it more plainly, but the embedded
        server matches nothing with `$or` in a change stream (see the conformance module)."""
        match = {
            "operationType": {"$in": ["insert", "update"]},
            "fullDocument.targetWorker": {"$in": [ANY_WORKER, worker_id, None]},
            "fullDocument.pool": {"$in": [ANY_POOL, pool, None]},
        }
        return ChangeFeed(self.requests.collection, match, full_document=False, pace=pace,
                          busy_on_change=False, losses=self.server_losses)

    def process_feed(self) -> ChangeFeed:
        """Follows every change of process records (status, progress)."""
        match = {"operationType": {"$in": ["insert", "update", "replace"]}}
        return ChangeFeed(self.processes.collection, match, losses=self.server_losses)

    def end_run(
        self,
        record: ProcessRecord,
        status: ProcessStatus,
        progress: Progress | None = None,
        *,
        only_from_seen_state: bool = False,
        request: Request | None = None,
    ) -> ProcessRecord | None:
        """Record how a run ended, on the process record and in the run history (with the args
        and time of its launch request, when it ends without having started).

        only_from_seen_state: end it only if it is still in the state `record` was read in (a
        settlement by a reconciler must not end a run that has since started or moved on).
        Returns the record after the write, or None if it had already moved on.
        """
        ended = self.processes.finish(
            record.scope_id, record.process_id, record.run_id, status, progress or record.progress,
            sources=frozenset({record.state}) if only_from_seen_state else None,
        )
        # The record first: a writer killed between the two writes leaves the history entry
        # Running (the reconciler ends it from the record), never a record still Running for a
        # body that completed (a reconciler would hand it off, and run it again).
        if ended is not None or not only_from_seen_state:
            self.runs.ended(record.run_id, record.scope_id, record.process_id, status,
                            args=request.args if request else None,
                            requested_at=request.created_at if request else None,
                            launch_id=record.launch_id, attempt=max(1, record.attempt))
        if ended is not None and ended.queue:  # launches waited behind this run: the next starts
            self.schedule_queued(ended)
        schedule = record.launch.options.get("schedule")
        if ended is not None and status.state is State.FAILED and isinstance(schedule, str):
            self.schedules.pause_after_failure(schedule, f"paused: run {record.run_id} failed "
                                               f"({status.error or 'no error message'})")
        return ended

    def retry_run(self, record: ProcessRecord, ended: ProcessStatus, plan: RetryPlan) -> ProcessRecord | None:
        """Queue the next attempt of a launch whose attempt `record` ended (see shards.retries),
        if the record is still Running for that attempt; None when it has moved on (a stop came
        first: the caller ends the run instead). The request comes first, created at the time
        it may start: a record is never Scheduled without one, and a request whose record did
        not move is withdrawn (or, if that write is lost, starts nothing: its run is not the
        record's)."""
        retry_at = utcnow() + timedelta(seconds=plan.delay)
        request = Request(kind=RequestKind.LAUNCH, scope_id=record.scope_id, process_id=record.process_id,
                          run_id=plan.run_id, args=record.launch.args, options=record.launch.options,
                          pool=record.pool, created_at=retry_at, id=plan.run_id)
        # The attempt's history entry before the record moves on: once the record names the next
        # attempt nothing would ever end this entry, if the writer died between the two writes.
        # Only an open entry: a late settler (its read older than the attempt's end) must not
        # rewrite how the attempt ended; its move of the record is refused below.
        self.runs.ended(record.run_id, record.scope_id, record.process_id, ended,
                        launch_id=record.launch_id, attempt=max(1, record.attempt), if_open=True)
        return self._request_then_move(
            record, request, lambda: self.processes.retry(record, ended, plan, retry_at,
                                                          Progress(plan.message, 0.0)))

    def schedule_queued(self, record: ProcessRecord) -> ProcessRecord | None:
        """The run of `record` has ended: schedule the first launch waiting behind it. Its request
        comes first (named by the run id, so a repeat adds nothing): a record is never Scheduled
        without one, and a request whose record did not move is withdrawn. None: the record had
        moved on (another writer scheduled it, or a launch came first)."""
        head = record.queue[0]
        request = Request(kind=RequestKind.LAUNCH, scope_id=record.scope_id, process_id=record.process_id,
                          run_id=head.run_id, args=head.args, options=head.options, pool=record.pool,
                          id=head.run_id)
        return self._request_then_move(record, request, lambda: self.processes.schedule_queued(record))

    def _request_then_move(self, record: ProcessRecord, request: Request,
                           move: Callable[[], ProcessRecord | None]) -> ProcessRecord | None:
        """Queue the request of the run the record moves to, then move it (`move`: a guarded
        write). The request is named by its run id: one queued already (by an earlier try of this,
        or by another writer of the same move) is kept. If the record did not move, the request
        is withdrawn, but only if this call queued it and no record names its run: another writer
        may have moved the record to it, with this very request."""
        queued = False
        with contextlib.suppress(DuplicateKeyError):
            self.requests.submit(request)
            queued = True
        moved = move()
        if moved is None:
            current = self.processes.get(record.scope_id, record.process_id)
            if queued and (current is None or current.run_id != request.run_id):
                self.requests.withdraw_launch(request.run_id)
        return moved

    def end_unstarted(
        self, record: ProcessRecord, error: str = "", *, only_from_seen_state: bool = False,
        request: Request | None = None,
    ) -> ProcessRecord | None:
        """End a run no worker started: Stopped when it was withdrawn, Failed with the error
        that kept it from starting."""
        state = State.FAILED if error else State.STOPPED
        return self.end_run(record, ProcessStatus.ended(state, error=error),
                            only_from_seen_state=only_from_seen_state, request=request)

    @translated
    def ensure_indexes(self) -> None:
        for name, obsolete in OBSOLETE.items():
            present = set(self.database[name].index_information())
            for index_name in obsolete:
                if index_name in present:
                    self.database[name].drop_index(index_name)
        for name, indexes in INDEXES.items():
            for index_name, keys, unique in indexes:
                self.database[name].create_index(
                    [(key, ASCENDING) for key in keys], name=index_name, unique=unique
                )

    def close(self) -> None:
        self.client.close()


def connect(uri: str | None = None, *, timeout: float | None = None, check: bool = True) -> Store:
    """Connect and check the server answers; a clear one-line error otherwise (at once when a
    loopback URI has nothing listening). timeout: seconds, else $SHARDS_MONGO_TIMEOUT, else 5.
    check=False skips the check (the client connects on first use: a run's OS process, during
    an outage)."""
    uri = uri or default_uri()
    seconds = mongo_timeout(timeout)
    if check:
        check_loopback_listens(uri, redact(uri))
    losses = ServerLosses()
    try:
        client: MongoClient[Doc] = MongoClient(
            uri,
            event_listeners=[losses],
            tz_aware=True,
            appname="shards",
            serverSelectionTimeoutMS=int(seconds * 1000),
            connectTimeoutMS=int(seconds * 1000),
        )
        store = Store(client, client.get_default_database(DEFAULT_DATABASE), uri, losses)
        if check:
            client.admin.command("ping")
            store.sync_clock()
    except (PyMongoError, ValueError) as error:
        raise ShardsError(
            f"cannot reach MongoDB at {redact(uri)} within {seconds:g}s: {brief(error)} "
            f"(set SHARDS_MONGO_URI to a reachable server, or {TIMEOUT_ENV} for a slower one)"
        ) from error
    return store
