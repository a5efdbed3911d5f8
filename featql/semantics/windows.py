"""The Python merge of a window: batch (whole tiles) and stream (tiled tail + exact head).

`batch_merge` is what the online read computes from a view's tiles at a time t;
`stream_merge` is the stream rule of PRODUCT §3, `[floor(t,S) - W, t)`: the tiles of
`[floor(t,S) - W, floor(t,S))` (the tail, every one complete) merged with the partials of the
raw events in `[floor(t,S), t)` (the head, folded exactly at read time). Times, tile starts,
windows and slides are integers in one unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from featql.semantics.aggregates import AggregateFunction, ListWindow, partial_column
from featql.semantics.time import batch_window, floor, stream_window, tile_range


def batch_merge(fn: AggregateFunction, aggregation: str, starts: Sequence[int],
                columns: Mapping[str, Sequence[Any]], t: int, window: int, slide: int,
                result_type: str) -> Any:
    """The value of one aggregation over `[floor(t,S) - W, floor(t,S))`; `columns`: partial
    columns by name (None = NULL), row i is the tile starting at `starts[i]` (ascending)."""
    lo, hi = batch_window(t, window, slide)
    i, j = tile_range(starts, lo, hi)
    if i == j:
        return fn.empty
    return fn.finalize(fn.merge(ListWindow(columns, i, j), aggregation), result_type)


def stream_merge(fn: AggregateFunction, aggregation: str, starts: Sequence[int],
                 columns: Mapping[str, Sequence[Any]], head: Sequence[tuple[int, Any]], t: int,
                 window: int, slide: int, result_type: str) -> Any:
    """The value over `[floor(t,S) - W, t)`: tiles with `floor(t,S) - W <= start < floor(t,S)`
    plus the head events `(time, input value)` with `floor(t,S) <= time < t` (others are
    ignored: earlier ones are in the tiles, later ones are not yet). For COUNT(*) an event's
    value is any non-NULL marker."""
    lo, _ = stream_window(t, window, slide)
    hi = floor(t, slide)
    i, j = tile_range(starts, lo, hi)
    # an `ordered` function (LAST_N) folds (time, value) pairs
    values = [(ts, v) if fn.ordered else v for ts, v in head if hi <= ts < t]
    if i == j and not values:
        return fn.empty
    folded = fn.fold(values)
    merged: dict[str, list[Any]] = {}
    for p in folded:
        col = partial_column(aggregation, p)
        merged[col] = [*columns.get(col, ())[i:j], folded[p]]
    return fn.finalize(fn.merge(ListWindow(merged, 0, j - i + 1), aggregation), result_type)
