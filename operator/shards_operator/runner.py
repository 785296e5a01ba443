"""Running the operator: its store connection and mirror, and kopf on the main loop."""

from __future__ import annotations

import asyncio
import logging
import threading

import kopf
from shards_controller import Controller
from shards_store import connect

from shards_operator import metrics
from shards_operator.kube import KubePatcher, load_credentials
from shards_operator.mirror import StatusMirror
from shards_operator.persistence import ArgsDigestDiffBaseStorage, allow_deep_bodies
from shards_operator.settings import OperatorSettings
from shards_operator.shared import SHARED

log = logging.getLogger("shards.operator")


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
    """Run until SIGTERM/SIGINT: the status mirror on a thread, kopf on the main loop."""
    from shards_operator import handlers  # noqa: F401 - registers the handlers with kopf

    allow_deep_bodies()  # before any thread starts: a tenant's deep args must not stop the watch
    load_credentials()
    logging.getLogger("kopf.objects").addFilter(ExpectedWaits())
    # One access line per probe of the health endpoint (every few seconds) would bury the log.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    SHARED.settings = settings
    SHARED.controller = Controller(connect(settings.mongo_uri))
    if settings.metrics_port:
        metrics.register_pool_census(SHARED.controller.store)
    SHARED.mirror = StatusMirror(SHARED.controller, KubePatcher(), settings.status_interval)
    stop = threading.Event()
    mirror = threading.Thread(target=SHARED.mirror.run, args=(stop,), name="shards-mirror", daemon=True)
    mirror.start()

    @kopf.on.startup()
    def _startup(settings: kopf.OperatorSettings, **_: object) -> None:
        configure_kopf(settings)

    try:
        asyncio.run(kopf.operator(
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=settings.liveness or None,
        ))
    finally:
        stop.set()
        mirror.join(timeout=10)
        SHARED.mirror.flush(force=True)  # the last statuses land before the process goes
        log.info("shards.operator: stopped")
