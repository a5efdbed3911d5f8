"""A brute-force, pure-Python reading of PRODUCT §3: the reference the engines are checked with.

Nothing here is shared with the runtime: each spine row scans every row or event of every view.
- Row-level view: among rows with the spine's keys and `ts < t`, the greatest ts; ties broken by
  the greatest created, then by the greatest feature tuple (NULL smallest at every position);
  its features if `t - ts <= ttl`, else NULL. A `known_at` view first drops the rows not created
  by t (`created <= t`; a NULL created never is).
- Aggregate view (batch): events with `floor(t, S) - W <= ts < floor(t, S)` (epoch-aligned
  floor); COUNT(*) counts rows, other functions ignore NULL inputs; COUNT of nothing is 0, the
  rest NULL; avg = sum / count.
A spine row with a NULL key or time gets NULL (COUNT: NULL too, as no window is defined).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1)


@dataclass
class RowView:
    name: str
    keys: list[str]
    ts: str
    features: list[str]
    ttl: int | None  # seconds
    rows: list[dict[str, Any]] = field(default_factory=list)  # keys, ts, _featql_created, features
    known_at: bool = False  # a row is seen at t only when its _featql_created <= t


@dataclass
class AggSpec:
    name: str
    function: str  # count | sum | avg | min | max
    input: str | None  # None: COUNT(*)


@dataclass
class AggView:
    name: str
    keys: list[str]
    slide: int  # seconds
    windows: list[int]  # seconds
    aggs: list[AggSpec]
    events: list[dict[str, Any]] = field(default_factory=list)  # keys, ts, inputs
    suffixes: dict[int, str] = field(default_factory=dict)  # window seconds -> name suffix

    def feature_names(self) -> list[tuple[str, AggSpec, int]]:
        return [(f"{a.name}_{self.suffixes.get(w, f'{w}s')}", a, w)
                for a in self.aggs for w in self.windows]


def _nullable_key(v: Any) -> tuple[int, Any]:
    return (0, 0) if v is None else (1, v)


def floor_time(t: datetime, slide: int) -> datetime:
    us = (t - EPOCH) // timedelta(microseconds=1)
    step = slide * 1_000_000
    return EPOCH + timedelta(microseconds=us - us % step)


def row_value(view: RowView, key: tuple[Any, ...], t: datetime) -> dict[str, Any]:
    empty = {f: None for f in view.features}
    if t is None or any(k is None for k in key):
        return empty
    best: dict[str, Any] | None = None
    best_rank: tuple[Any, ...] | None = None
    for r in view.rows:
        if tuple(r[k] for k in view.keys) != key or r[view.ts] is None or not r[view.ts] < t:
            continue
        if view.known_at and (r.get("_featql_created") is None or r["_featql_created"] > t):
            continue
        rank = (r[view.ts], _nullable_key(r.get("_featql_created")),
                *(_nullable_key(r[f]) for f in view.features))
        if best_rank is None or rank > best_rank:
            best, best_rank = r, rank
    if best is None:
        return empty
    if view.ttl is not None and t - best[view.ts] > timedelta(seconds=view.ttl):
        return empty
    return {f: best[f] for f in view.features}


def agg_value(view: AggView, key: tuple[Any, ...], t: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fname, agg, window in view.feature_names():
        if t is None or any(k is None for k in key):
            out[fname] = None
            continue
        hi = floor_time(t, view.slide)
        lo = hi - timedelta(seconds=window)
        rows = [e for e in view.events if tuple(e[k] for k in view.keys) == key
                and e["ts"] is not None and lo <= e["ts"] < hi]
        if agg.function == "count":
            out[fname] = len(rows) if agg.input is None else sum(
                1 for e in rows if e[agg.input] is not None)
            continue
        values = [e[agg.input] for e in rows if e[agg.input] is not None]  # type: ignore[index]
        if not values:
            out[fname] = None
        elif agg.function == "sum":
            out[fname] = sum(values)
        elif agg.function == "avg":
            out[fname] = sum(values) / len(values)
        elif agg.function == "min":
            out[fname] = min(values)
        else:
            out[fname] = max(values)
    return out


def training_set(spine: list[dict[str, Any]], t_col: str,
                 views: list[RowView | AggView]) -> list[dict[str, Any]]:
    """One dict per spine row: the spine's columns, then `<view>__<feature>` for every view."""
    out = []
    for row in spine:
        result = dict(row)
        for v in views:
            key = tuple(row[k] for k in v.keys)
            values = (row_value(v, key, row[t_col]) if isinstance(v, RowView)
                      else agg_value(v, key, row[t_col]))
            result.update({f"{v.name}__{f}": val for f, val in values.items()})
        out.append(result)
    return out
