"""The read-time tile merge equals a direct computation of the window semantics."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from featql.compiler.ir import Aggregation, Feature, FeatureView, Location
from featql.serve.tiles import TileMerger, encode_tiles, partial_columns

SLIDE = 3600
WINDOWS = (3600, 4 * 3600, 24 * 3600)
AGGS = (Aggregation("n", "count", None, None, "BIGINT"),
        Aggregation("s", "sum", "x", "BIGINT", "BIGINT"),
        Aggregation("a", "avg", "x", "BIGINT", "DOUBLE"),
        Aggregation("lo", "min", "y", "DOUBLE", "DOUBLE"),
        Aggregation("hi", "max", "y", "DOUBLE", "DOUBLE"))
VIEW = FeatureView(
    name="v", base_name="v", variant=None, location=Location("v.sql", 1, 1), kind="aggregate",
    entity="e", keys=(), timestamp="ts", sql="", depends_on=(),
    features=tuple(Feature(f"{a.name}_{w}", a.type, "", a.name, w)
                   for a in AGGS for w in WINDOWS),
    fingerprint="f", schedule_seconds=SLIDE, start="2024-01-01", windows=WINDOWS,
    slide_seconds=SLIDE, aggregations=AGGS)

# one tile: (slot, events) where an event is (x or None, y or None)
events = st.lists(st.tuples(st.one_of(st.none(), st.integers(-50, 50)),
                            st.one_of(st.none(), st.floats(-1e6, 1e6))), min_size=1, max_size=4)
tile_sets = st.dictionaries(st.integers(0, 40), events, max_size=15)


def expected(tiles: dict[int, list[tuple[Any, Any]]], now_s: int) -> list[Any]:
    hi = now_s - now_s % SLIDE
    out = []
    for a in AGGS:
        for w in WINDOWS:
            evs = [e for slot, es in tiles.items() if hi - w <= slot * SLIDE < hi for e in es]
            xs = [x for x, _ in evs if x is not None]
            ys = [y for _, y in evs if y is not None]
            out.append({"count": len(evs), "sum": sum(xs) if xs else None,
                        "avg": sum(xs) / len(xs) if xs else None,
                        "min": min(ys) if ys else None, "max": max(ys) if ys else None}[a.function])
    return out


def pack(tiles: dict[int, list[tuple[Any, Any]]]) -> bytes:
    slots = sorted(tiles)
    cols: dict[str, list[Any]] = {c: [] for c in partial_columns(VIEW)}
    for slot in slots:
        evs = tiles[slot]
        xs = [x for x, _ in evs if x is not None]
        ys = [y for _, y in evs if y is not None]
        cols["n__count"].append(len(evs))
        for name in ("s", "a"):
            cols[f"{name}__sum"].append(sum(xs) if xs else None)
            cols[f"{name}__count"].append(len(xs))
        cols["lo__min"].append(min(ys) if ys else None)
        cols["hi__max"].append(max(ys) if ys else None)
    return encode_tiles([s * SLIDE for s in slots], cols)


@settings(max_examples=200, deadline=None)
@given(tiles=tile_sets, now_s=st.integers(0, 45 * SLIDE))
def test_merge_equals_the_window_semantics(tiles: dict[int, list[tuple[Any, Any]]],
                                           now_s: int) -> None:
    merge = TileMerger(VIEW)
    got = merge(pack(tiles) if tiles else None, now_s * 1_000_000)
    want = expected(tiles, now_s)
    for f, g, w in zip(VIEW.features, got, want, strict=True):
        if w is None or g is None:
            assert g is None and w is None, (f.name, g, w)
        else:
            assert math.isclose(g, w, rel_tol=1e-12, abs_tol=1e-9), (f.name, g, w)
            assert isinstance(g, int) == (f.type == "BIGINT"), f.name
