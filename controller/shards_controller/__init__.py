"""The controller API over the store: define, launch, stop, dismiss, get, list."""

from shards_controller.controller import Controller, matches, pool_summary
from shards_controller.inputs import check_args

__all__ = ["Controller", "check_args", "matches", "pool_summary"]
