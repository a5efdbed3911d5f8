"""The Spark UDFs' batch read of APPROX_PERCENTILE (`quantiles.nearest_rank`, numpy, a cache of
decoded sketches shared by a batch of windows) gives the value of the loop over the items."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from featql.semantics import quantiles
from featql.semantics import sketches as sk

_values = st.lists(st.one_of(st.none(), st.integers(-50, 50).map(float),
                             st.floats(allow_nan=True, allow_infinity=False, width=32)),
                   max_size=700)


@settings(max_examples=60, deadline=None)
@given(tiles=st.lists(_values, min_size=0, max_size=12),
       p=st.floats(0.001, 0.999), extra_none=st.booleans())
def test_batch_read_equals_the_item_loop(tiles: list[list[float | None]], p: float,
                                         extra_none: bool) -> None:
    built: list[bytes | None] = [sk.kll_build(t) for t in tiles]
    if extra_none:
        built.append(None)
    cache: quantiles.Decoded = {}
    frames = [built[i:] for i in range(len(built) + 1)]  # overlapping frames, one cache
    got = [sk.kll_quantile(f, p, cache) for f in frames]
    assert got == [sk.kll_quantile(f, p) for f in frames]


def test_the_cache_is_keyed_by_bytes_and_a_coarse_tile_reads_the_same() -> None:
    fine = [sk.kll_build([float(v * 7 % 1000) for v in range(i * 300, i * 300 + 450)])
            for i in range(4)]
    coarse = quantiles.union(fine)
    cache: quantiles.Decoded = {}
    for p in (0.01, 0.5, 0.9, 0.99):
        assert sk.kll_quantile([coarse], p, cache) == sk.kll_quantile([coarse], p)
        assert sk.kll_quantile(fine, p, cache) == sk.kll_quantile(fine, p)
    assert len(cache) == 5
