"""Shards' MongoDB layer: the only package that imports pymongo."""

from shards_store.changes import ChangeFeed, ChangeFeedError, PollPace
from shards_store.store import Store, connect, default_uri, redact

__all__ = ["ChangeFeed", "ChangeFeedError", "PollPace", "Store", "connect", "default_uri", "redact"]
