"""Aggregate views online: packed tile sets and their read-time merge (Chronon-style).

A cell holds, for one entity, the tiles (partials per slide) of the view's longest window
ending at the end of the materialized data. `TileMerger(view)(tiles, now)` returns the view's
features exactly as the training set computes them at t = now: window
`[floor(now, S) - W, floor(now, S))`, COUNT over an empty window 0, SUM/AVG/MIN/MAX NULL,
avg = sum / count.

Packing (`FQT2`): tile starts (int64 epoch seconds, ascending) then one float64 column per
*distinct* partial (sum and avg of the same input share their columns), 8-byte aligned so a
read is a zero-copy `memoryview.cast`. NULLs: a `__sum`/`__count` partial is stored as 0 (the
count says whether the sum is NULL); min/max NULLs are NaN, flagged per column so windows
without NULLs merge at C speed.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from featql.compiler.ir import FeatureView

_MAGIC = b"FQT2"
_INT_TYPES = frozenset({"BIGINT", "INT", "INTEGER", "SMALLINT", "TINYINT"})
_HEADERS: dict[bytes, tuple[dict[str, int], tuple[bool, ...]]] = {}


def partial_columns(view: FeatureView) -> tuple[str, ...]:
    """The tile columns of an aggregate view, in the dialects' column contract."""
    cols: list[str] = []
    for a in view.aggregations:
        parts = {"count": ("count",), "sum": ("sum", "count"), "avg": ("sum", "count"),
                 "min": ("min",), "max": ("max",)}[a.function]
        cols.extend(f"{a.name}__{p}" for p in parts)
    return tuple(cols)


def encode_tiles(starts: Sequence[int], columns: Mapping[str, Sequence[Any]]) -> bytes:
    """Pack tiles: starts (epoch seconds, ascending) and partials (None = NULL) by name."""
    stored: list[bytes] = []
    nulls: list[bool] = []
    index: dict[str, int] = {}
    seen: dict[bytes, int] = {}
    for name, values in columns.items():
        zero = name.endswith(("__sum", "__count"))
        vals = [(0.0 if zero else math.nan) if v is None else float(v) for v in values]
        blob = struct.pack(f"<{len(vals)}d", *vals)
        if blob not in seen:
            seen[blob] = len(stored)
            stored.append(blob)
            nulls.append(not zero and any(v is None for v in values))
        index[name] = seen[blob]
    header = orjson.dumps({"index": index, "nulls": nulls})
    header += b" " * (-(12 + len(header)) % 8)
    return b"".join([_MAGIC, struct.pack("<II", len(starts), len(header)), header,
                     struct.pack(f"<{len(starts)}q", *starts), *stored])


@dataclass(frozen=True)
class Tiles:
    starts: Any  # memoryview of int64
    columns: dict[str, Any]  # name -> memoryview of float64
    nulls: dict[str, bool]


def decode_tiles(payload: bytes) -> Tiles:
    if payload[:4] != _MAGIC:
        raise ValueError("not a featql tile set")
    n, hlen = struct.unpack_from("<II", payload, 4)
    header = payload[12:12 + hlen]
    parsed = _HEADERS.get(header)
    if parsed is None:
        data = orjson.loads(header)
        parsed = (data["index"], tuple(data["nulls"]))
        if len(_HEADERS) < 4096:
            _HEADERS[header] = parsed
    index, nulls = parsed
    mv = memoryview(payload)
    pos = 12 + hlen
    starts = mv[pos:pos + 8 * n].cast("q")
    pos += 8 * n
    stored = [mv[pos + 8 * n * k:pos + 8 * n * (k + 1)].cast("d") for k in range(len(nulls))]
    return Tiles(starts, {name: stored[k] for name, k in index.items()},
                 {name: nulls[k] for name, k in index.items()})


class TileMerger:
    """The features of one aggregate view from its tiles at a time; compiled once per view."""

    def __init__(self, view: FeatureView):
        self.slide = view.slide_seconds or 1
        aggs = {a.name: a for a in view.aggregations}
        by_window: dict[int, list[tuple[str, str, str, bool, int]]] = {}
        for k, f in enumerate(view.features):
            a = aggs[f.aggregation or ""]
            part = {"count": "count", "sum": "sum", "avg": "sum"}.get(a.function, a.function)
            by_window.setdefault(f.window_seconds or 0, []).append(
                (a.function, f"{a.name}__{part}", f"{a.name}__count",
                 f.type.upper() in _INT_TYPES, k))
        self.by_window = tuple((w, tuple(specs)) for w, specs in sorted(by_window.items()))
        self.empty = [0 if f.aggregation and aggs[f.aggregation].function == "count" else None
                      for f in view.features]

    def __call__(self, tiles: Tiles | None, now_us: int) -> list[Any]:
        out: list[Any] = list(self.empty)  # COUNT of an empty window is 0, others NULL
        if tiles is None:
            return out
        now_s = now_us // 1_000_000
        hi = now_s - now_s % self.slide
        starts = tiles.starts
        j = bisect_left(starts, hi)
        cols, nulls = tiles.columns, tiles.nulls
        for w, specs in self.by_window:
            i = bisect_left(starts, hi - w, 0, j)
            if i == j:
                continue
            sums: dict[int, float] = {}  # per stored column: sum and avg share theirs
            for fn, col, count_col, is_int, k in specs:
                if fn == "count" or fn == "sum" or fn == "avg":
                    cmv = cols[count_col if fn != "count" else col]
                    n = sums.get(id(cmv))
                    if n is None:
                        n = sums[id(cmv)] = sum(cmv[i:j])
                    if fn == "count":
                        out[k] = int(n)
                        continue
                    if n == 0:
                        continue
                    smv = cols[col]
                    total = sums.get(-id(smv))
                    if total is None:
                        total = sums[-id(smv)] = math.fsum(smv[i:j])
                    out[k] = (int(total) if is_int else total) if fn == "sum" else total / n
                else:
                    vals: Any = cols[col][i:j]
                    if nulls[col]:
                        vals = [x for x in vals if x == x]
                        if not vals:
                            continue
                    v = max(vals) if fn == "max" else min(vals)
                    out[k] = int(v) if is_int else v
        return out
