"""Shards' MongoDB layer: the only package that imports pymongo."""

from shards_store.changes import ChangeFeed, ChangeFeedError, PollPace
from shards_store.store import Store, connect, default_uri, redact
from shards_store.upgrade import Upgraded, upgrade

__all__ = ["ChangeFeed", "ChangeFeedError", "PollPace", "Store", "Upgraded", "connect", "default_uri",
           "redact", "upgrade"]
