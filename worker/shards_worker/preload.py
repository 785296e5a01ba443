"""Imported by the fork server of isolated runs before it forks any: the app is imported once
there, so each run's OS process starts as a cheap fork with the app already loaded."""

import contextlib
import os

from shards_worker.child import APP_ENV, app_for

if os.environ.get(APP_ENV):
    with contextlib.suppress(Exception):  # a run's process says what failed, in one line
        app_for(os.environ[APP_ENV])
