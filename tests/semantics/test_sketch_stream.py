"""The sketch functions on the stream rule `[floor(t,S) - W, t)` (a tiled tail plus the exact
head of raw events, `featql.semantics.windows.stream_merge`) and the batch rule, against raw
events: small windows are exact in both sketches (HLL's exact coupons, KLL under k values)."""

from __future__ import annotations

from fractions import Fraction
from math import ceil
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from featql.semantics.aggregates import FUNCTIONS, partial_column
from featql.semantics.time import floor
from featql.semantics.windows import batch_merge, stream_merge

SLIDE = 10
P = 0.3
FNS = {"approx_count_distinct": FUNCTIONS["approx_count_distinct"],
       "approx_percentile": FUNCTIONS["approx_percentile"].bind((P,))}
TYPES = {"approx_count_distinct": "BIGINT", "approx_percentile": "DOUBLE"}
values = st.none() | st.integers(-50, 50) | st.sampled_from([-0.0, 0.5, 2.0, -7.25])
events = st.lists(st.tuples(st.integers(-100, 100), values), max_size=40)


def tiles(evs: list[tuple[int, Any]], before: int) -> tuple[list[int], dict[str, list[Any]]]:
    by: dict[int, list[Any]] = {}
    for ts, v in evs:
        if ts < before:
            by.setdefault(floor(ts, SLIDE), []).append(v)
    starts = sorted(by)
    cols: dict[str, list[Any]] = {}
    for name, fn in FNS.items():
        for s in starts:
            for p, v in fn.fold(by[s]).items():
                cols.setdefault(partial_column(name, p), []).append(v)
    return starts, cols


def percentile(vals: list[Any]) -> Any:
    """The nearest-rank percentile: the smallest value whose rank reaches ceil(p * n)."""
    xs = [v for v in vals if v is not None]
    if not xs:
        return None
    ordered = sorted(float(v) for v in xs)
    return ordered[max(1, ceil(Fraction(str(P)) * len(ordered))) - 1]


def _kinds(vals: list[Any]) -> int:
    """Distinct values as DataSketches hashes them: an int as a 64-bit integer, a float as a
    double (so 2 and 2.0 are two values; -0.0 is 0.0)."""
    return len({(type(v) is float, v) for v in vals if v is not None})


@given(events, st.integers(-100, 100), st.integers(1, 5))
def test_stream_merge_is_the_exact_window_up_to_t(evs: list[tuple[int, Any]], t: int,
                                                  m: int) -> None:
    hi = floor(t, SLIDE)
    starts, cols = tiles(evs, hi)
    window = [v for ts, v in evs if hi - m * SLIDE <= ts < t]
    for name, fn in FNS.items():
        got = stream_merge(fn, name, starts, cols, evs, t, m * SLIDE, SLIDE, TYPES[name])
        want = _kinds(window) if name == "approx_count_distinct" else percentile(window)
        assert got == want and type(got) is type(want), (name, got, want)


@given(events, st.integers(-10, 10), st.integers(1, 5))
def test_on_a_slide_boundary_stream_and_batch_agree(evs: list[tuple[int, Any]], k: int,
                                                    m: int) -> None:
    t = k * SLIDE
    starts, cols = tiles(evs, t)
    for name, fn in FNS.items():
        assert stream_merge(fn, name, starts, cols, evs, t, m * SLIDE, SLIDE, TYPES[name]) == \
            batch_merge(fn, name, starts, cols, t, m * SLIDE, SLIDE, TYPES[name])


def test_empty_windows() -> None:
    for name, fn in FNS.items():
        empty = stream_merge(fn, name, [], {}, [], 5, SLIDE, SLIDE, TYPES[name])
        assert empty == fn.empty == (0 if name == "approx_count_distinct" else None)
        assert stream_merge(fn, name, [], {}, [(1, None)], 5, SLIDE, SLIDE, TYPES[name]) == empty
        assert stream_merge(fn, name, [], {}, [(5, 1), (7, 1), (-11, 1)], 5, SLIDE, SLIDE,
                            TYPES[name]) == empty
