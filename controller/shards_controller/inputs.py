"""What callers hand the controller, checked before anything is written: ids, process
arguments and a launch's own limits. Every error is one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from shards.app import check_timeout, is_valid_id
from shards.errors import InvalidArgs, InvalidDefinition, ShardsError
from shards.records import iso, utcnow
from shards.retries import check_backoff, check_retries

MAX_ARGS_BYTES = 64 * 1024
MAX_ARGS_DEPTH = 32  # levels of objects and arrays: far inside what every server stores
INT64 = range(-(2**63), 2**63)


def check_args(args: Any) -> dict[str, Any]:
    """Process arguments are a JSON object of bounded size and depth that every MongoDB server
    stores as given: whatever a server would reject is refused here, before any write."""
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise InvalidArgs(f"process arguments must be a JSON object, got {type(args).__name__}")
    _check_values(args)
    try:
        encoded = json.dumps(args, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidArgs(f"process arguments are not JSON-compatible: {error}") from error
    if len(encoded) > MAX_ARGS_BYTES:
        raise InvalidArgs(f"process arguments are {len(encoded)} bytes; the limit is {MAX_ARGS_BYTES}")
    parsed: dict[str, Any] = json.loads(encoded)
    return parsed


def _check_values(args: dict[str, Any]) -> None:
    """Depth, keys and numbers, walked without recursion (any depth gives a clear error)."""
    pending: list[tuple[Any, int]] = [(args, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list) and depth > MAX_ARGS_DEPTH:
            raise InvalidArgs(f"process arguments nest more than {MAX_ARGS_DEPTH} levels deep")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidArgs(f"process argument keys must be strings, got {key!r}")
                if key.startswith("$") or "." in key or "\x00" in key:
                    raise InvalidArgs(f"process argument key {key[:40]!r} may not start with '$' "
                                      "or contain '.' or a NUL character")
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, int) and not isinstance(value, bool) and value not in INT64:
            raise InvalidArgs(f"process argument {str(value)[:40]} does not fit in 64 bits")


def check_id(kind: str, value: str) -> str:
    if not is_valid_id(value):
        raise ShardsError(f"invalid {kind} id {value!r}: use letters, digits, '_', '.', ':', '-' "
                          "(at most 200, starting with a letter or digit)")
    return value


def launch_options(timeout: float | None, retries: int | None, retry_backoff: float | None) -> dict[str, Any]:
    """A launch's own limits, checked; what it leaves out comes from the process's definition."""
    options: dict[str, Any] = {}
    try:
        if timeout is not None:
            options["timeout"] = check_timeout(timeout)
        if retries is not None:
            options["retries"] = check_retries(retries)
        if retry_backoff is not None:
            options["retryBackoff"] = check_backoff(retry_backoff)
    except InvalidDefinition as error:
        raise InvalidArgs(str(error)) from None
    return options


MAX_DELAY = timedelta(days=366)  # a delayed launch starts within this


def check_start_at(at: datetime | None) -> datetime | None:
    """When a delayed launch may start (UTC), or None to start now (also for a past time)."""
    if at is None:
        return None
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise ShardsError(f"a launch's start time must be a datetime with a time zone, got {at!r}")
    now = utcnow()
    if at - now > MAX_DELAY:
        raise ShardsError(f"a launch may start at most {MAX_DELAY.days} days ahead, got {iso(at)}")
    return at.astimezone(UTC) if at > now else None
