"""Durations (`'90d'`, `'1h'`, `'15m'`, `'1h30m'`) and start dates in decorator headers."""

from __future__ import annotations

import re
from datetime import date, datetime

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"(?:\d+[smhdw])+")


def parse_duration(text: str) -> int | None:
    """Seconds in a duration string, or None when it is not one (or is zero)."""
    t = text.strip().lower()
    if not _WHOLE.fullmatch(t):
        return None
    seconds = sum(int(n) * UNITS[u] for n, u in _PART.findall(t))
    return seconds or None


LIFETIME_SECONDS = 1000 * 365 * 86400
"""`windows = ['lifetime']`: a window of 1000 years (365,000 days), longer than any data a view
holds, so every rule of a window `[floor(t, S) - W, floor(t, S))` (the SQL frames, the online
read) applies unchanged and covers all events since the view's start. Written 'lifetime'."""


def format_duration(seconds: int) -> str:
    """The shortest duration string: 3600 → '1h', 5400 → '90m', 86400 * 7 → '7d'; the lifetime
    window → 'lifetime'."""
    if seconds == LIFETIME_SECONDS:
        return "lifetime"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_start(text: str) -> str | None:
    """A start date or timestamp in ISO form (normalised), or None when unparsable."""
    t = text.strip()
    try:
        if len(t) == 10:
            return date.fromisoformat(t).isoformat()
        return datetime.fromisoformat(t.replace("Z", "")).isoformat(sep=" ")
    except ValueError:
        return None
