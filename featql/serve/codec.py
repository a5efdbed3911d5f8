"""What the online cells hold: row-level values and tile sets, and how they are read back.

- Row-level view cell: orjson `[event_us, created_us, [feature values...]]`, versioned by
  (event time, created, digest). TTL is applied when read: see `row_values`.
- Aggregate view cell: a packed tile set (the partials per slide of the longest window ending at
  the end of the materialized interval), versioned by that end. `merge_tiles` merges them at read
  time exactly like the training set: window `[floor(t, S) - W, floor(t, S))`, COUNT over an
  empty window 0, SUM/AVG/MIN/MAX NULL.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from array import array
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from featql.compiler.ir import FeatureView

_MAGIC = b"FQT1"
_INT_TYPES = frozenset({"BIGINT", "INT", "INTEGER", "SMALLINT", "TINYINT"})
_EPOCH = dt.datetime(1970, 1, 1)


def cell_name(view: FeatureView) -> str:
    """The store's name for a view's cells: a redefined view (new fingerprint) starts afresh."""
    return f"{view.name}@{view.fingerprint[:12]}"


def item_key(entity: str, keys: Sequence[Any]) -> str:
    """The store key of one entity instance: `user#[42]`, `pair#[1,"x"]`."""
    return entity + "#" + orjson.dumps(list(keys)).decode()


def to_micros(value: Any) -> int:
    """Microseconds since the epoch of a naive-UTC datetime (or an aware one), date, or int."""
    if isinstance(value, int):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, dt.date):
        return (value - _EPOCH.date()).days * 86_400_000_000
    raise TypeError(f"not a timestamp: {value!r}")


def from_micros(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)


def plain(value: Any) -> Any:
    """A JSON-ready value: timestamps as ISO strings, decimals as floats, NaN as NULL."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return plain(value.item())
    return str(value)


# -- row-level ---------------------------------------------------------------------------------
def encode_row(event_us: int, created_us: int | None, values: Sequence[Any]) -> bytes:
    return orjson.dumps([event_us, created_us, [plain(v) for v in values]])


def decode_row(payload: bytes) -> tuple[int, int | None, list[Any]]:
    event_us, created_us, values = orjson.loads(payload)
    return event_us, created_us, values


def row_visible(event_us: int, now_us: int, ttl_seconds: int | None) -> bool:
    """PRODUCT §3: strictly before t, and no older than the TTL."""
    if event_us >= now_us:
        return False
    return ttl_seconds is None or now_us - event_us <= ttl_seconds * 1_000_000


# -- tiles -------------------------------------------------------------------------------------
def partial_columns(view: FeatureView) -> tuple[str, ...]:
    """The tile columns of an aggregate view, in the dialects' column contract."""
    cols: list[str] = []
    for a in view.aggregations:
        parts = {"count": ("count",), "sum": ("sum", "count"), "avg": ("sum", "count"),
                 "min": ("min",), "max": ("max",)}[a.function]
        cols.extend(f"{a.name}__{p}" for p in parts)
    return tuple(cols)


@dataclass(frozen=True)
class TileSet:
    starts: array  # int64 tile starts, epoch seconds, ascending
    columns: dict[str, array]  # float64 partials, NaN = NULL


def encode_tiles(starts: Sequence[int], columns: Mapping[str, Sequence[Any]]) -> bytes:
    """Pack tiles (start seconds ascending; partial values, None = NULL)."""
    names = list(columns)
    header = orjson.dumps(names)
    out = [_MAGIC, struct.pack("<IH", len(starts), len(header)), header,
           array("q", starts).tobytes()]
    for n in names:
        out.append(array("d", [math.nan if v is None else float(v)
                               for v in columns[n]]).tobytes())
    return b"".join(out)


def decode_tiles(payload: bytes) -> TileSet:
    if payload[:4] != _MAGIC:
        raise ValueError("not a featql tile set")
    n, hlen = struct.unpack_from("<IH", payload, 4)
    pos = 10
    names = orjson.loads(payload[pos:pos + hlen])
    pos += hlen
    starts = array("q")
    starts.frombytes(payload[pos:pos + 8 * n])
    pos += 8 * n
    cols: dict[str, array] = {}
    for name in names:
        col = array("d")
        col.frombytes(payload[pos:pos + 8 * n])
        pos += 8 * n
        cols[name] = col
    return TileSet(starts, cols)


def _typed(value: float, type_: str) -> int | float:
    return int(value) if type_ in _INT_TYPES else value


def merge_tiles(view: FeatureView, tiles: TileSet | None, now_us: int) -> list[Any]:
    """The view's features (in view order) at time `now_us`, merged from its tiles."""
    slide = view.slide_seconds or 1
    now_s = now_us // 1_000_000
    hi = now_s - now_s % slide
    aggs = {a.name: a for a in view.aggregations}
    bounds: dict[int, tuple[int, int]] = {}
    out: list[Any] = []
    for f in view.features:
        agg = aggs[f.aggregation or ""]
        window = f.window_seconds or 0
        if tiles is None:
            out.append(0 if agg.function == "count" else None)
            continue
        if window not in bounds:
            bounds[window] = (bisect_left(tiles.starts, hi - window),
                              bisect_left(tiles.starts, hi))
        i, j = bounds[window]
        cols = tiles.columns
        fn = agg.function
        if fn == "count":
            out.append(int(sum(cols[f"{agg.name}__count"][i:j])))
        elif fn in ("sum", "avg"):
            n = sum(cols[f"{agg.name}__count"][i:j])
            if n == 0:
                out.append(None)
                continue
            total = math.fsum(x for x in cols[f"{agg.name}__sum"][i:j] if x == x)
            out.append(_typed(total, f.type) if fn == "sum" else total / n)
        else:
            vals = [x for x in cols[f"{agg.name}__{fn}"][i:j] if x == x]
            if not vals:
                out.append(None)
            else:
                out.append(_typed(max(vals) if fn == "max" else min(vals), f.type))
    return out
