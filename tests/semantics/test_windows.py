"""The stream rule `[floor(t,S) - W, t)`: a tiled tail plus an exact head, against raw events."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from featql.semantics.aggregates import FUNCTIONS, partial_column
from featql.semantics.time import floor
from featql.semantics.windows import batch_merge, stream_merge

SLIDE = 10
TYPES = {"count": "BIGINT", "sum": "BIGINT", "avg": "DOUBLE", "min": "BIGINT", "max": "BIGINT"}
# the five basic functions; issue 14's have their own stream tests (test_exact_stream.py,
# test_sketch_stream.py)
BASIC = {name: FUNCTIONS[name] for name in TYPES}
events = st.lists(st.tuples(st.integers(-100, 100), st.none() | st.integers(-50, 50)),
                  max_size=25)


def tiles(evs: list[tuple[int, Any]], before: int) -> tuple[list[int], dict[str, list[Any]]]:
    """The tiles (folded by each function) of the events before `before` (a slide start)."""
    by: dict[int, list[Any]] = {}
    for ts, v in evs:
        if ts < before:
            by.setdefault(floor(ts, SLIDE), []).append(v)
    starts = sorted(by)
    cols: dict[str, list[Any]] = {}
    for name, fn in BASIC.items():
        for s in starts:
            for p, v in fn.fold(by[s]).items():
                cols.setdefault(partial_column(name, p), []).append(v)
    return starts, cols


def direct(name: str, values: list[Any]) -> Any:
    xs = [v for v in values if v is not None]
    if name == "count":
        return len(xs)
    if not xs:
        return None
    return {"sum": sum(xs), "avg": sum(xs) / len(xs), "min": min(xs), "max": max(xs)}[name]


@given(events, st.integers(-100, 100), st.integers(1, 5))
def test_stream_merge_is_the_exact_window_up_to_t(evs: list[tuple[int, Any]], t: int,
                                                  m: int) -> None:
    hi = floor(t, SLIDE)
    starts, cols = tiles(evs, hi)  # the tail: complete tiles only
    for name, fn in BASIC.items():
        got = stream_merge(fn, name, starts, cols, evs, t, m * SLIDE, SLIDE, TYPES[name])
        want = direct(name, [v for ts, v in evs if hi - m * SLIDE <= ts < t])
        assert got == want and type(got) is type(want), (name, got, want)


@given(events, st.integers(-10, 10), st.integers(1, 5))
def test_on_a_slide_boundary_stream_and_batch_agree(evs: list[tuple[int, Any]], k: int,
                                                    m: int) -> None:
    t = k * SLIDE  # no head: [floor(t) - W, t) is the batch window
    starts, cols = tiles(evs, t)
    for name, fn in BASIC.items():
        assert stream_merge(fn, name, starts, cols, evs, t, m * SLIDE, SLIDE, TYPES[name]) == \
            batch_merge(fn, name, starts, cols, t, m * SLIDE, SLIDE, TYPES[name])


def test_empty_windows() -> None:
    for name, fn in BASIC.items():
        empty = stream_merge(fn, name, [], {}, [], 5, SLIDE, SLIDE, TYPES[name])
        assert empty == fn.empty == (0 if name == "count" else None)
        # a head of NULL inputs only
        assert stream_merge(fn, name, [], {}, [(1, None)], 5, SLIDE, SLIDE, TYPES[name]) == empty
        # events at or after t, or before the window, do not count
        assert stream_merge(fn, name, [], {}, [(5, 1), (7, 1), (-11, 1)], 5, SLIDE, SLIDE,
                            TYPES[name]) == empty
