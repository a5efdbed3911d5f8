"""The stream rule `[floor(t,S) - W, t)` for issue 14's exact functions: `stream_merge` (tiled
tail folded per tile + the exact head of raw events) equals a brute-force computation over the
raw events of the window, for STDDEV/VAR, LAST_N, FIRST_N (and DISTINCT forms) and TOP_K."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from featql.semantics.aggregates import FUNCTIONS, partial_column
from featql.semantics.time import floor
from featql.semantics.windows import stream_merge

SLIDE = 10
CASES = [("stddev_samp", (), "DOUBLE"), ("var_pop", (), "DOUBLE"),
         ("last_n", (3,), "ARRAY<BIGINT>"), ("last_distinct_n", (2,), "ARRAY<BIGINT>"),
         ("first_n", (2,), "ARRAY<BIGINT>"), ("first_distinct_n", (3,), "ARRAY<BIGINT>"),
         ("top_k", (2,), "ARRAY<BIGINT>")]


def brute(function: str, n: int, events: list[tuple[int, Any]]) -> Any:
    present = [(t, v) for t, v in events if v is not None]
    values = [v for _, v in present]
    if not values:
        return None
    if function in ("stddev_samp", "var_pop"):
        k = len(values)
        if function == "stddev_samp" and k < 2:
            return None
        mean = math.fsum(values) / k
        ss = math.fsum((v - mean) ** 2 for v in values)
        return math.sqrt(ss / (k - 1)) if function == "stddev_samp" else ss / k
    if function == "top_k":
        counts: dict[int, int] = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        return sorted(counts, key=lambda v: (-counts[v], v))[:n]
    out: list[int] = []
    for _, v in sorted(present, reverse=function.startswith("last")):
        if "distinct" in function and v in out:
            continue
        out.append(v)
    return out[:n]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-60, 60), st.one_of(st.none(), st.integers(-4, 4))),
                max_size=25),
       st.integers(-50, 70), st.sampled_from([10, 20, 40]), st.sampled_from(CASES))
def test_stream_merge_equals_the_raw_events(events: list[tuple[int, int | None]], t: int,
                                            window: int, spec: tuple[str, tuple[int, ...], str]
                                            ) -> None:
    name, args, result_type = spec
    fn = FUNCTIONS[name].bind(args)
    hi = floor(t, SLIDE)
    tail = sorted({floor(ts, SLIDE) for ts, _ in events if ts < hi})
    columns: dict[str, list[Any]] = {}
    for start in tail:
        rows = [(ts, v) for ts, v in events if floor(ts, SLIDE) == start]
        folded = fn.fold(rows if fn.ordered else [v for _, v in rows])
        for p, value in folded.items():
            columns.setdefault(partial_column("a", p), []).append(value)
    head = [(ts, v) for ts, v in events if ts >= hi]
    got = stream_merge(fn, "a", tail, columns, head, t, window, SLIDE, result_type)
    want = brute(name, args[0] if args else 0, [(ts, v) for ts, v in events
                                                 if hi - window <= ts < t])
    if isinstance(want, float) and isinstance(got, float):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    else:
        assert got == want
