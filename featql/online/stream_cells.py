"""Aggregate cells kept fresh by pushed or streamed events: tiles for the tail, exact events for
the head (PRODUCT §3, the stream window `[floor(t,S) - W, t)`).

A cell written by the push path (`featql.jobs.ingest`) holds, for one entity of one aggregate
view (`FQS1`, then orjson):

    {"k": kept_from | null, "s": [tile starts], "c": {partial column: [values]},
     "e": [[event_us, [input per aggregation]], ...]}

- tiles (`s`, `c`): partials per slide start (epoch seconds, ascending), as the tile stage
  computes them (NULL as null; bytes partials tagged `{"$b": base64}`): the tiles a load wrote
  (`featql.jobs.online_load`) and the events folded when the cell was compacted;
- events (`e`): raw events not folded yet, by event time (microseconds), each with the input
  value of every aggregation (COUNT(*): 1). They are the exact head of a window and are folded
  per slide on read, by the semantics core's `stream_merge` (which folds and merges exactly as
  the tile stage and the batch merge do);
- `k`: the oldest slide start the cell is complete from (older tiles were dropped or never
  loaded); a window starting before it is refused (`IncompleteWindow`), never guessed.

A lookup at t merges `[floor(t,S) - W, floor(t,S))` from the tiles plus the events of those
slides, and adds the events in `[floor(t,S), t)`: a training-set row at t over the same events
gives the same value (`featql.jobs.fresh`). A lookup at a t inside a slide whose events were
already folded into a tile cannot split that tile and is refused too.
"""

from __future__ import annotations

import base64
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

from featql.core.ir import Aggregation, FeatureView
from featql.semantics.aggregates import (
    FUNCTIONS,
    AggregateFunction,
    partial_column,
    partial_columns,
)
from featql.semantics.sql import US
from featql.semantics.time import floor
from featql.semantics.windows import stream_merge

MAGIC = b"FQS1"
COMPACT_AT = 256  # raw events per cell before the complete slides are folded into tiles


def function_of(agg: Aggregation) -> AggregateFunction:
    """The aggregation's function bound to its constant arguments (LAST_N's n), when the
    semantics core binds them; APPROX_COUNT_DISTINCT folding DuckDB's sketch keys."""
    fn = FUNCTIONS[agg.function]
    bind = getattr(fn, "bind", None)
    args = getattr(agg, "args", ())
    fn = bind(tuple(args)) if bind is not None and args else fn
    return cast(AggregateFunction, _DuckKeys(fn)) \
        if agg.function == "approx_count_distinct" else fn


class _DuckKeys:
    """APPROX_COUNT_DISTINCT over the event stage's inputs on DuckDB (the push path's and the
    fresh training columns' engine): each is the value as kind-tagged text
    (`featql.semantics.sketches.key_sql`), which the tile stage's `featql_hll_build` parses
    back before hashing. Folded here the same way, so that a tile folded from events and one
    the tile stage built (a load's) hash a value alike and their union counts it once."""

    def __init__(self, fn: AggregateFunction):
        self._fn = fn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fn, name)

    def fold(self, values: Sequence[Any]) -> dict[str, Any]:
        from featql.semantics.sketches import _tagged

        return self._fn.fold([_tagged(v) if isinstance(v, str) and v[:1] in "ids" else v
                              for v in values])


@dataclass
class StreamCell:
    """The decoded cell (see the module doc); `starts` in epoch seconds, events in µs."""

    starts: list[int]
    columns: dict[str, list[Any]]
    events: list[tuple[int, list[Any]]]
    kept_from: int | None = None
    hi: int | None = None  # the end of the tiles a load wrote (epoch seconds), if any
    batch: bool = False  # read with the batch window (a view over a batch-only source)


def plain_input(value: Any) -> Any:
    """An event's input value as stored in a cell and folded: DuckDB's DECIMAL (a literal
    such as `1.0` in a CASE) as a float, the way the tile stage's casts and sums see it."""
    from decimal import Decimal

    return float(value) if isinstance(value, Decimal) else value


def is_stream_cell(payload: bytes) -> bool:
    return payload[:4] == MAGIC


def _tag(v: Any) -> Any:
    if isinstance(v, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(v)).decode()}
    raise TypeError(f"cannot store {type(v).__name__} in a stream cell")


def _untag(v: Any) -> Any:
    if isinstance(v, dict) and "$b" in v:
        return base64.b64decode(v["$b"])
    return v


def encode(cell: StreamCell) -> bytes:
    body = {"k": cell.kept_from, "h": cell.hi, "b": cell.batch, "s": cell.starts,
            "c": cell.columns, "e": [[t, list(v)] for t, v in cell.events]}
    return MAGIC + orjson.dumps(body, default=_tag)


def decode(payload: bytes) -> StreamCell:
    body = orjson.loads(payload[4:])
    columns = {c: [_untag(v) for v in vals] for c, vals in body["c"].items()}
    return StreamCell(list(body["s"]), columns, [(int(t), v) for t, v in body["e"]],
                      body.get("k"), body.get("h"), bool(body.get("b")))


def from_tiles(view: FeatureView, starts: Sequence[int], columns: Mapping[str, Sequence[Any]],
               kept_from: int | None) -> StreamCell:
    """A stream cell from tiles decoded out of a load's packed cell (NaN min/max: NULL)."""
    names = partial_columns(view)
    cols = {n: [None if isinstance(v, float) and v != v else v for v in columns[n]]
            for n in names}
    return StreamCell(list(starts), cols, [], kept_from)


# -- writes --------------------------------------------------------------------------------------
def add_events(view: FeatureView, cell: StreamCell, events: Sequence[tuple[int, list[Any]]]
               ) -> StreamCell:
    """The cell with `events` (µs, inputs) added: appended to the raw events (kept in time
    order); past COMPACT_AT raw events, those of slides before the newest one are folded into
    the tiles; tiles and events older than the longest window before the newest slide are
    dropped (`kept_from` moves up)."""
    slide = view.slide_seconds or 1
    merged = sorted([*cell.events, *events], key=lambda e: e[0])
    cell = StreamCell(list(cell.starts), {c: list(v) for c, v in cell.columns.items()}, merged,
                      cell.kept_from, cell.hi, cell.batch)
    if not merged:
        return cell
    newest = floor(merged[-1][0] // US, slide)
    if len(merged) > COMPACT_AT:
        cut = bisect_left([t for t, _ in merged], newest * US)
        fold_into_tiles(view, cell, merged[:cut])
        cell.events = merged[cut:]
    longest = max(view.windows) if view.windows else slide
    keep = newest - longest
    dropped = False
    if cell.starts and cell.starts[0] < keep:
        i = bisect_left(cell.starts, keep)
        cell.starts = cell.starts[i:]
        cell.columns = {c: v[i:] for c, v in cell.columns.items()}
        dropped = True
    if cell.events and cell.events[0][0] < keep * US:
        cell.events = [e for e in cell.events if e[0] >= keep * US]
        dropped = True
    if dropped:
        cell.kept_from = keep if cell.kept_from is None else max(cell.kept_from, keep)
    return cell


def fold_into_tiles(view: FeatureView, cell: StreamCell,
                    events: Sequence[tuple[int, list[Any]]]) -> None:
    """Fold raw events into the cell's tiles, one new tile per slide. A slide that already has
    a tile gets a second one with the same start: partials are never merged into stored form
    (a function's merged state, a sketch union, is not a partial), and every window merges
    all the tiles of its slides."""
    slide = view.slide_seconds or 1
    by_slide: dict[int, list[tuple[int, list[Any]]]] = {}
    for ev in events:
        by_slide.setdefault(floor(ev[0] // US, slide), []).append(ev)
    names = partial_columns(view)
    for start, evs in sorted(by_slide.items()):
        folded = _fold(view, evs)
        i = bisect_right(cell.starts, start)
        cell.starts.insert(i, start)
        for c in names:
            cell.columns.setdefault(c, []).insert(i, folded[c])


def _fold(view: FeatureView, events: Sequence[tuple[int, list[Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, a in enumerate(view.aggregations):
        fn = function_of(a)
        ordered = getattr(fn, "ordered", False)  # LAST_N and the like fold (time, value)
        for p, v in fn.fold([(e[0], e[1][k]) if ordered else e[1][k] for e in events]).items():
            out[partial_column(a.name, p)] = v
    return out


# -- reads ---------------------------------------------------------------------------------------
class StreamMerger:
    """The features of one aggregate view from a stream cell at a time t (µs)."""

    def __init__(self, view: FeatureView, needed: set[int] | None = None):
        self.view = view
        self.slide = view.slide_seconds or 1
        aggs = {a.name: (k, a) for k, a in enumerate(view.aggregations)}
        self.specs = []
        for i, f in enumerate(view.features):
            if needed is not None and i not in needed:
                continue
            k, a = aggs[f.aggregation or ""]
            self.specs.append((i, k, a, function_of(a), f.window_seconds or 0, f.type))
        self.empty = [FUNCTIONS[aggs[f.aggregation][1].function].empty if f.aggregation
                      else None for f in view.features]
        self.reach = max((s[4] for s in self.specs), default=0)

    def __call__(self, cell: StreamCell, t_us: int) -> list[Any]:
        from featql.online.tiles import IncompleteWindow

        hi = floor(t_us // US, self.slide)
        if cell.batch:  # the batch window: whole slides only, no head
            t_us = hi * US
        if cell.kept_from is not None and hi - self.reach < cell.kept_from:
            raise IncompleteWindow(hi, cell.kept_from + self.reach)
        i = bisect_left(cell.starts, hi)
        if i < len(cell.starts) and cell.starts[i] == hi and t_us > hi * US:
            raise IncompleteWindow(hi, hi)  # that slide's events are folded: no exact head
        starts_us = [s * US for s in cell.starts]
        out = list(self.empty)
        times = [e[0] for e in cell.events]
        cut = bisect_left(times, hi * US)
        tail_events = cell.events[:cut]
        for idx, k, a, fn, w, type_ in self.specs:
            # slides before hi: tiles plus the raw events of those slides folded per slide
            starts, columns = _with_folded(self.view, a.name, k, fn, starts_us, cell.columns,
                                           tail_events, self.slide * US)
            head = [(e[0], e[1][k]) for e in cell.events[cut:]]
            out[idx] = stream_merge(fn, a.name, starts, columns, head, t_us, w * US,
                                    self.slide * US, type_)
        return out


def _with_folded(view: FeatureView, agg: str, k: int, fn: Any, starts_us: list[int],
                 columns: Mapping[str, list[Any]], events: Sequence[tuple[int, list[Any]]],
                 slide_us: int) -> tuple[list[int], dict[str, list[Any]]]:
    """The tiles of one aggregation with the raw events before the head folded in, one more
    tile per slide."""
    prefix = agg + "__"
    cols = {c: list(v) for c, v in columns.items() if c.startswith(prefix)}
    starts = list(starts_us)
    if not events:
        return starts, cols
    by_slide: dict[int, list[Any]] = {}
    ordered = getattr(fn, "ordered", False)  # LAST_N and the like fold (time, value) pairs
    for t, inputs in events:
        by_slide.setdefault(floor(t, slide_us), []).append((t, inputs[k]) if ordered
                                                           else inputs[k])
    for s, values in sorted(by_slide.items()):  # one more tile per slide (see fold_into_tiles)
        folded = {partial_column(agg, p): v for p, v in fn.fold(values).items()}
        i = bisect_right(starts, s)
        starts.insert(i, s)
        for c in cols:
            cols[c].insert(i, folded[c])
    return starts, cols
