"""The controller API over the store: define, launch, stop, dismiss, get, list."""

from shards_controller.controller import Controller, check_args, matches, pool_summary

__all__ = ["Controller", "check_args", "matches", "pool_summary"]
