"""Defining a scope: write the catalog the app gives for it into process records."""

from __future__ import annotations

import logging

from shards.app import App
from shards.requests import Request
from shards_store import Store

from shards_worker.failures import error_line

log = logging.getLogger("shards.worker")


def define_scope(store: Store, app: App, request: Request, worker_id: str) -> None:
    """Handle a define request: only_if_missing skips a defined scope; clean drops idle records
    first; records of processes no longer in the catalog are removed unless active."""
    scope_id, request_id = request.scope_id, str(request.id)
    existing = store.scopes.get(scope_id)
    if request.options.get("onlyIfMissing") and existing is not None and existing.state == "Defined":
        store.scopes.acknowledge(scope_id, request_id)
        store.requests.complete(request)
        return
    try:
        catalog = app.catalog(app.scope_data(scope_id))
    except Exception as error:  # the app's catalog code failed: report it, keep serving
        message = error_line(error)
        log.warning("define of scope %s failed: %s", scope_id, message)
        store.scopes.defined(
            scope_id, process_ids=[], request_id=request_id, worker_id=worker_id, error=message
        )
        store.requests.complete(request)
        return
    if request.options.get("clean"):
        store.processes.remove_idle(scope_id)
    for process_id, definition in catalog.items():
        store.processes.define(scope_id, process_id, definition.to_fields())
    removed = store.processes.remove_idle(scope_id, keep=list(catalog))
    store.scopes.defined(
        scope_id, process_ids=list(catalog), request_id=request_id, worker_id=worker_id
    )
    store.requests.complete(request)
    log.info("defined scope %s: %d processes, %d removed", scope_id, len(catalog), removed)
