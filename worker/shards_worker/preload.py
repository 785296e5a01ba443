"""Imported by the fork server of isolated runs before it forks any: the app is imported once
there, so each run's OS process starts as a cheap fork with the app already loaded. What the
import logs is logged as the worker logs."""

import contextlib
import os

from shards.errors import ShardsError

from shards_worker import logs
from shards_worker.run_process import APP_ENV, LOG_ENV, app_for

with contextlib.suppress(ShardsError):  # a bad value: the run's process configures its own
    level, _, fmt = os.environ.get(LOG_ENV, "info:text").partition(":")
    logs.configure_logging(level, fmt)

if os.environ.get(APP_ENV):
    with contextlib.suppress(Exception):  # a run's process says what failed, in one line
        app_for(os.environ[APP_ENV])
