"""Running the operator: its store connection and mirror, and kopf on the main loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import kopf
from shards_controller import Controller
from shards_store import connect, upgrade

from shards_operator import metrics
from shards_operator.election import Elector, Leadership
from shards_operator.kube import SCHEDULE_KIND, SCHEDULES, KubePatcher, load_credentials
from shards_operator.leases import KubeLeases, default_lease_namespace
from shards_operator.log_service import LogService, serve_logs
from shards_operator.mirror import StatusMirror
from shards_operator.persistence import ArgsDigestDiffBaseStorage, allow_deep_bodies
from shards_operator.reconciler import start_reconciler
from shards_operator.reviews import KubeReviews
from shards_operator.settings import OperatorSettings
from shards_operator.shared import SHARED

log = logging.getLogger("shards.operator")

LOST_LEADERSHIP_EXIT = 75  # EX_TEMPFAIL: a restart makes it a standby


class ExpectedWaits(logging.Filter):
    """kopf reports a handler's TemporaryError at ERROR, and posts an Error Event for each retry;
    for Shards it is an expected wait whose reason is already in the Waiting condition, so it is
    logged at INFO (and never posted)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and "failed temporarily" in record.getMessage():
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    # Progress and the last handled spec live in annotations of our own prefix: the status
    # belongs to the mirror, and the CRD's status schema has no room for kopf's.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="shards.dev")
    settings.persistence.diffbase_storage = ArgsDigestDiffBaseStorage(
        prefix="shards.dev", key="last-handled-spec"
    )
    settings.persistence.finalizer = "shards.dev/stop-run"
    settings.posting.level = logging.WARNING  # Events are posted by the operator's own code
    settings.execution.max_workers = 16  # handlers block on MongoDB: let several run at once


def run_operator(settings: OperatorSettings) -> None:
    """Run until SIGTERM/SIGINT: with leader election, stand by until this replica holds the
    Lease, then lead; without it, lead at once."""
    from shards_operator import handlers  # noqa: F401 - registers the handlers with kopf

    allow_deep_bodies()  # before any thread starts: a tenant's deep args must not stop the watch
    load_credentials()
    logging.getLogger("kopf.objects").addFilter(ExpectedWaits())
    # One access line per probe of the health endpoint (every few seconds) would bury the log.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    SHARED.settings = settings
    SHARED.controller = Controller(connect(settings.mongo_uri))
    upgrade(SHARED.controller.store)  # what an older release left, brought up to this one
    if settings.metrics_port:
        metrics.register_pool_census(SHARED.controller.store)
    if settings.logs_port:  # every replica serves logs: a read needs no leadership
        serve_logs(LogService(SHARED.controller, KubeReviews(), settings.grants), settings.logs_address,
                   settings.logs_port, settings.logs_tls_cert, settings.logs_tls_key)
    stop = StopSignal()
    stop.install()
    if settings.leader_election:
        elect_then_lead(settings, stop)
    else:
        metrics.LEADER.set(1)
        lead(settings, stop)


def lead(settings: OperatorSettings, stop: StopSignal) -> None:
    """What only the leader runs, until SIGTERM/SIGINT (or `stop`): the status mirror on a thread,
    kopf (the handlers) on the main loop; then the last statuses are flushed."""
    SHARED.mirror = StatusMirror(SHARED.controller, KubePatcher(), settings.status_interval)
    SHARED.schedules = KubePatcher(SCHEDULES, SCHEDULE_KIND)
    mirror_stop = threading.Event()
    mirror = threading.Thread(target=SHARED.mirror.run, args=(mirror_stop,), name="shards-mirror",
                              daemon=True)
    mirror.start()
    reconciler = start_reconciler(SHARED.controller.store, mirror_stop)  # stranded records, with no worker

    @kopf.on.startup()
    def _startup(settings: kopf.OperatorSettings, **_: object) -> None:
        configure_kopf(settings)

    try:
        asyncio.run(run_kopf(settings, stop))
    finally:
        stop.install()  # asyncio gave SIGTERM back its default action when its loop closed
        mirror_stop.set()
        mirror.join(timeout=10)
        reconciler.join(timeout=10)
        SHARED.mirror.close()  # the last statuses land before the process goes
        log.info("shards.operator: stopped")


async def run_kopf(settings: OperatorSettings, stop: StopSignal) -> None:
    """kopf until SIGTERM/SIGINT (its own handlers), or `stop` set before they were installed
    (the signal came as this replica began to lead): then kopf is cancelled, which stops it
    gracefully. Not kopf's stop_flag: its waiter task outlives a signal and holds kopf's exit 5 s."""
    stopped = asyncio.create_task(stop.bind(asyncio.get_running_loop()).wait())  # before kopf: not its task
    operator = asyncio.create_task(kopf.operator(
        standalone=True,  # the Lease (when on) decides who runs: no kopf peering
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness or None,
    ))
    await asyncio.wait({stopped, operator}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not operator.done():
        operator.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await operator


def elect_then_lead(settings: OperatorSettings, stop: StopSignal) -> None:
    """Stand by (answering the health endpoint, so a rolling update sees this replica Ready) until
    this replica holds the Lease; lead while renewing it; release it once kopf and the mirror
    have stopped, so a standby takes over at its next try. A leader that cannot renew within the
    renew deadline exits at once (Kubernetes restarts it as a standby), before the Lease expires."""
    namespace = settings.lease_namespace or default_lease_namespace()
    identity = settings.identity or default_identity()
    elector = Elector(KubeLeases(settings.lease_name, namespace), identity, clock=time.monotonic)
    log.info("shards.operator: leader election on lease %s/%s as %s", namespace, settings.lease_name,
             identity)
    with StandbyHealth(settings.liveness):
        if not elector.acquire(stop.event):
            log.info("shards.operator: stopped while standing by")
            return
    metrics.LEADER.set(1)
    leadership = Leadership(elector, on_lost=exit_lost_leadership)
    leadership.start()
    try:
        lead(settings, stop)
    finally:
        leadership.stop()
        elector.release()
        metrics.LEADER.set(0)


def exit_lost_leadership() -> None:
    """client-go's OnStoppedLeading: no handler, mirror or flush may act once the Lease may be
    another's. The process ends now; Kubernetes restarts the container, which stands by."""
    log.critical("shards.operator: leadership lost: exiting so that another replica can lead")
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(LOST_LEADERSHIP_EXIT)


def default_identity() -> str:
    """The pod's name (or this host's), and a random part: a restarted container is a new candidate."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class StopSignal:
    """SIGTERM/SIGINT as a flag that both the standby loop (a threading.Event) and kopf (an
    asyncio.Event on its loop) see, whenever the signal arrives."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._flags: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("shards.operator: %s received", signal.Signals(signum).name)
        self.set()

    def set(self) -> None:
        self.event.set()
        for loop, flag in self._flags:
            loop.call_soon_threadsafe(flag.set)

    def bind(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        flag = asyncio.Event()
        self._flags.append((loop, flag))
        if self.event.is_set():
            flag.set()
        return flag


class StandbyHealth:
    """The health endpoint of a standby (kopf, which serves it while leading, is not running):
    200 on the liveness URL's port and path, from a thread, until the block ends."""

    def __init__(self, url: str) -> None:
        self.url = urlsplit(url) if url else None
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> StandbyHealth:
        if self.url is None:
            return self
        path = self.url.path or "/"

        class Health(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                known = self.path.split("?")[0] == path
                body = b'{"standby": true}' if known else b"not found"
                self.send_response(200 if known else 404)
                self.send_header("Content-Type", "application/json" if known else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:  # probes are not news
                pass

        self._server = ThreadingHTTPServer((self.url.hostname or "", self.url.port or 80), Health)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="shards-standby-health", daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:  # kopf binds the same port next
            self._server.shutdown()
            self._server.server_close()
