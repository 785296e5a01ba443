"""How long ago (or how soon) a moment is, as kubectl shows ages: 45s, 3m2s, 15m, 2h3m, 10h, 3d4h.

Relative ages mean the same in every time zone; `-o json` carries the exact UTC times."""

from __future__ import annotations

from datetime import datetime


def age(seconds: float) -> str:
    """A duration the way kubectl's AGE column writes it: precise when short, coarse when long."""
    s = max(0, int(seconds))
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def ago(moment: datetime | None, now: datetime) -> str:
    """'3m2s ago', or 'in 4s' for a moment still to come; '?' when unknown."""
    if moment is None:
        return "?"
    seconds = (now - moment).total_seconds()
    return f"{age(seconds)} ago" if seconds >= 0 else f"in {age(-seconds)}"
