"""`shards worker`'s flags default to WorkerSettings' defaults (the CLI keeps its own literals so
that `shards --help` imports no worker code): one default, one meaning."""

from __future__ import annotations

import inspect

import pytest
from shards_cli.servers import worker
from shards_worker import WorkerSettings

FLAGS = {"lease": "lease", "heartbeat": "heartbeat_interval", "progress_interval": "progress_interval",
         "shutdown_grace": "shutdown_grace", "concurrency": "concurrency", "sweep_interval": "sweep_interval",
         "poll_interval": "poll_interval", "claim_stagger": "claim_stagger", "stop_grace": "stop_grace",
         "stream_poll_min": "stream_poll_min", "stream_poll_max": "stream_poll_max"}


@pytest.mark.parametrize(("flag", "field"), sorted(FLAGS.items()))
def test_a_worker_flag_defaults_to_the_settings_default(flag: str, field: str) -> None:
    default = inspect.signature(worker).parameters[flag].default
    assert default == getattr(WorkerSettings(), field)
