"""A brute-force oracle of the stream window: every event of the entity in
`[floor(t,S) - W, t)` that passes the view's WHERE, aggregated from scratch."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import Counter
from typing import Any

from featql.semantics.aggregates import FUNCTIONS


def floor_us(t: int, slide_us: int) -> int:
    return t - t % slide_us


def aggregate(function: str, values: list[Any], call_args: tuple[Any, ...] = (),
              agg: Any = None) -> Any:
    """The value of one aggregate function over the raw inputs of a window (None = NULL)."""
    present = [v for v in values if v is not None]
    if function == "count":
        return len(present)
    if function == "count_star":
        return len(values)
    if not present:
        return FUNCTIONS[function].empty  # NULL for every function but COUNT
    if function == "sum":
        return math.fsum(present)
    if function == "avg":
        return math.fsum(present) / len(present)
    if function == "min":
        return min(present)
    if function == "max":
        return max(present)
    if function in ("stddev_samp", "var_samp"):
        if len(present) < 2:
            return None
        var = statistics.variance(present)
        return math.sqrt(var) if function == "stddev_samp" else var
    if function in ("stddev_pop", "var_pop"):
        var = statistics.pvariance(present)
        return math.sqrt(var) if function == "stddev_pop" else var
    if function == "last_n":
        return list(reversed(present))[:call_args[0]]
    if function == "first_n":
        return present[:call_args[0]]
    if function == "last_distinct_n":
        return list(dict.fromkeys(reversed(present)))[:call_args[0]]
    if function == "first_distinct_n":
        return list(dict.fromkeys(present))[:call_args[0]]
    if function == "top_k":
        counts = Counter(present)  # most frequent first, ties by the smaller value
        return [v for v, _ in sorted(counts.items(), key=lambda e: (-e[1], e[0]))][:call_args[0]]
    if function == "approx_count_distinct":
        return len(set(present))
    # a sketch (APPROX_PERCENTILE) or a function this oracle does not know: its value over the
    # window's raw inputs as one tile (small sketches keep every item: exact here)
    from featql.online.stream_cells import function_of

    assert agg is not None, function
    from featql.semantics.aggregates import ListWindow, partial_column

    fn = function_of(agg)
    tile = {partial_column(agg.name, p): [v] for p, v in fn.fold(present).items()}
    return fn.finalize(fn.merge(ListWindow(tile, 0, 1), agg.name), agg.type)


def window_events(events: list[dict[str, Any]], user: int, t: dt.datetime, window_s: int,
                  slide_s: int) -> list[dict[str, Any]]:
    """The user's events in [floor(t,S) - W, t) passing `kind <> 'test'` (NULL kind: dropped),
    in event-time order (then event id: the order ties are pushed in)."""
    from featql.online.codec import to_micros

    t_us = to_micros(t)
    lo = floor_us(t_us, slide_s * 1_000_000) - window_s * 1_000_000
    out = [e for e in events if e["user_id"] == user and e["kind"] is not None
           and e["kind"] != "test" and lo <= to_micros(e["ts"]) < t_us]
    return sorted(out, key=lambda e: (e["ts"], e["event_id"]))
