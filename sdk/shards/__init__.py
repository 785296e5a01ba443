"""Shards: named background processes for applications, run by horizontally scaled workers.

Application code imports only this package; it has no dependency on MongoDB or Kubernetes.
"""

from shards.app import App, ProcessDefinition, process
from shards.context import ProcessContext, ProcessStopped
from shards.errors import (
    ChildProcessFailed,
    ConfirmationRequired,
    InvalidArgs,
    InvalidDefinition,
    NotActive,
    Permanent,
    ProcessActive,
    ShardsError,
    UnknownProcess,
    UnknownScope,
)
from shards.records import ProcessRecord, Progress, RunRecord
from shards.states import State

__all__ = [
    "App",
    "ChildProcessFailed",
    "ConfirmationRequired",
    "InvalidArgs",
    "InvalidDefinition",
    "NotActive",
    "Permanent",
    "ProcessActive",
    "ProcessContext",
    "ProcessDefinition",
    "ProcessRecord",
    "ProcessStopped",
    "Progress",
    "RunRecord",
    "ShardsError",
    "State",
    "UnknownProcess",
    "UnknownScope",
    "process",
]
