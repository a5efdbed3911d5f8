"""Fresh windows in training sets: stream views aggregate `[floor(t,S) - W, t)` (PRODUCT §3).

The point-in-time join merges whole tiles, the batch window. A view over a stream source also
counts the events of its current slide that happened before t (the head), as a lookup at t
does (`featql.online.stream_cells`). `fresh_columns` computes those features for every spine
row with the semantics core's `stream_merge`, from the view's per-event rows
(`featql.dialects.events.lower_events`: its WHERE, joins and inputs, over the source's log,
which includes the events pushed or streamed into it): the tail's tiles folded per slide by
each function's `fold`, as the online cells fold them, and the head's exact events.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from featql.core.ir import FeatureView, Manifest
from featql.dialects.pit import ViewJoin
from featql.online import codec
from featql.online.stream_cells import function_of, plain_input
from featql.semantics.aggregates import partial_column
from featql.semantics.sql import US
from featql.semantics.time import floor
from featql.semantics.windows import stream_merge


def _events(engine: Any, manifest: Manifest, view: FeatureView
            ) -> dict[tuple[Any, ...], tuple[list[int], list[list[Any]]]]:
    from featql.dialects.events import EVENT_TS, input_column, lower_events

    table = engine.query(lower_events(manifest, view.name, "duckdb"))
    keys = [k.name for k in view.keys]
    table = table.sort_by([(k, "ascending") for k in keys] + [(EVENT_TS, "ascending")])
    key_cols = [table.column(k).to_pylist() for k in keys]
    times = [codec.to_micros(t) for t in table.column(EVENT_TS).to_pylist()]
    inputs = [[plain_input(v) for v in table.column(input_column(a.name)).to_pylist()]
              if input_column(a.name) in table.column_names else [1] * table.num_rows
              for a in view.aggregations]
    out: dict[tuple[Any, ...], tuple[list[int], list[list[Any]]]] = {}
    for i in range(table.num_rows):
        key = tuple(kc[i] for kc in key_cols)
        got = out.get(key)
        if got is None:
            got = out[key] = ([], [[] for _ in inputs])
        got[0].append(times[i])
        for k, col in enumerate(inputs):
            got[1][k].append(col[i])
    return out


def _tiles(cache: dict[tuple[Any, ...], tuple[list[int], dict[str, list[Any]]]],
           key: tuple[Any, ...], k: int, agg: Any, fn: Any, times: list[int],
           inputs: list[list[Any]], slide: int) -> tuple[list[int], dict[str, list[Any]]]:
    """One entity's tiles of one aggregation, folded from its events per slide by the
    function's own `fold`: the partials the online stream cells fold, so a training row and a
    lookup at the same t merge the same tiles."""
    got = cache.get((*key, agg.name))
    if got is not None:
        return got
    by_slide: dict[int, list[Any]] = {}
    ordered = getattr(fn, "ordered", False)
    for t, v in zip(times, inputs[k] if inputs else [], strict=False):
        by_slide.setdefault(floor(t, slide), []).append((t, v) if ordered else v)
    starts = sorted(by_slide)
    columns: dict[str, list[Any]] = {}
    for s in starts:
        for p, v in fn.fold(by_slide[s]).items():
            columns.setdefault(partial_column(agg.name, p), []).append(v)
    got = cache[(*key, agg.name)] = (starts, columns)
    return got


def fresh_columns(engine: Any, manifest: Manifest, view: FeatureView, join: ViewJoin,
                  keys: Sequence[Sequence[Any]], times: Sequence[int | None]
                  ) -> dict[str, list[Any]]:
    """The training columns (`<view>__<feature>`) of a stream aggregate view for spine rows
    (`keys[i]`, `times[i]` in µs; a NULL key or time gives the empty value: COUNT 0)."""
    events = _events(engine, manifest, view)
    slide = (view.slide_seconds or 1) * US
    aggs = {a.name: (k, a) for k, a in enumerate(view.aggregations)}
    tiles: dict[tuple[Any, ...], tuple[list[int], dict[str, list[Any]]]] = {}
    out: dict[str, list[Any]] = {}
    for f in join.features:
        k, a = aggs[f.aggregation or ""]
        fn = function_of(a)
        window = (f.window_seconds or 0) * US
        col: list[Any] = []
        for key, t in zip(keys, times, strict=True):
            if t is None or any(x is None for x in key):
                col.append(fn.empty)
                continue
            ev_times, ev_inputs = events.get(tuple(key), ([], []))
            starts, columns = _tiles(tiles, tuple(key), k, a, fn, ev_times, ev_inputs, slide)
            hi = floor(t, slide)
            i, j = bisect_left(ev_times, hi), bisect_left(ev_times, t)
            head = [(ev_times[x], ev_inputs[k][x]) for x in range(i, j)]
            col.append(stream_merge(fn, a.name, starts, columns, head, t, window, slide,
                                    f.type))
        out[f.column] = col
    return out


def replace_fresh(table: pa.Table, manifest: Manifest, root: Path, joins: Sequence[ViewJoin],
                  ts_col: str) -> pa.Table:
    """`table` (a training set, one row per spine row) with the columns of its stream
    aggregate views recomputed with the stream window, from the sources on DuckDB."""
    from featql.engines.duckdb import DuckDBEngine
    from featql.jobs.ingest import is_stream_view
    from featql.jobs.relations import register_upstream
    from featql.semantics.types import arrow_type

    fresh = [(j, v) for j in joins if (v := manifest.view(j.view)) is not None
             and v.kind == "aggregate" and is_stream_view(manifest, v)]
    if not fresh:
        return table
    engine = DuckDBEngine()
    try:
        registered: set[str] = set()
        ts = table.column(ts_col)
        if pa.types.is_timestamp(ts.type) and ts.type.tz is not None:
            ts = ts.cast(pa.timestamp(ts.type.unit))
        times = [None if t is None else codec.to_micros(t) for t in ts.to_pylist()]
        for join, view in fresh:
            register_upstream(engine, manifest, root, view.depends_on, registered)
            keys = list(zip(*(table.column(k).to_pylist() for k in join.keys), strict=True))
            cols = fresh_columns(engine, manifest, view, join, keys, times)
            for f in join.features:
                if f.column in table.column_names:
                    i = table.column_names.index(f.column)
                    table = table.set_column(i, f.column,
                                             pa.array(cols[f.column], arrow_type(f.type)))
    finally:
        engine.close()
    return table
