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
  loaded); a window starting before it is refused (`IncompleteWindow`), never guessed;
- coarse part (only in cells that have one): `g`, the coarse tiles `[start, resolution]` of a
  load's compacted cell (`featql.online.compacted`) taken over verbatim, with their partials
  `gc` (a DOUBLE sum as its packed exact expansion, `featql.semantics.compaction`); and for a
  view with a lifetime window `p`/`pc`, the *prefix*: the partials of everything before the
  slide start `p` (older tiles, coarse tiles and late events folded by
  `compaction.combine`, the union's partials: sums exact, sketches merged as the core merges
  them). Fine tiles that fall out of every finite window go into the prefix, so a lifetime
  cell holds the prefix plus the longest finite window's tiles, whatever the view's age.

A window `[lo, hi)` reads the fine tiles starting in it, the coarse tiles lying wholly in it
(an edge strictly inside one is refused, `compacted.CoarseEdge`: a lookup more than the
compaction horizon after the load) and, for a lifetime window, the prefix (a lookup before
`p` is refused); finite windows reaching before `p` are refused by `k`.

A lookup at t merges `[floor(t,S) - W, floor(t,S))` from the tiles plus the events of those
slides, and adds the events in `[floor(t,S), t)`: a training-set row at t over the same events
gives the same value (`featql.jobs.fresh`). A lookup at a t inside a slide whose events were
already folded into a tile cannot split that tile and is refused too.
"""

from __future__ import annotations

import base64
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from featql.core.durations import LIFETIME_SECONDS
from featql.core.ir import Aggregation, FeatureView
from featql.semantics import compaction
from featql.semantics.aggregates import (
    FUNCTIONS,
    AggregateFunction,
    ListWindow,
    for_aggregation,
    partial_column,
    partial_columns,
)
from featql.semantics.sql import US
from featql.semantics.time import floor, stream_window, tile_range
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
    coarse: list[tuple[int, int]] = field(default_factory=list)  # (start, resolution), in order
    coarse_columns: dict[str, list[Any]] = field(default_factory=dict)
    prefix_end: int | None = None  # the prefix holds everything before it (lifetime windows)
    prefix: dict[str, Any] | None = None  # its partials by column

    def copy(self) -> StreamCell:
        return StreamCell(list(self.starts), {c: list(v) for c, v in self.columns.items()},
                          list(self.events), self.kept_from, self.hi, self.batch,
                          list(self.coarse), {c: list(v) for c, v in self.coarse_columns.items()},
                          self.prefix_end, None if self.prefix is None else dict(self.prefix))


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
    body: dict[str, Any] = {"k": cell.kept_from, "h": cell.hi, "b": cell.batch,
                            "s": cell.starts, "c": cell.columns,
                            "e": [[t, list(v)] for t, v in cell.events]}
    if cell.coarse:
        body["g"], body["gc"] = cell.coarse, cell.coarse_columns
    if cell.prefix is not None:
        body["p"], body["pc"] = cell.prefix_end, cell.prefix
    return MAGIC + orjson.dumps(body, default=_tag)


def decode(payload: bytes) -> StreamCell:
    body = orjson.loads(payload[4:])
    columns = {c: [_untag(v) for v in vals] for c, vals in body["c"].items()}
    cell = StreamCell(list(body["s"]), columns, [(int(t), v) for t, v in body["e"]],
                      body.get("k"), body.get("h"), bool(body.get("b")))
    if "g" in body:
        cell.coarse = [(int(s), int(r)) for s, r in body["g"]]
        cell.coarse_columns = {c: [_untag(v) for v in vals] for c, vals in body["gc"].items()}
    if "pc" in body:
        cell.prefix_end = int(body["p"])
        cell.prefix = {c: _untag(v) for c, v in body["pc"].items()}
    return cell


def _plain(values: Sequence[Any]) -> list[Any]:
    return [None if isinstance(v, float) and v != v else v for v in values]


def from_tiles(view: FeatureView, starts: Sequence[int], columns: Mapping[str, Sequence[Any]],
               kept_from: int | None, coarse: Sequence[tuple[int, int]] = (),
               coarse_columns: Mapping[str, Sequence[Any]] | None = None) -> StreamCell:
    """A stream cell from tiles decoded out of a load's packed cell (NaN min/max: NULL); a
    compacted cell's coarse tiles too (`featql.online.compacted.stream_parts`)."""
    names = partial_columns(view)
    cell = StreamCell(list(starts), {n: _plain(columns[n]) for n in names}, [], kept_from)
    if coarse:
        assert coarse_columns is not None
        cell.coarse = list(coarse)
        cell.coarse_columns = {n: _plain(coarse_columns[n]) for n in names}
    return cell


def finite_reach(view: FeatureView) -> int:
    """The longest finite window of the view (its slide when it has none): how far back from
    its newest slide a cell keeps fine tiles."""
    finite = [w for w in view.windows if w != LIFETIME_SECONDS]
    return max(finite) if finite else (view.slide_seconds or 1)


# -- writes --------------------------------------------------------------------------------------
def add_events(view: FeatureView, cell: StreamCell, events: Sequence[tuple[int, list[Any]]]
               ) -> StreamCell:
    """The cell with `events` (µs, inputs) added: appended to the raw events (kept in time
    order); past COMPACT_AT raw events, those of slides before the newest one are folded into
    the tiles; tiles (fine or coarse) and events older than the longest finite window before
    the newest slide are dropped (`kept_from` moves up), or, for a view with a lifetime
    window, folded into the prefix (`fold_prefix`)."""
    slide = view.slide_seconds or 1
    merged = sorted([*cell.events, *events], key=lambda e: e[0])
    cell = cell.copy()
    cell.events = merged
    if not merged:
        return cell
    newest = floor(merged[-1][0] // US, slide)
    if len(merged) > COMPACT_AT:
        cut = bisect_left([t for t, _ in merged], newest * US)
        fold_into_tiles(view, cell, merged[:cut])
        cell.events = merged[cut:]
    keep = newest - finite_reach(view)
    if LIFETIME_SECONDS in view.windows:
        fold_prefix(view, cell, keep)
        return cell
    dropped = False
    if cell.starts and cell.starts[0] < keep:
        i = bisect_left(cell.starts, keep)
        cell.starts = cell.starts[i:]
        cell.columns = {c: v[i:] for c, v in cell.columns.items()}
        dropped = True
    gone = sum(1 for s, r in cell.coarse if s + r <= keep)  # in time order, never overlapping
    if gone:
        cell.coarse = cell.coarse[gone:]
        cell.coarse_columns = {c: v[gone:] for c, v in cell.coarse_columns.items()}
        dropped = True
    if cell.events and cell.events[0][0] < keep * US:
        cell.events = [e for e in cell.events if e[0] >= keep * US]
        dropped = True
    if dropped:
        cell.kept_from = keep if cell.kept_from is None else max(cell.kept_from, keep)
    return cell


def fold_prefix(view: FeatureView, cell: StreamCell, keep: int) -> None:
    """Fold everything of `cell` before `keep` (a slide start; moved back to the start of a
    coarse tile it would split) into its lifetime prefix: the prefix, the coarse and fine
    tiles and the raw events before it, combined per aggregation by the semantics core
    (`compaction.combine`: the partials of their union). The finite windows reaching before
    the prefix's end are refused from then on (`kept_from`)."""
    end = keep
    for s, r in cell.coarse:
        if s < end < s + r:
            end = s
    if cell.prefix_end is not None:
        end = max(end, cell.prefix_end)
    i = bisect_left(cell.starts, end)
    g = sum(1 for s, r in cell.coarse if s + r <= end)
    e = bisect_left([t for t, _ in cell.events], end * US)
    if not i and not g and not e:
        return
    names = partial_columns(view)
    rows: dict[str, list[Any]] = {c: [] for c in names}
    if cell.prefix is not None:
        for c in names:
            rows[c].append(cell.prefix[c])
    for c in names:
        rows[c].extend(cell.coarse_columns.get(c, [])[:g])
        rows[c].extend(cell.columns[c][:i])
    if e:
        for c, v in _fold(view, cell.events[:e]).items():
            rows[c].append(v)
    window = _ExactWindow(rows, 0, len(rows[names[0]]) if names else 0)
    prefix: dict[str, Any] = {}
    for a in view.aggregations:
        types = {p.name: p.type for p in FUNCTIONS[a.function].partials(a.type)}
        for p, v in compaction.combine(for_aggregation(a), a.name, window, types).items():
            prefix[partial_column(a.name, p)] = v
    cell.prefix, cell.prefix_end = prefix, end
    cell.starts = cell.starts[i:]
    cell.columns = {c: v[i:] for c, v in cell.columns.items()}
    cell.coarse = cell.coarse[g:]
    cell.coarse_columns = {c: v[g:] for c, v in cell.coarse_columns.items()}
    cell.events = cell.events[e:]
    cell.kept_from = end if cell.kept_from is None else max(cell.kept_from, end)


class _ExactWindow(ListWindow):
    """A `ListWindow` whose additive totals also read coarse expansions (packed doubles):
    one `math.fsum` over them and the fine values, as the all-fine read rounds."""

    def total(self, column: str) -> int | float:
        return compaction.total(self.columns[column][self.i:self.j])


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
        # the longest finite window used (a lifetime window reads the prefix)
        self.reach = max((s[4] for s in self.specs if s[4] != LIFETIME_SECONDS), default=0)
        self.lifetime = any(s[4] == LIFETIME_SECONDS for s in self.specs)

    def __call__(self, cell: StreamCell, t_us: int) -> list[Any]:
        from featql.online.tiles import IncompleteWindow

        hi = floor(t_us // US, self.slide)
        if cell.batch:  # the batch window: whole slides only, no head
            t_us = hi * US
        if cell.kept_from is not None and hi - self.reach < cell.kept_from:
            raise IncompleteWindow(hi, cell.kept_from + self.reach)
        if self.lifetime and cell.prefix_end is not None and hi < cell.prefix_end:
            raise IncompleteWindow(hi, cell.prefix_end)  # the prefix holds later events
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
            if cell.coarse or cell.prefix is not None:
                extra = self._extra(cell, a.name, hi, w)
                out[idx] = _merge_with(fn, a.name, starts, columns, extra, head, t_us, w * US,
                                       self.slide * US, type_)
            else:
                out[idx] = stream_merge(fn, a.name, starts, columns, head, t_us, w * US,
                                        self.slide * US, type_)
        return out

    def _extra(self, cell: StreamCell, agg: str, hi: int, w: int) -> dict[str, list[Any]]:
        """The coarse partials of one aggregation a window `[hi - w, hi)` merges: its prefix
        (a lifetime window) and the coarse tiles wholly inside it; an edge strictly inside a
        coarse tile cannot be answered exactly and is refused."""
        lo = hi - w
        prefix = agg + "__"
        names = [c for c in cell.coarse_columns if c.startswith(prefix)] or \
            [c for c in (cell.prefix or {}) if c.startswith(prefix)]
        out: dict[str, list[Any]] = {c: [] for c in names}
        if w == LIFETIME_SECONDS and cell.prefix is not None:
            for c in names:
                out[c].append(cell.prefix[c])
        for n, (s, r) in enumerate(cell.coarse):
            for edge in (lo, hi):
                if s < edge < s + r:
                    from featql.online.compacted import CoarseEdge

                    raise CoarseEdge(hi, hi if cell.hi is None else cell.hi, edge,
                                     compaction.horizon(self.view))
            if lo <= s and s + r <= hi:
                for c in names:
                    out[c].append(cell.coarse_columns[c][n])
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


def _merge_with(fn: AggregateFunction, agg: str, starts: Sequence[int],
                columns: Mapping[str, Sequence[Any]], extra: Mapping[str, Sequence[Any]],
                head: Sequence[tuple[int, Any]], t: int, window: int, slide: int,
                result_type: str) -> Any:
    """`stream_merge` with coarse partials (`extra`, already chosen for the window) merged in
    too: the same tiles and head, read by `_ExactWindow`."""
    lo, _ = stream_window(t, window, slide)
    hi = floor(t, slide)
    i, j = tile_range(starts, lo, hi)
    values = [(ts, v) if fn.ordered else v for ts, v in head if hi <= ts < t]
    n_extra = len(next(iter(extra.values()))) if extra else 0
    if i == j and not values and not n_extra:
        return fn.empty
    folded = fn.fold(values)
    merged: dict[str, list[Any]] = {}
    for p in folded:
        col = partial_column(agg, p)
        merged[col] = [*extra.get(col, ()), *columns.get(col, ())[i:j], folded[p]]
    window_ = _ExactWindow(merged, 0, n_extra + j - i + 1)
    return fn.finalize(fn.merge(window_, agg), result_type)
