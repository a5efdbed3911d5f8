"""Compacted tile cells (`FQC1`): fine edge tiles plus coarse middle tiles, merged exactly.

A cell of an aggregate view whose windows are long enough to have coarse levels
(`featql.semantics.compaction.levels`) is written by the online load as planned by
`featql.semantics.compaction.plan_cell`: the tiles of each coarse tile of the plan are
combined into one (`compaction.combine`), the others stay as they are. Layout:

    FQT3 cell of the fine tiles, its magic replaced by "FQC1" (the values merged at load, the
    `merged_at` slide, everything `featql.online.tiles` reads, unchanged)
    | per level: resolution u32 | length u32 | an FQT3 tile set of that level's coarse tiles
    | last fine tile start with data i64 | level count u16 | trailer length u32 | "FQCE"

The trailer is found from the end, so `tiles.split_merged` (which drops the merged values from
the middle of the FQT3 part) keeps it. A coarse tile's partials are the partials of the union
of its fine tiles: an additive DOUBLE column holds the exact expansion of the fine sum (a
variable-length column of packed doubles, `compaction.pack_expansion`).

The read (`merge`): per window `[hi - W, hi)` the fine tiles starting inside it and the coarse
tiles lying wholly inside it, read set by set (every merge but STDDEV/VAR's Chan fold is
independent of tile order, and that one agrees to rounding), merged and finalized by each
aggregation's function as `TileMerger.merge` does over all-fine tiles; an additive column's
total is one `math.fsum` over the fine values and the coarse expansions. A distinct count is
the all-fine one (the union's registers, estimated from them alone:
`sketches.register_estimate`), a percentile too while its coarse tiles hold at most 800 KLL
items (`featql.semantics.quantiles.union`; beyond, within 0.75 % of p). A window edge
strictly inside a stored coarse tile cannot be answered exactly: the lookup is refused
(`IncompleteWindow`), which the plan rules out for every slide in `[loaded, loaded + horizon]`.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from featql.core.errors import UserError
from featql.core.ir import FeatureView
from featql.online.tiles import (
    COMPACT_MAGIC,
    IncompleteWindow,
    Packed,
    _iso,
    _PackedWindow,
    _VarColumn,
    encode_tiles,
    merged_at,
    unpack,
)
from featql.semantics import compaction
from featql.semantics.aggregates import FUNCTIONS, ListWindow, for_aggregation
from featql.semantics.time import batch_window, tile_range

if TYPE_CHECKING:
    from featql.online.tiles import TileMerger

MAGIC = COMPACT_MAGIC
_FOOT = struct.Struct("<qHI4s")
_END = b"FQCE"
_LEVEL = struct.Struct("<II")


def encode(view: FeatureView, starts: Sequence[int], columns: Mapping[str, Sequence[Any]],
           loaded: int, merged: tuple[int, Sequence[Any]] | None = None) -> bytes | None:
    """A compacted cell of one entity's fine tiles (`starts` ascending, epoch seconds; columns
    by partial name in `partial_columns` order) loaded for `loaded`; None when the plan
    compacts none of these tiles (write the plain FQT3 cell)."""
    plan = [(s, r) for s, r in compaction.plan_cell(view, loaded) if r != view.slide_seconds]
    if not plan or not starts:
        return None
    names = list(columns)
    fine: list[int] = []
    groups: dict[int, list[tuple[int, list[int]]]] = {}
    k = 0
    n = len(starts)
    for c, r in plan:  # both in time order
        while k < n and starts[k] < c:
            fine.append(k)
            k += 1
        members = []
        while k < n and starts[k] < c + r:
            members.append(k)
            k += 1
        if members:
            groups.setdefault(r, []).append((c, members))
    fine.extend(range(k, n))
    if not groups:
        return None
    specs = [(for_aggregation(a), a.name,
              {p.name: p.type for p in FUNCTIONS[a.function].partials(a.type)})
             for a in view.aggregations]
    blobs = []
    for r in sorted(groups, reverse=True):
        cstarts: list[int] = []
        ccols: dict[str, list[Any]] = {c: [] for c in names}
        for c, members in groups[r]:
            cstarts.append(c)
            window = ListWindow({name: [columns[name][i] for i in members] for name in names},
                                0, len(members))
            for fn, agg, types in specs:
                for p, v in compaction.combine(fn, agg, window, types).items():
                    ccols[f"{agg}__{p}"].append(v)
        blob = encode_tiles(cstarts, ccols)
        blobs.append(_LEVEL.pack(r, len(blob)) + blob)
    head = encode_tiles([starts[i] for i in fine],
                        {c: [columns[c][i] for i in fine] for c in names}, merged=merged)
    trailer = b"".join(blobs)
    return b"".join([MAGIC, head[4:], trailer,
                     _FOOT.pack(starts[-1], len(blobs), len(trailer) + _FOOT.size, _END)])


def last_start(payload: bytes) -> int:
    """The start of the cell's last fine tile with data (in a coarse tile or not)."""
    return int(_FOOT.unpack_from(payload, len(payload) - _FOOT.size)[0])


def levels_of(payload: bytes, names: Sequence[str],
              layouts: dict[bytes, Any] | None = None) -> list[tuple[int, Packed]]:
    """(resolution, coarse tile set) of each level of a compacted cell."""
    _last, count, size, end = _FOOT.unpack_from(payload, len(payload) - _FOOT.size)
    if end != _END:
        raise ValueError("not a compacted featql tile set")
    pos = len(payload) - size
    out = []
    for _ in range(count):
        r, length = _LEVEL.unpack_from(payload, pos)
        pos += _LEVEL.size
        out.append((r, unpack(payload[pos:pos + length], names, layouts)))
        pos += length
    return out


class CoarseEdge(IncompleteWindow):
    """A window edge falls strictly inside a stored coarse tile: the cell cannot answer it
    exactly (a lookup more than the horizon after the load, or a replay before it)."""

    def __init__(self, slide: int, loaded: int, edge: int, horizon: int):
        UserError.__init__(
            self, f"the window ending {_iso(slide)} starts or ends at {_iso(edge)}, inside a "
            f"compacted tile of the online store (its last load is for {_iso(loaded)}; "
            f"compacted cells answer every slide exactly up to {horizon // 3600} h after their "
            "load: load again with featql materialize --online)")
        self.slide, self.loaded = slide, loaded


class _Mixed:
    """A `Window` over the fine tiles and the coarse tiles of one window (the merges of every
    function but STDDEV/VAR do not depend on tile order, and those agree to rounding: the parts
    are read set by set). An additive column's total is one `math.fsum` over every fine value
    and every coarse expansion's doubles, so it rounds once, as the all-fine read's."""

    __slots__ = ("parts", "totals")

    def __init__(self, parts: list[_PackedWindow]) -> None:
        self.parts = parts
        self.totals: dict[str, int | float] = {}

    def column(self, column: str) -> list[Any]:
        out: list[Any] = []
        for w in self.parts:
            out.extend(w.column(column))
        return out

    def present(self, column: str) -> list[Any]:
        out: list[Any] = []
        for w in self.parts:
            out.extend(w.present(column))
        return out

    def total(self, column: str) -> int | float:
        t = self.totals.get(column)
        if t is not None:
            return t
        chunks: list[Any] = []
        ints = True
        for w in self.parts:
            col = w.stored[w.columns[column]]
            if isinstance(col, _VarColumn):  # coarse expansions: packed doubles, back to back
                ints = False
                chunks.append(col.data[col.ends[w.i]:col.ends[w.j]].cast("d"))
            else:
                vals = col[w.i:w.j]
                ints = ints and vals.format != "d"
                chunks.append(vals)
        t = self.totals[column] = sum(sum(c) for c in chunks) if ints else \
            math.fsum(itertools.chain.from_iterable(chunks))
        return t


def merge(merger: TileMerger, payload: bytes, hi: int) -> list[Any]:
    """The features at slide `hi` from a compacted cell (see the module doc)."""
    sets = [(merger.slide, unpack(payload, merger.names, merger.layouts)),
            *levels_of(payload, merger.names, merger.layouts)]
    out: list[Any] = list(merger.empty)
    slide = merger.slide
    for w, specs in merger.by_window:
        lo, _ = batch_window(hi, w, slide)
        parts: list[_PackedWindow] = []
        for n, (r, p) in enumerate(sets):
            base, unit = p.base, p.unit
            if n:  # a coarse tile starting in (edge - r, edge) straddles the edge
                for edge in (lo, hi):
                    a, b = tile_range(p.offsets, -((base - (edge - r + 1)) // unit),
                                      -((base - edge) // unit))
                    if a < b:
                        at = merged_at(payload)
                        raise CoarseEdge(hi, hi if at is None else at, edge,
                                         compaction.horizon(merger.view))
            i, j = tile_range(p.offsets, -((base - lo) // unit),
                              -((base - (hi - r + 1)) // unit))
            if i < j:
                parts.append(_PackedWindow(p, i, j))
        if not parts:
            continue
        window = _Mixed(parts)
        for fn, agg, type_, k in specs:
            out[k] = fn.finalize(fn.merge(window, agg), type_)
    return out


def stream_parts(view: FeatureView, payload: bytes
                 ) -> tuple[list[int], dict[str, list[Any]], list[tuple[int, int]],
                            dict[str, list[Any]]]:
    """What a stream cell (`featql.online.stream_cells`) takes over from a compacted cell when
    pushes reach it: every fine tile `(starts, columns)` and every coarse tile verbatim
    (`[(start, resolution)]` in time order, their partials by column, a DOUBLE sum as its
    packed expansion), so that its windows read exactly what this cell's do."""
    from featql.online.tiles import decode_tiles
    from featql.semantics.aggregates import partial_columns

    names = partial_columns(view)
    tiles = decode_tiles(payload, names)
    coarse: list[tuple[int, int, dict[str, Any]]] = []
    for r, p in levels_of(payload, names):
        for k, o in enumerate(p.offsets):
            coarse.append((int(p.base + p.unit * o), r,
                           {c: p.stored[i][k] for c, i in p.columns.items()}))
    coarse.sort(key=lambda g: g[0])
    return (list(tiles.starts), {c: list(v) for c, v in tiles.columns.items()},
            [(s, r) for s, r, _ in coarse], {c: [g[2][c] for g in coarse] for c in names})
