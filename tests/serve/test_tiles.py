"""The read-time tile merge equals a direct computation of the window semantics."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from featql.core.ir import Aggregation, Feature, FeatureView, Location
from featql.online.tiles import (
    TileMerger,
    decode_tiles,
    encode_tiles,
    merged_at,
    partial_columns,
    split_merged,
)

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


@settings(max_examples=150, deadline=None)
@given(tiles=tile_sets, now_s=st.integers(0, 45 * SLIDE))
def test_values_merged_at_load_equal_the_merge(tiles: dict[int, list[tuple[Any, Any]]],
                                               now_s: int) -> None:
    """A cell carrying the values merged for the slide of `now` returns exactly what merging
    its tiles returns; at any other slide it merges."""
    merge = TileMerger(VIEW)
    plain = pack(tiles) if tiles else pack({0: [(1, 1.0)]})
    hi = now_s - now_s % SLIDE
    want = merge(plain, now_s * 1_000_000)
    slots = sorted(tiles) or [0]
    names = partial_columns(VIEW)
    cols = decode_tiles(plain, names).columns
    raw = {n: [None if (n.endswith(("__min", "__max")) and v != v) else v for v in cols[n]]
           for n in names}
    with_merged = encode_tiles([s * SLIDE for s in slots], raw, merged=(hi, want))
    assert with_merged != plain
    got = merge(with_merged, now_s * 1_000_000)
    assert got == want and [type(x) for x in got] == [type(x) for x in want]
    # a later slide: the stored values no longer apply, the tiles are merged
    later = (now_s + SLIDE) * 1_000_000
    assert merge(with_merged, later) == merge(plain, later)
    # a stored value that is not what the merge gives would show: the merged values are read
    fake = encode_tiles([s * SLIDE for s in slots], raw, merged=(hi, [7] * len(want)))
    assert merge(fake, now_s * 1_000_000) == [7] * len(want)
    # split for DynamoDB: the head answers its slide only, the tiles every slide
    split = split_merged(with_merged)
    assert split is not None and split_merged(plain) is None
    head, tiles_only = split
    assert len(head) < len(with_merged) and merged_at(head) == merged_at(tiles_only) == hi
    got = merge(head, now_s * 1_000_000)
    assert got == want and [type(x) for x in got] == [type(x) for x in want]
    # another slide: the caller reads the tiles (unless no window reaches the last tile)
    later_hi = later // 1_000_000 - later // 1_000_000 % SLIDE
    if max(slots) * SLIDE < later_hi - max(WINDOWS):
        assert merge(head, later) == merge(plain, later)
    else:
        assert merge(head, later) is None
    # ... unless every window starts after the last tile: then all features are empty
    idle = (max(slots) * SLIDE + max(WINDOWS) + SLIDE + SLIDE * (now_s % 7)) * 1_000_000
    if idle // 1_000_000 - idle // 1_000_000 % SLIDE != hi:
        assert merge(head, idle) == merge(plain, idle) == merge(None, idle)
    just = (max(slots) * SLIDE + max(WINDOWS)) * 1_000_000  # the last tile still counts
    if just // 1_000_000 != hi:
        assert merge(head, just) is None and merge(plain, just) != merge(None, just)
    assert merge(tiles_only, now_s * 1_000_000) == want
    assert merge(tiles_only, later) == merge(plain, later)


def test_columns_are_stored_narrow_and_exact() -> None:
    names = ("n__count", "s__sum", "s__count", "lo__min", "hi__max")
    starts = [1_700_000_000 + 3600 * k for k in (0, 1, 5)]
    cases = {
        "n__count": [1, 300, 70_000],  # uint32
        "s__sum": [-(2**40), 2**62, 3],  # int64
        "s__count": [0, 1, 255],  # uint8
        "lo__min": [-0.0, 1.0, 2.0],  # -0.0 must stay -0.0: doubles
        "hi__max": [2.0**70, None, 1.5],  # beyond int64 and NULL: doubles
    }
    blob = encode_tiles(starts, cases)
    got = decode_tiles(blob, names)
    assert got.starts == starts
    assert [c.format for c in got.columns.values()] == ["I", "q", "B", "d", "d"]
    assert list(got.columns["s__sum"]) == [-(2**40), 2**62, 3]
    assert math.copysign(1.0, got.columns["lo__min"][0]) == -1.0
    assert got.nulls["hi__max"] and not got.nulls["lo__min"]
    assert math.isnan(got.columns["hi__max"][1])
    # shared columns: sum and avg of one input are stored once
    shared = encode_tiles(starts, {"a__sum": [1.5, 2.5, 3.5], "b__sum": [1.5, 2.5, 3.5]})
    alone = encode_tiles(starts, {"a__sum": [1.5, 2.5, 3.5], "b__sum": [1.5, 2.5, 4.5]})
    assert len(alone) - len(shared) == 3 * 8 + 2  # a second column: values, type, NULL flag
    try:
        decode_tiles(blob, names[:-1])
    except ValueError as e:
        assert "partial columns" in str(e)
    else:
        raise AssertionError("a layout of another view was accepted")


def test_cells_of_the_previous_format_are_still_read() -> None:
    """FQT2 cells (float64 columns, int64 starts, JSON header) loaded by earlier versions."""
    import struct

    import orjson

    starts = [0, 3600, 7200]
    cols = {"n__count": [1.0, 2.0, 3.0], "s__sum": [1.0, 0.0, 2.0], "s__count": [1.0, 0.0, 1.0],
            "a__sum": [1.0, 0.0, 2.0], "a__count": [1.0, 0.0, 1.0],
            "lo__min": [0.5, math.nan, -1.0], "hi__max": [0.5, math.nan, 4.0]}
    stored = [cols["n__count"], cols["s__sum"], cols["s__count"], cols["lo__min"],
              cols["hi__max"]]
    index = {"n__count": 0, "s__sum": 1, "s__count": 2, "a__sum": 1, "a__count": 2,
             "lo__min": 3, "hi__max": 4}
    header = orjson.dumps({"index": index, "nulls": [False, False, False, True, True]})
    header += b" " * (-(12 + len(header)) % 8)
    blob = b"".join([b"FQT2", struct.pack("<II", 3, len(header)), header,
                     struct.pack("<3q", *starts),
                     *(struct.pack("<3d", *c) for c in stored)])
    now = 3 * 3600 * 1_000_000  # all three tiles in the 4h and 24h windows, the last in 1h
    got = dict(zip((f.name for f in VIEW.features), TileMerger(VIEW)(blob, now), strict=True))
    assert got["n_3600"] == 3 and got["n_14400"] == 6
    assert got["s_14400"] == 3 and isinstance(got["s_14400"], int)
    assert got["a_14400"] == 1.5 and got["lo_14400"] == -1.0 and got["hi_3600"] == 4.0
    assert decode_tiles(blob).starts == starts


def test_values_orjson_cannot_hold_exactly_are_not_stored_merged() -> None:
    """NaN/inf or an int beyond 64 bits: no merged values (the lookup merges the tiles)."""
    names = partial_columns(VIEW)
    cols: dict[str, list[Any]] = {n: [1] for n in names}
    plain = encode_tiles([0], cols)
    n = len(VIEW.features)
    for bad in (math.inf, math.nan, 1 << 70):
        assert encode_tiles([0], cols, merged=(3600, [bad] * n)) == plain
    assert encode_tiles([0], cols, merged=(3600, [1 << 62] * n)) != plain
