"""Random point-in-time cases for the harness: small views, events and spines, as Python rows
(for the oracle) and as Arrow tables and a `PointInTimeJoin` (for the engines).

Times sit on a coarse grid so ties on ts, spine times equal to event times and rows exactly
one TTL old are frequent; keys and values come from tiny pools so ties on created and on
whole feature tuples happen; NULLs appear in keys, times, created and features.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from featql.dialects.pit import (
    TILE_START,
    OutputFeature,
    PointInTimeJoin,
    ViewJoin,
    relation_name,
)
from runtime.oracle import AggSpec, AggView, RowView, floor_time

BASE = datetime(2024, 1, 1)
HOUR = 3600


def _grid(minutes: int, n: int) -> st.SearchStrategy[datetime]:
    return st.integers(0, n).map(lambda i: BASE + timedelta(minutes=minutes * i))


_user = st.sampled_from([1, 2, 3])
_merchant = st.sampled_from(["a", "b", "é"])
_ts = _grid(30, 12)
_maybe_ts = st.one_of(_ts, _ts, _ts, _ts, st.none())
_small_int = st.one_of(st.integers(-3, 3), st.none())
_small_str = st.one_of(st.sampled_from(["x", "y", "Z"]), st.none())
_small_float = st.one_of(st.sampled_from([-1.5, 0.0, 2.25, 1e9]), st.none())
_ttl = st.sampled_from([None, HOUR, 2 * HOUR, 90 * 60])


@dataclass
class Case:
    spine: list[dict[str, Any]]
    a: RowView  # row-level, key user_id, features fa_int, fa_str, created column
    c: RowView  # row-level, composite key (user_id, merchant), feature fc
    b: AggView  # aggregate, string key merchant


@st.composite
def _twins(draw: st.DrawFn, rows: list[dict[str, Any]],
           fields: dict[str, st.SearchStrategy[Any]]) -> list[dict[str, Any]]:
    """Rows sharing the keys and event time of drawn rows, other values redrawn (or not):
    random lists alone rarely hold a tie on (keys, ts)."""
    if not rows or draw(st.integers(0, 3)) == 0:
        return []
    picks = draw(st.lists(st.sampled_from(rows), min_size=1, max_size=3))
    return [{**row, **{k: draw(v) for k, v in fields.items() if draw(st.booleans())}}
            for row in picks]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    a_rows = draw(st.lists(st.fixed_dictionaries({
        "user_id": st.one_of(_user, _user, _user, st.none()), "ts": _maybe_ts,
        "_featql_created": st.one_of(_ts, st.none()), "fa_int": _small_int,
        "fa_str": _small_str}), max_size=10))
    c_rows = draw(st.lists(st.fixed_dictionaries({
        "user_id": _user, "merchant": _merchant, "ts": _ts, "_featql_created": st.none(),
        "fc": _small_float}), max_size=8))
    events = draw(st.lists(st.fixed_dictionaries({
        "merchant": _merchant, "ts": _grid(20, 24), "x": _small_int}), max_size=14))
    spine = draw(st.lists(st.fixed_dictionaries({
        "user_id": st.one_of(_user, _user, _user, _user, st.none()),
        "merchant": st.one_of(_merchant, _merchant, _merchant, st.none()),
        "t": st.one_of(_grid(15, 30), _grid(15, 30), _grid(15, 30), st.none()),
        "label": st.integers(0, 1)}), min_size=1, max_size=10))
    if spine and draw(st.booleans()):
        spine.append(dict(draw(st.sampled_from(spine))))  # duplicate spine row
    a_rows += draw(_twins(a_rows, {"_featql_created": st.one_of(_ts, st.none()),
                                   "fa_int": _small_int, "fa_str": _small_str}))
    c_rows += draw(_twins(c_rows, {"fc": _small_float}))
    a = RowView("va", ["user_id"], "ts", ["fa_int", "fa_str"], draw(_ttl), a_rows)
    c = RowView("vc", ["user_id", "merchant"], "ts", ["fc"], draw(_ttl), c_rows)
    b = AggView("vb", ["merchant"], HOUR, [HOUR, 3 * HOUR],
                [AggSpec("cnt", "count", None), AggSpec("cx", "count", "x"),
                 AggSpec("sx", "sum", "x"), AggSpec("ax", "avg", "x"),
                 AggSpec("mn", "min", "x"), AggSpec("mx", "max", "x")], events)
    return Case(spine, a, c, b)


def merge(batch: list[Case]) -> Case:
    """Several cases as one, their keys made disjoint (one engine job checks them all)."""
    spine: list[dict[str, Any]] = []
    a_rows: list[dict[str, Any]] = []
    c_rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    def shift(row: dict[str, Any], i: int) -> dict[str, Any]:
        out = dict(row)
        if out.get("user_id") is not None:
            out["user_id"] += 100 * i
        if out.get("merchant") is not None:
            out["merchant"] = f"{i}:{out['merchant']}"
        return out

    for i, case in enumerate(batch):
        spine += [shift(r, i) for r in case.spine]
        a_rows += [shift(r, i) for r in case.a.rows]
        c_rows += [shift(r, i) for r in case.c.rows]
        events += [shift(r, i) for r in case.b.events]
    first = batch[0]
    return Case(spine,
                RowView("va", first.a.keys, "ts", first.a.features, first.a.ttl, a_rows),
                RowView("vc", first.c.keys, "ts", first.c.features, first.c.ttl, c_rows),
                AggView("vb", first.b.keys, first.b.slide, first.b.windows, first.b.aggs, events))


SPINE_SCHEMA = pa.schema([("user_id", pa.int64()), ("merchant", pa.string()),
                          ("t", pa.timestamp("us")), ("label", pa.int64())])
A_SCHEMA = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")),
                      ("_featql_created", pa.timestamp("us")), ("fa_int", pa.int64()),
                      ("fa_str", pa.string())])
C_SCHEMA = pa.schema([("user_id", pa.int64()), ("merchant", pa.string()),
                      ("ts", pa.timestamp("us")), ("_featql_created", pa.timestamp("us")),
                      ("fc", pa.float64())])
TILE_SCHEMA = pa.schema([("merchant", pa.string()), (TILE_START, pa.timestamp("us")),
                         ("cnt__count", pa.int64()), ("cx__count", pa.int64()),
                         ("sx__sum", pa.int64()), ("sx__count", pa.int64()),
                         ("ax__sum", pa.float64()), ("ax__count", pa.int64()),
                         ("mn__min", pa.int64()), ("mx__max", pa.int64())])


def tiles(view: AggView) -> pa.Table:
    """The view's events grouped per (key, tile): what the dialect's tile SQL computes."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for e in view.events:
        groups[(e["merchant"], floor_time(e["ts"], view.slide))].append(e)
    rows = []
    for (m, start), evs in sorted(groups.items()):
        xs = [e["x"] for e in evs if e["x"] is not None]
        rows.append({"merchant": m, TILE_START: start, "cnt__count": len(evs),
                     "cx__count": len(xs), "sx__sum": sum(xs) if xs else None,
                     "sx__count": len(xs), "ax__sum": float(sum(xs)) if xs else None,
                     "ax__count": len(xs), "mn__min": min(xs) if xs else None,
                     "mx__max": max(xs) if xs else None})
    return pa.Table.from_pylist(rows, schema=TILE_SCHEMA)


def tables(case: Case) -> dict[str, pa.Table]:
    return {
        "spine": pa.Table.from_pylist(case.spine, schema=SPINE_SCHEMA),
        relation_name("va", "row"): pa.Table.from_pylist(case.a.rows, schema=A_SCHEMA),
        relation_name("vc", "row"): pa.Table.from_pylist(case.c.rows, schema=C_SCHEMA),
        relation_name("vb", "aggregate"): tiles(case.b),
    }


def node(case: Case) -> PointInTimeJoin:
    a, c, b = case.a, case.c, case.b
    types = {"fa_int": "BIGINT", "fa_str": "STRING", "fc": "DOUBLE"}
    va = ViewJoin("va", "row", relation_name("va", "row"), ("user_id",), "ts",
                  tuple(OutputFeature(f, f"va__{f}", types[f]) for f in a.features),
                  tiebreak=tuple(a.features), ttl_seconds=a.ttl)
    vc = ViewJoin("vc", "row", relation_name("vc", "row"), ("user_id", "merchant"), "ts",
                  tuple(OutputFeature(f, f"vc__{f}", types[f]) for f in c.features),
                  tiebreak=tuple(c.features), ttl_seconds=c.ttl)
    agg_types = {"count": "BIGINT", "sum": "BIGINT", "avg": "DOUBLE", "min": "BIGINT",
                 "max": "BIGINT"}
    vb = ViewJoin("vb", "aggregate", relation_name("vb", "aggregate"), ("merchant",),
                  TILE_START,
                  tuple(OutputFeature(name, f"vb__{name}", agg_types[agg.function],
                                      agg.function, agg.name, w)
                        for name, agg, w in b.feature_names()),
                  slide_seconds=b.slide)
    return PointInTimeJoin(("user_id", "merchant"), (va, vb, vc))
