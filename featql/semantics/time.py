"""Tile time: `floor(t, S)` and the window boundaries (PRODUCT §3), in Python and SQL.

Times are integers (microseconds or seconds since 1970-01-01, naive UTC); a slide S is a
positive number of seconds. `floor(t, S)` rounds *down* to a multiple of S counted from the
epoch (also before 1970: 1969-12-31 23:30 floors to 23:00 for a one-hour slide).

A window W (a multiple of S) at time t covers, half-open:
- batch views:  `[floor(t,S) - W, floor(t,S))`: whole tiles only, what the online store holds
  after the last materialization;
- stream views: `[floor(t,S) - W, t)`: the same tiles (the *tail*) plus the exact *head* of raw
  events in `[floor(t,S), t)` (see `featql.semantics.windows.stream_merge`).
A tile starting at `s` holds events in `[s, s + S)`; a window merges the tiles with
`lo <= s < floor(t,S)`.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections.abc import Sequence

from featql.semantics.sql import US

_EPOCH = dt.datetime(1970, 1, 1)


def floor(t: int, slide: int) -> int:
    """floor(t, S) for integers in one unit (`slide` > 0): Python's `%` is never negative."""
    return t - t % slide


def floor_us(t_us: int, slide_seconds: int) -> int:
    """floor(t, S) of a time in microseconds, S in seconds."""
    return floor(t_us, slide_seconds * US)


def floor_s(t_us: int, slide_seconds: int) -> int:
    """floor(t, S) in epoch seconds of a time in microseconds (where a lookup's windows end)."""
    return floor(t_us // US, slide_seconds)


def floor_datetime(t: dt.datetime, slide_seconds: int) -> dt.datetime:
    """floor(t, S) of a naive-UTC datetime."""
    return t - (t - _EPOCH) % dt.timedelta(seconds=slide_seconds)


def batch_window(t: int, window: int, slide: int) -> tuple[int, int]:
    """[lo, hi) of a batch view's window at t (all in one unit)."""
    hi = floor(t, slide)
    return hi - window, hi


def stream_window(t: int, window: int, slide: int) -> tuple[int, int]:
    """[lo, hi) of a stream view's window at t: the batch window's tiles and then `[floor, t)`."""
    return floor(t, slide) - window, t


def tile_range(starts: Sequence[int], lo: int, hi: int) -> tuple[int, int]:
    """[i, j): the tiles (ascending `starts`) with `lo <= start < hi`."""
    j = bisect_left(starts, hi)
    return bisect_left(starts, lo, 0, j), j


# -- SQL -------------------------------------------------------------------------------------------
def floor_offset_sql(dialect: str, us: str, step_us: int) -> str:
    """`- (us mod step)` with a non-negative modulo: `us <it>` is floor(us, step).

    DuckDB's `%` keeps the sign of the dividend (`-7 % 2 = -1`), hence `(x % d + d) % d`;
    Spark's PMOD is the non-negative modulo."""
    if dialect == "spark":
        return f"- PMOD({us}, {step_us})"
    return f"- ({us} % {step_us} + {step_us}) % {step_us}"


def floor_us_sql(dialect: str, us: str, slide_seconds: int) -> str:
    """floor(us, S) as an integer SQL expression over epoch microseconds `us`."""
    return f"({us} {floor_offset_sql(dialect, us, slide_seconds * US)})"
