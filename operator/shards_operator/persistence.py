"""What the operator keeps of a resource outside its status, and what it must be able to read.

A tenant's `spec.args` is any JSON object the API server stores: up to 10,000 levels deep and
up to its request size (a few MiB). Two things follow:

- kopf decodes every watch event with `json.loads`, which recurses once per level: the
  operator raises Python's recursion limit (and makes sure the C stack of every thread holds
  that depth) before anything starts, so a deep resource is decoded, then refused (InvalidArgs)
  like any other bad args, and never stops the watch.
- kopf's diff base (the last handled spec) is kept in an annotation, and all of a resource's
  annotations share 256 KiB: a copy of large args there makes every later patch fail (the
  finalizer could never be removed). The diff base keeps a digest of args instead, so a change
  of args alone is still a change of spec.
"""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import sys
import threading
from collections.abc import Iterable
from typing import Any, cast

import kopf

API_SERVER_DEPTH = 10_000  # nesting levels the API server accepts in a JSON body
# Recursion the operator allows: a decode of the deepest body the API server stores (one level
# per nesting) on top of the stack of whatever decodes it, and a copy of it (two per level).
RECURSION_LIMIT = 3 * API_SERVER_DEPTH
# C stack every thread gets: a 10,000-level decode, encode and copy were measured to need under
# 4 MiB (Python 3.11); four times that leaves room for the frames below them.
THREAD_STACK = 16 * 1024 * 1024
ARGS_DIGEST = "sha256:"

log = logging.getLogger("shards.operator")


def allow_deep_bodies() -> None:
    """Let any thread the operator starts from now on, and the main thread, decode, copy and
    encode a body as deep as the API server stores. Call before any thread starts."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    threading.stack_size(max(threading.stack_size(), THREAD_STACK))
    # The main thread's stack grows on demand up to the soft limit (8 MiB on most systems).
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if soft != resource.RLIM_INFINITY and soft < THREAD_STACK:
        wanted = THREAD_STACK if hard == resource.RLIM_INFINITY else min(THREAD_STACK, hard)
        resource.setrlimit(resource.RLIMIT_STACK, (wanted, hard))
    try:  # Python 3.12+ bounds the C decoder by a recursion limit of its own, which no call raises
        json.loads("[" * API_SERVER_DEPTH + "]" * API_SERVER_DEPTH)
    except RecursionError:
        log.warning("shards.operator: this Python cannot decode a body %d levels deep: a resource "
                    "that deep stops the watch (Python 3.11 can)", API_SERVER_DEPTH)


def args_digest(value: Any) -> str:
    """A digest of a JSON value that tells any two different values apart (keys in sorted order),
    computed without recursion, so it holds for any depth."""
    digest = hashlib.sha256()
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, _Token):
            digest.update(item.text)
        elif isinstance(item, dict):
            digest.update(b"{")
            pending.append(_CLOSE_OBJECT)
            for key in sorted(item, reverse=True):  # popped in sorted order
                pending.extend((item[key], _Token(json.dumps(str(key)).encode() + b":")))
        elif isinstance(item, list):
            digest.update(b"[")
            pending.append(_CLOSE_ARRAY)
            for element in reversed(item):
                pending.extend((element, _COMMA))
        else:
            digest.update(json.dumps(item).encode() + b";")
    return ARGS_DIGEST + digest.hexdigest()


class _Token:
    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text


_CLOSE_OBJECT, _CLOSE_ARRAY, _COMMA = _Token(b"}"), _Token(b"]"), _Token(b",")


def with_args_digested(raw: dict[str, Any]) -> dict[str, Any]:
    """The body (or essence) with `spec.args` replaced by its digest; the rest shared, not copied."""
    spec = raw.get("spec")
    if not isinstance(spec, dict) or "args" not in spec:
        return raw
    args = spec["args"]
    if isinstance(args, str) and args.startswith(ARGS_DIGEST):
        return raw  # digested already
    return {**raw, "spec": {**spec, "args": args_digest(args)}}


class ArgsDigestDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation diff base, with `spec.args` kept as a digest (see the module's doc)."""

    def build(self, *, body: kopf.Body,
              extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        digested = kopf.Body(cast(kopf.RawBody, with_args_digested(cast(dict[str, Any], dict(body)))))
        return super().build(body=digested, extra_fields=extra_fields)

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        essence = super().fetch(body=body)
        if essence is None:
            return None
        # A base stored before this storage (args in full) reads as digested: no false change.
        return cast(kopf.BodyEssence, with_args_digested(cast(dict[str, Any], essence)))
