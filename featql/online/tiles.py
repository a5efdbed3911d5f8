"""Aggregate views online: packed tile sets and their read-time merge (Chronon-style).

A cell holds, for one entity, the tiles (partials per slide) of the view's longest window
ending at the end of the materialized data. `TileMerger(view)(payload, now)` returns the view's
features exactly as the training set computes them at t = now: the batch window
`[floor(now, S) - W, floor(now, S))` of `featql.semantics.time`, each aggregation merged and
finalized by its `featql.semantics.aggregates` function (COUNT over an empty window 0, the others
NULL, avg = sum / count).

Packing (`FQT3`, little-endian), sized for the wire (every byte is read, base64'd and parsed
on each lookup):

    "FQT3" | n u32 | base i64 | unit u32 | layout length u16 | merged_at i64 | merged length u32
           | layout | merged | starts | columns

- starts: tile start = base + unit * offset (epoch seconds; `unit` is the gcd of the gaps,
  i.e. the slide), offsets in the narrowest unsigned type;
- columns: one per *distinct* partial (sum and avg of the same input share theirs), each in the
  narrowest type that holds it exactly: integers (counts, sums of integers or of 0/1 flags) as
  int8..int64, anything else float64. NULLs: an additive partial (`__sum`, `__count`: see
  `featql.semantics.aggregates.is_additive`) is stored as 0 (the count says whether the sum is
  NULL); min/max NULLs are NaN (float64), flagged per column so
  windows without NULLs merge at C speed;
- non-numeric partials (a column holding any list, dict or text: LAST_N's entries, TOP_K's
  histogram; or any bytes: a sketch) are variable-length columns, type `j` (each tile's value
  as orjson) or `y` (opaque bytes as they are): `n + 1` u32 end offsets (the first is 0), then
  the values back to back; a NULL is an empty value (so an empty byte string reads as NULL).
  A view whose partials are all numeric never has one: its cells are byte-identical to what
  earlier versions wrote;
- layout: offsets' type, then per partial of the view (in `partial_columns` order: names are
  implied by the cell, whose name carries the view's fingerprint) the stored column it reads,
  then each stored column's type and NULL flag. Layouts repeat across entities: parsed once.
- merged (optional): the view's feature values for `floor(now, S) == merged_at` (the end of the
  loaded tiles), computed at load time by this very merge and stored as orjson (exact for ints
  and doubles; a set with a non-finite value or an int beyond 64 bits gets none). A lookup in
  the slide right after the load, the common case when loads follow the slide, reads them
  instead of merging; any other time merges the tiles.

A store that pays per byte read (DynamoDB) keeps the merged values apart from the tiles
(`split_merged`): the head `[merged_at, [values]]` (orjson text), read alone in the slide after
the load, and the tiles without the values (their header still names `merged_at`), read in any
other slide. `TileMerger` takes either; a head for another slide gives None (read the tiles).

Columns are read zero-copy with `memoryview.cast`. `FQT2` cells (float64 columns, int64 starts,
a JSON header naming the partials), written by earlier versions, are still read.
"""

from __future__ import annotations

import bisect
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from featql.core.durations import LIFETIME_SECONDS
from featql.core.errors import UserError
from featql.core.ir import FeatureView
from featql.online.stream_cells import MAGIC as STREAM_MAGIC
from featql.online.stream_cells import StreamMerger
from featql.online.stream_cells import decode as decode_stream
from featql.semantics import compaction
from featql.semantics.aggregates import (
    FUNCTIONS,
    AggregateFunction,
    ListWindow,
    for_aggregation,
    is_additive,
    partial_column,
    partial_columns,
    tile_partials,
)
from featql.semantics.time import batch_window, floor_s, tile_range

SKETCH_FOLDS = frozenset({"approx_count_distinct", "approx_percentile"})
"""The functions whose lifetime prefix is folded by `compaction.combine` (`with_prefix`)."""

KNOWN = "_featql_known"
"""The column of a known_at view's cells: when each partial was known (epoch us)."""

__all__ = ["Packed", "TileMerger", "Tiles", "decode_tiles", "encode_tiles", "merged_at",
           "partial_columns", "split_merged", "unpack"]

_MAGIC = b"FQT3"
_MAGIC_V2 = b"FQT2"
COMPACT_MAGIC = b"FQC1"  # an FQT3 cell with coarse tiles after it (featql.online.compacted)
_FQT = (_MAGIC, COMPACT_MAGIC)
_FIXED = struct.Struct("<4sIqIHqI")
_NO_MERGED = -(1 << 63)
_SIZES = {"B": 1, "H": 2, "I": 4, "Q": 8, "b": 1, "h": 2, "i": 4, "q": 8, "d": 8}
_UNSIGNED = (("B", 1 << 8), ("H", 1 << 16), ("I", 1 << 32), ("Q", 1 << 64))
_SIGNED = (("b", 1 << 7), ("h", 1 << 15), ("i", 1 << 31), ("q", 1 << 63))
_CACHE_MAX = 4096

# (offset type, {partial name: stored column}, per stored column (type, byte size), NULL flags)
Layout = tuple[str, dict[str, int], tuple[tuple[str, int], ...], tuple[bool, ...]]
_LAYOUTS: dict[tuple[str, ...], dict[bytes, Layout]] = {}
_V2_HEADERS: dict[bytes, tuple[dict[str, int], tuple[bool, ...]]] = {}


def _int_type(lo: int, hi: int) -> str | None:
    for code, bound in _SIGNED if lo < 0 else _UNSIGNED:
        if -bound <= lo and hi < bound:
            return code
    return None


_VAR_CODES = ("j", "y")  # variable-length columns: orjson values, opaque bytes
_BYTES = (bytes, bytearray, memoryview)


def _var_kind(values: Sequence[Any]) -> str | None:
    """`y` for a column of bytes, `j` for one of lists, dicts or text, None when numeric."""
    v = next((v for v in values if v is not None), None)  # a column holds one kind
    if isinstance(v, _BYTES):
        return "y"
    if isinstance(v, list | tuple | dict | str):
        return "j"
    return None


def _var_blob(code: str, values: Sequence[Any]) -> tuple[bytes, bool]:
    """A variable-length column: n + 1 u32 end offsets, then the values; has NULLs."""
    parts = [b"" if v is None else bytes(v) if code == "y" else orjson.dumps(v)
             for v in values]
    ends = [0]
    for part in parts:
        ends.append(ends[-1] + len(part))
    if ends[-1] >= 1 << 32:
        raise ValueError("a tile set's variable-length column exceeds 4 GiB")
    return struct.pack(f"<{len(ends)}I", *ends) + b"".join(parts), any(not p for p in parts)


class _VarColumn:
    """A variable-length column as read: slicing decodes the values (None for NULL)."""

    __slots__ = ("data", "ends", "format")

    def __init__(self, code: str, ends: Any, data: memoryview) -> None:
        self.format, self.ends, self.data = code, ends, data

    def __len__(self) -> int:
        return len(self.ends) - 1

    def _value(self, k: int) -> Any:
        lo, hi = self.ends[k], self.ends[k + 1]
        if lo == hi:
            return None
        raw = self.data[lo:hi]
        return bytes(raw) if self.format == "y" else orjson.loads(raw)

    def __getitem__(self, k: int | slice) -> Any:
        if isinstance(k, slice):
            return [self._value(i) for i in range(*k.indices(len(self)))]
        return self._value(range(len(self))[k])

    def __iter__(self) -> Any:
        return iter(self[:])


def _column(values: Sequence[Any], zero: bool) -> tuple[str, list[Any], bool]:
    """(type, values, has NULLs): integers exactly representable in a narrow type, else doubles."""
    nulls = not zero and any(v is None for v in values)
    if not nulls:
        ints: list[int] = []
        for v in values:
            if v is None or isinstance(v, int):
                ints.append(v or 0)
            elif (isinstance(v, float) and v.is_integer()
                  and not (v == 0 and math.copysign(1.0, v) < 0)):
                ints.append(int(v))
            else:
                break
        else:
            code = _int_type(min(ints, default=0), max(ints, default=0))
            if code is not None:
                return code, ints, False
    vals = [(0.0 if zero else math.nan) if v is None else float(v) for v in values]
    return "d", vals, nulls


def _json_exact(v: Any) -> bool:
    """orjson writes it and reads it back equal (no NaN/inf, ints within 64 bits)."""
    if isinstance(v, float):
        return math.isfinite(v)
    return not isinstance(v, int) or -(1 << 63) <= v < 1 << 64


def encode_tiles(starts: Sequence[int], columns: Mapping[str, Sequence[Any]],
                 merged: tuple[int, Sequence[Any]] | None = None) -> bytes:
    """Pack tiles: starts (epoch seconds, ascending) and partials (None = NULL) by name, in the
    view's `partial_columns` order (the reader maps columns by position). `merged`:
    (slide start t, the view's feature values at floor(now, S) = t), see `with_merged`."""
    base = starts[0] if starts else 0
    unit = 0
    for s in starts:
        unit = math.gcd(unit, s - base)
    unit = unit or 1
    offsets = [(s - base) // unit for s in starts]
    scode = _int_type(0, max(offsets, default=0)) or "Q"
    stored: list[bytes] = []
    kinds: list[tuple[str, bool]] = []
    index: list[int] = []
    seen: dict[tuple[str, bytes], int] = {}
    for name, values in columns.items():
        var = _var_kind(values)
        if var is not None:
            code = var
            blob, nulls = _var_blob(code, values)
        else:
            code, vals, nulls = _column(values, is_additive(name))
            blob = struct.pack(f"<{len(vals)}{code}", *vals)
        k = seen.get((code, blob))
        if k is None:
            k = seen[(code, blob)] = len(stored)
            stored.append(blob)
            kinds.append((code, nulls))
        index.append(k)
    layout = b"".join([scode.encode(), struct.pack(f"<HH{len(index)}H", len(stored), len(index),
                                                   *index),
                       "".join(c for c, _ in kinds).encode(), bytes(n for _, n in kinds)])
    if unit >= 1 << 32:
        raise ValueError(f"tile spacing of {unit} s is too large to pack")
    pre, at = b"", _NO_MERGED
    if merged is not None and all(_json_exact(v) for v in merged[1]):
        at, pre = merged[0], orjson.dumps(list(merged[1]))
    return b"".join([_FIXED.pack(_MAGIC, len(starts), base, unit, len(layout), at, len(pre)),
                     layout, pre, struct.pack(f"<{len(offsets)}{scode}", *offsets), *stored])


def _layout(raw: bytes, names: Sequence[str]) -> Layout:
    scode = chr(raw[0])
    k, p = struct.unpack_from("<HH", raw, 1)
    if p != len(names):
        raise ValueError(f"tile set has {p} partial columns, the view {len(names)}")
    index = struct.unpack_from(f"<{p}H", raw, 5)
    pos = 5 + 2 * p
    codes = raw[pos:pos + k].decode()
    nulls = raw[pos + k:pos + 2 * k]
    return (scode, {n: index[i] for i, n in enumerate(names)},
            tuple((c, _SIZES.get(c, 0)) for c in codes), tuple(bool(x) for x in nulls))


class Packed(NamedTuple):
    """A tile set as read: starts = base + unit * offsets; stored columns by partial name."""

    base: int
    unit: int
    offsets: Any  # memoryview of unsigned ints (FQT2: int64 seconds, base 0, unit 1)
    stored: list[Any]  # memoryviews
    columns: dict[str, int]  # partial name -> stored column
    nulls: tuple[bool, ...]  # per stored column


def unpack(payload: bytes, names: Sequence[str] | None = None,
           layouts: dict[bytes, Layout] | None = None) -> Packed:
    """Read a tile set; `names` (the view's `partial_columns`) are needed for FQT3, `layouts`
    caches parsed layouts for those names."""
    mv = memoryview(payload)
    if payload[:4] in _FQT:
        if names is None:
            raise ValueError("FQT3 tile sets are read with the view's partial columns")
        _m, n, base, unit, hlen, _at, plen = _FIXED.unpack_from(payload)
        raw = payload[_FIXED.size:_FIXED.size + hlen]
        if layouts is None:
            layouts = _LAYOUTS.setdefault(tuple(names), {})
        lay = layouts.get(raw)
        if lay is None:
            lay = _layout(raw, names)
            if len(layouts) < _CACHE_MAX:
                layouts[raw] = lay
        scode, index, kinds, nulls = lay
        start = _FIXED.size + hlen + plen
        pos = start + n * _SIZES[scode]
        cast: Any = memoryview.cast  # the formats are computed: typeshed wants literals
        offsets = cast(mv[start:pos], scode)
        stored = []
        for code, size in kinds:
            if size:
                stored.append(cast(mv[pos:pos + n * size], code))
                pos += n * size
                continue
            ends = cast(mv[pos:pos + 4 * (n + 1)], "I")  # a variable-length column
            pos += 4 * (n + 1)
            stored.append(_VarColumn(code, ends, mv[pos:pos + ends[n]]))
            pos += ends[n]
        return Packed(base, unit, offsets, stored, index, nulls)
    if payload[:4] != _MAGIC_V2:
        raise ValueError("not a featql tile set")
    n, hlen = struct.unpack_from("<II", payload, 4)
    header = payload[12:12 + hlen]
    parsed = _V2_HEADERS.get(header)
    if parsed is None:
        data = orjson.loads(header)
        parsed = (data["index"], tuple(data["nulls"]))
        if len(_V2_HEADERS) < _CACHE_MAX:
            _V2_HEADERS[header] = parsed
    pos = 12 + hlen + 8 * n
    stored = [mv[pos + 8 * n * k:pos + 8 * n * (k + 1)].cast("d")
              for k in range(len(parsed[1]))]
    return Packed(0, 1, mv[12 + hlen:pos].cast("q"), stored, parsed[0], parsed[1])


def split_merged(payload: bytes) -> tuple[bytes, bytes] | None:
    """(head, tiles) of an FQT3 cell that carries values merged at load, else None.

    head: orjson `[merged_at, [values...], last tile start]`, what a lookup in the slide after
    the load needs (a few dozen bytes where the tiles take hundreds); it also answers any slide
    whose windows all start after the last tile (an entity idle for longer than the longest
    window: every feature empty). tiles: the same cell without the values, its header still
    naming `merged_at` (see `merged_at`). `TileMerger` reads both."""
    if payload[:4] not in _FQT:
        return None
    magic, n, base, unit, hlen, at, plen = _FIXED.unpack_from(payload)
    if not plen:
        return None
    start = _FIXED.size + hlen
    last = b"null"
    if n:
        scode = chr(payload[_FIXED.size])
        (offset,) = struct.unpack_from("<" + scode, payload,
                                       start + plen + (n - 1) * _SIZES[scode])
        last = b"%d" % (base + unit * offset)
    if magic == COMPACT_MAGIC:  # the last tile with data may be in a coarse tile
        from featql.online.compacted import last_start

        last = b"%d" % last_start(payload)
    head = b"[%d,%s,%s]" % (at, payload[start:start + plen], last)
    tiles = b"".join([_FIXED.pack(magic, n, base, unit, hlen, at, 0),
                      payload[_FIXED.size:start], payload[start + plen:]])
    return head, tiles


def merged_at(payload: bytes) -> int | None:
    """The slide start whose values were merged at load (head or tile set), if any."""
    if payload[:1] == b"[":
        return int(orjson.loads(payload)[0])
    if payload[:4] in _FQT:
        at = int(_FIXED.unpack_from(payload)[5])
        return None if at == _NO_MERGED else at
    return None


@dataclass(frozen=True)
class Tiles:
    starts: list[int]  # epoch seconds
    columns: dict[str, Any]  # name -> values (memoryview)
    nulls: dict[str, bool]


def decode_tiles(payload: bytes, names: Sequence[str] | None = None) -> Tiles:
    """A tile set by partial name (tools and tests; the lookup merges `Packed` directly)."""
    p = unpack(payload, names)
    return Tiles([p.base + p.unit * o for o in p.offsets],
                 {name: p.stored[k] for name, k in p.columns.items()},
                 {name: p.nulls[k] for name, k in p.columns.items()})


class _PackedWindow:
    """A `featql.semantics.aggregates.Window` over tiles `[i, j)` of a `Packed` set: totals are
    computed once per stored column (sum and avg of one input share theirs), doubles summed
    with `math.fsum`, min/max NULLs (NaN) dropped only in columns that have some."""

    __slots__ = ("columns", "i", "j", "nulls", "stored", "totals")

    def __init__(self, p: Packed, i: int, j: int) -> None:
        self.columns, self.stored, self.nulls = p.columns, p.stored, p.nulls
        self.i, self.j = i, j
        self.totals: dict[int, int | float] = {}

    def total(self, column: str) -> int | float:
        c = self.columns[column]
        t = self.totals.get(c)
        if t is None:
            vals = self.stored[c][self.i:self.j]
            t = self.totals[c] = math.fsum(vals) if vals.format == "d" else sum(vals)
        return t

    def present(self, column: str) -> Sequence[Any]:
        c = self.columns[column]
        vals: Sequence[Any] = self.stored[c][self.i:self.j]
        if not self.nulls[c]:
            return vals
        if isinstance(self.stored[c], _VarColumn):
            return [x for x in vals if x is not None]
        return [x for x in vals if x == x]

    def column(self, column: str) -> Sequence[Any]:
        c = self.columns[column]
        vals: Sequence[Any] = self.stored[c][self.i:self.j]
        if not self.nulls[c] or isinstance(self.stored[c], _VarColumn):
            return vals
        return [x if x == x else None for x in vals]


def with_prefix(view: FeatureView, starts: Sequence[int], columns: Mapping[str, Sequence[Any]],
                keep_from: int) -> tuple[list[int], dict[str, list[Any]]]:
    """The tiles of one entity with those starting before `keep_from` folded into one *prefix
    tile* at the oldest one's start: per aggregation, its function's merge of them (a partial
    like any tile's). What a view with a lifetime window stores online: a lifetime lookup reads
    the prefix tile and the tiles of the longest finite window, not every tile since the start;
    a finite window never reaches the prefix (the lookups it could reach are refused,
    `IncompleteWindow`). Exact for every exact function (integer sums, MIN/MAX, LAST_N's n best
    entries, TOP_K's whole histogram); a DOUBLE sum or STDDEV/VAR is rounded once more at the
    prefix (last bits)."""
    k = bisect.bisect_left(starts, keep_from)
    if k <= 1:
        return list(starts), {c: list(v) for c, v in columns.items()}
    window = ListWindow(columns, 0, k)
    out: dict[str, list[Any]] = {}
    for a in view.aggregations:
        fn = for_aggregation(a)
        # a sketch's merge is the window's union (an object, or the list of its tiles'
        # sketches), not a partial: its prefix is the one sketch the core combines them into
        merged = compaction.combine(fn, a.name, window, {}) if a.function in SKETCH_FOLDS \
            else fn.merge(window, a.name)
        for p, _ in tile_partials(a):
            col = partial_column(a.name, p)
            if p not in merged:
                raise ValueError(f"{a.function} cannot fold tiles into a lifetime prefix")
            out[col] = [merged[p], *columns[col][k:]]
    return [starts[0], *starts[k:]], out


class IncompleteWindow(UserError):
    """A lookup's window starts before the oldest tile the online store keeps: the store holds
    the tiles of the longest window before its last load, so an earlier time may need tiles
    it no longer has. Merging what is there would be a wrong value, so the lookup is refused."""

    def __init__(self, slide: int, loaded: int):
        super().__init__(f"the window ending {_iso(slide)} starts before the oldest tile the "
                         f"online store keeps (its last load is for {_iso(loaded)})")
        self.slide, self.loaded = slide, loaded


class UnknownPrefix(IncompleteWindow):
    """A known_at view with a lifetime window: the prefix tile (its older tiles folded at load)
    holds partials known after the lookup's time, which cannot be taken out of it."""

    def __init__(self, known_us: int, now_us: int):
        UserError.__init__(
            self, f"the lifetime window's oldest tiles, folded into one at load, hold events "
            f"created at {_iso(known_us // 1_000_000)}, after {_iso(now_us // 1_000_000)} "
            "(the view is known_at)")
        self.slide, self.loaded = now_us // 1_000_000, known_us // 1_000_000


def _iso(seconds: int) -> str:
    import datetime as dt

    return (dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)).isoformat()


class TileMerger:
    """The features of one aggregate view from its tiles at a time; compiled once per view."""

    def __init__(self, view: FeatureView, needed: set[int] | None = None):
        """`needed`: the indexes of the features to compute (default all; others stay None)."""
        self.view, self.needed = view, needed
        self._stream: StreamMerger | None = None  # cells kept fresh by pushes (stream_cells)
        self.slide = view.slide_seconds or 1
        # a known_at view's cells keep several partials per tile, in (start, known) order, and
        # when each was known (epoch us) as one more column: a lookup merges those known by then
        self.known_at = view.known_at
        self.names = (*partial_columns(view), KNOWN) if view.known_at else partial_columns(view)
        self.layouts: dict[bytes, Layout] = {}
        aggs = {a.name: a for a in view.aggregations}
        by_window: dict[int, list[tuple[AggregateFunction, str, str, int]]] = {}
        for k, f in enumerate(view.features):
            if needed is not None and k not in needed:
                continue
            a = aggs[f.aggregation or ""]
            by_window.setdefault(f.window_seconds or 0, []).append(
                (for_aggregation(a), a.name, f.type, k))
        self.by_window = tuple((w, tuple(specs)) for w, specs in sorted(by_window.items()))
        self.empty = [FUNCTIONS[aggs[f.aggregation].function].empty if f.aggregation else None
                      for f in view.features]
        # the longest finite window used; a lifetime window reads the prefix tile (with_prefix)
        self.lifetime = any(w == LIFETIME_SECONDS for w, _ in self.by_window)
        self.reach = max((w for w, _ in self.by_window if w != LIFETIME_SECONDS), default=0)
        # a load keeps the tiles of the view's longest finite window before its slide
        # (online_load); a view with a lifetime window folds the older ones into one tile
        finite = [w for w in view.windows if w != LIFETIME_SECONDS]
        self.stored = max(finite) if finite else self.slide
        self.prefixed = LIFETIME_SECONDS in view.windows

    def idle(self, head: list[Any], hi: int) -> list[Any] | None:
        """The features at slide `hi` from a head made for another slide: empty when every
        window starts after the head's last tile, else None (the tiles must be merged)."""
        last = head[2] if len(head) > 2 else None
        if self.lifetime:  # never empty once the entity has a tile
            return list(self.empty) if len(head) > 2 and last is None else None
        return list(self.empty) if last is not None and last < hi - self.reach else None

    def slide_start(self, now_us: int) -> int:
        """floor(now, S) in epoch seconds: where the windows of a lookup at `now_us` end."""
        return floor_s(now_us, self.slide)

    def __call__(self, payload: bytes | None, now_us: int) -> list[Any] | None:
        """The features at `now_us`; None when `payload` is a head (`split_merged`) whose
        values are for another slide: the caller reads the cell's tiles instead."""
        if payload is None:
            return list(self.empty)  # COUNT of an empty window is 0, others NULL
        if payload[:4] == STREAM_MAGIC:  # tiles and the exact head: the stream window
            if self._stream is None:
                self._stream = StreamMerger(self.view, self.needed)
            return self._stream(decode_stream(payload), now_us)
        hi = self.slide_start(now_us)
        if payload[:1] == b"[":  # a head: [merged_at, values, last tile start]
            if self.known_at:  # the values merged at load may hold partials known after now
                return None
            head = orjson.loads(payload)
            if head[0] == hi:
                return head[1]
            return self.idle(head, hi)
        if payload[:4] in _FQT:
            head = _FIXED.unpack_from(payload)
            if head[6] and head[5] == hi and not self.known_at:  # merged at load for this slide
                start = _FIXED.size + head[4]
                merged: list[Any] = orjson.loads(payload[start:start + head[6]])
                return merged
        loaded = merged_at(payload)
        if loaded is not None and hi < loaded and hi - self.reach < loaded - self.stored:
            raise IncompleteWindow(hi, loaded)
        if payload[:4] == COMPACT_MAGIC:  # fine edges and coarse middles
            from featql.online import compacted

            return compacted.merge(self, payload, hi)
        return self.merge(unpack(payload, self.names, self.layouts), hi, now_us)

    def merge(self, p: Packed, hi: int, now_us: int | None = None) -> list[Any]:
        """The features over the tiles of `p` for windows ending at `hi` (a slide start); a
        known_at view's over the partials known by `now_us` (None: all of them)."""
        if self.known_at:
            return self._merge_known(p, hi, now_us)
        out: list[Any] = list(self.empty)
        base, unit = p.base, p.unit
        for w, specs in self.by_window:
            lo, _ = batch_window(hi, w, self.slide)
            # tile start = base + unit * offset >= x  <=>  offset >= ceil((x - base) / unit)
            i, j = tile_range(p.offsets, -((base - lo) // unit), -((base - hi) // unit))
            if i == j:
                continue
            window = _PackedWindow(p, i, j)
            for fn, agg, type_, k in specs:
                out[k] = fn.finalize(fn.merge(window, agg), type_)
        return out

    def _merge_known(self, p: Packed, hi: int, now_us: int | None) -> list[Any]:
        """A known_at view: the partials with `known <= now` (a late event's partial is seen
        once created), in the cell's (start, known) order, merged as training sets merge them.
        A lifetime view's prefix tile (with_prefix) is known when its newest partial was: a
        lookup before that is refused, never merged without it."""
        everything = _PackedWindow(p, 0, len(p.offsets))
        known = everything.column(KNOWN)
        keep = [i for i, k in enumerate(known) if now_us is None or k <= now_us]
        if self.prefixed and known and now_us is not None and known[0] > now_us:
            raise UnknownPrefix(known[0], now_us)
        starts = [p.base + p.unit * p.offsets[i] for i in keep]
        columns: dict[str, list[Any]] = {}
        for name in self.names[:-1]:
            values = everything.column(name)
            columns[name] = [values[i] for i in keep]
        out: list[Any] = list(self.empty)
        for w, specs in self.by_window:
            lo, _ = batch_window(hi, w, self.slide)
            i, j = tile_range(starts, lo, hi)
            if i == j:
                continue
            window = ListWindow(columns, i, j)
            for fn, agg, type_, k in specs:
                out[k] = fn.finalize(fn.merge(window, agg), type_)
        return out


def with_known(view: FeatureView, starts: Sequence[int], known: Sequence[int],
               keep_from: int) -> list[int]:
    """The known times of a known_at view's tiles after `with_prefix` folded those starting
    before `keep_from`: the prefix tile is known when its newest partial was."""
    k = bisect.bisect_left(starts, keep_from)
    if k <= 1 or LIFETIME_SECONDS not in view.windows:
        return list(known)
    return [max(known[:k]), *known[k:]]
