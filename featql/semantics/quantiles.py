"""APPROX_PERCENTILE's tile sketch: a deterministic KLL sketch of doubles, the same bytes on any
engine.

Why not the library's own compaction: DataSketches KLL halves a full level keeping the odd or
the even items at random. The C++ library (the Python binding, `datasketches` 5.2.0) draws that
bit from a generator seeded by the clock, the Java library (inside Spark, 6.2.0) from the static
`KllSketch.random` shared by every task of the JVM. So past k values a tile built twice by the
same engine differs in bytes and in value, and Spark's `kll_merge_agg_double` compacts again,
in whatever order its partitions arrive. featql therefore builds the sketch itself from the
tile's sorted values, deterministically, and writes it in the library's serialized KLL format
(so either library reads it, and merges it if asked); every engine calls this same Python code.

The construction (`build`): the tile's n values (NULL and NaN dropped, -0.0 as 0.0) sorted.
n <= k: the library's sketch of the sorted values (nothing compacted: the items are the values).
n > k: W = 2^h, the least power of two with n <= k * W; the sorted values are cut into
contiguous blocks, floor(n / W) blocks of W values, then the rest as one block per set bit of
n mod W (sizes 2^i, descending); a block of size 2^i is kept as one item of weight 2^i (KLL
level i), its lower median (its (2^(i-1))-th value; a block of one, that value). At most
k + h items are kept (a sketch of 5,000 values keeps 162 items, 1,356 bytes; the library keeps
474, 3,848 bytes).

The error bound, deterministic (every window, not 99 % of them): for any x, the weight of the
items <= x differs from the number of values <= x by at most half the one block that straddles
x (blocks are contiguous in sorted order, so every other block counts all or nothing); that is
W/2 < n/k. A window's items are its tiles' items (no further compaction: `items`), so its rank
error is below the sum over its tiles, N/k for N values: the nearest-rank value returned has
normalized ranks [below, upto] (values < it, <= it) with below - 1/k < p <= upto + 1/k
(`RANK_ERROR` = 1/k = 0.5 % for k = 200). A window of at most k values per tile is exact.

A coarse tile (compaction, `union`) keeps every item of its fine tiles, at their weights, while
they are at most COARSE_K = 800: its quantiles are then exactly those of the fine tiles (a
valid KLL sketch whose k is raised to the least that holds the items; min_k stays 200). Beyond,
it compacts them deterministically (`_compact`: KLL's halving with a fixed offset per level)
to at most 800 + h items (under 7.2 KB, within the read-cost bound `read_cost.KLL_MAX`),
adding less than 2 n_c / 800 to the rank error of its n_c values: a window over coarse tiles
is within `COARSE_RANK_ERROR` = 1/200 + 2/800 = 0.75 % of p, and the same on every run and
engine (the coarse tile is built by this code from the same fine bytes).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

K = 200
"""KLL k (Spark's and the library's default)."""
M = 8
"""KLL's minimum level width (the libraries accept only 8)."""
RANK_ERROR = 1 / K
"""The deterministic bound on the normalized rank error of a window of fine tiles."""
COARSE_K = 800
"""A coarse tile keeps every item of its fine tiles up to this many, else compacts to it."""
COARSE_RANK_ERROR = RANK_ERROR + 2 / COARSE_K
"""The bound on a window that merges coarse tiles too: 0.75 % (see the module doc)."""

_FAMILY, _PREAMBLE_FULL, _SERIAL_FULL = 15, 5, 1
_HEADER = struct.Struct("<BBBBHBBQHBB")  # 20 bytes: the full KLL preamble


def _cap(k: int, depth: int) -> int:
    if depth > 30:
        half = depth // 2
        return _cap(_cap(k, half), depth - half)
    return ((((k << 1) << depth) // 3 ** depth) + 1) >> 1


def capacity(k: int, levels: int) -> int:
    """The library's total item capacity of a sketch of `levels` levels (kll_helper)."""
    return sum(max(M, _cap(k, levels - h - 1)) for h in range(levels))


def _values(values: Sequence[Any]) -> list[float]:
    out = []
    for v in values:
        if v is None:
            continue
        f = float(v)
        if f == f:
            out.append(f + 0.0)  # -0.0 + 0.0 is 0.0
    out.sort()
    return out


def build(values: Sequence[Any]) -> bytes:
    """A tile's sketch of its input values: the same bytes for the same multiset of values."""
    vals = _values(values)
    n = len(vals)
    if n <= K:
        import datasketches as ds

        sketch = ds.kll_doubles_sketch(K)
        for v in vals:
            sketch.update(v)
        return bytes(sketch.serialize())
    h = 0
    while n > K << h:
        h += 1
    levels: list[list[float]] = [[] for _ in range(h + 1)]
    w = 1 << h
    full = n // w
    levels[h] = [vals[j * w + w // 2 - 1] for j in range(full)]
    at = full * w
    for i in range(h - 1, -1, -1):
        if (n - full * w) >> i & 1:
            size = 1 << i
            levels[i].append(vals[at + max(size // 2, 1) - 1])
            at += size
    return encode(levels, n, vals[0], vals[-1])


def encode(levels: list[list[float]], n: int, lo: float, hi: float) -> bytes:
    """The library's full serialized form (preamble 5, serial version 1) of a sketch whose
    level i holds `levels[i]` (items of weight 2^i, each level sorted), n values, min and max;
    k is 200, or the least above it whose capacity holds the items."""
    retained = sum(len(level) for level in levels)
    k = K
    while capacity(k, len(levels)) < retained:
        k += max(1, (retained - capacity(k, len(levels))) // 3)
    offsets, at = [], capacity(k, len(levels)) - retained
    for level in levels:
        offsets.append(at)
        at += len(level)
    items = [v for level in levels for v in level]
    return b"".join((
        _HEADER.pack(_PREAMBLE_FULL, _SERIAL_FULL, _FAMILY, 0, k, M, 0, n, K, len(levels), 0),
        struct.pack(f"<{len(offsets)}I", *offsets),
        struct.pack("<dd", lo, hi),
        struct.pack(f"<{len(items)}d", *items)))


def items(sketches: Sequence[bytes | None]) -> list[tuple[float, int]]:
    """The (value, weight) items every sketch retains, sorted by value (weights sum to n).
    Read from the serialized form (empty, single item or full; the C++ and Java libraries
    write the same): the Python binding's iteration gives weight 1 to every item when the
    lowest levels are empty, as in a built sketch of 1,000 values (all of weight 8)."""
    out: list[tuple[float, int]] = []
    for b in sketches:
        if b is not None:
            out.extend(_decode(bytes(b)))
    out.sort(key=itemgetter(0))
    return out


Decoded = dict[bytes, tuple[Any, Any]]
"""Sketch bytes -> its items as numpy arrays (values, weights): `nearest_rank`'s cache."""


def nearest_rank(sketches: Sequence[bytes | None], rank: Callable[[int], int],
                 cache: Decoded) -> float | None:
    """The value of `items(sketches)` at which the cumulative weight first reaches rank(n)
    (the last item's value if it never does; None over no item), in numpy: the same value
    as that loop over `items` (equal values are interchangeable), for the Spark UDFs, which
    read a batch of windows at a time; `cache` holds the decoded sketches of the batch (a
    window's frame shares most of its tiles with the next row's)."""
    import numpy as np

    values, weights = [], []
    for b in sketches:
        if b is None:
            continue
        key = bytes(b)
        got = cache.get(key)
        if got is None:
            decoded = _decode(key)
            got = cache[key] = (np.fromiter((v for v, _ in decoded), np.float64, len(decoded)),
                                np.fromiter((w for _, w in decoded), np.int64, len(decoded)))
        values.append(got[0])
        weights.append(got[1])
    if not values:
        return None
    vals = np.concatenate(values)
    if not len(vals):
        return None
    order = np.argsort(vals, kind="stable")
    seen = np.cumsum(np.concatenate(weights)[order])
    at = int(np.searchsorted(seen, rank(int(seen[-1]))))
    return float(vals[order[min(at, len(vals) - 1)]])


def _decode(b: bytes) -> list[tuple[float, int]]:
    if len(b) < 8 or b[2] != _FAMILY:
        raise ValueError("not a serialized KLL sketch")
    if b[3] & 1:  # empty
        return []
    if b[3] & 4 or b[1] == 2:  # one item, right after the 8-byte preamble
        return [(struct.unpack_from("<d", b, 8)[0], 1)]
    n, num = struct.unpack_from("<Q", b, 8)[0], b[18]
    offsets = struct.unpack_from(f"<{num}I", b, 20)
    start = 20 + 4 * num + 16
    values = struct.unpack_from(f"<{(len(b) - start) // 8}d", b, start)
    ends = [o - offsets[0] for o in offsets[1:]] + [len(values)]
    out: list[tuple[float, int]] = []
    at = total = 0
    for level, end in enumerate(ends):
        out.extend(zip(values[at:end], repeat(1 << level, end - at), strict=True))
        total += (end - at) << level
        at = end
    if total != n:
        raise ValueError("a KLL sketch whose item weights do not sum to its n")
    return out


def union(sketches: Sequence[bytes | None]) -> bytes | None:
    """A coarse tile's sketch: every item of `sketches` at its weight while they are at most
    `COARSE_K` (its quantiles are then exactly theirs), else those items compacted
    deterministically (`_compact`) to at most COARSE_K + h. None when there is no sketch."""
    present = [bytes(b) for b in sketches if b is not None]
    if not present:
        return None
    by_level: list[list[float]] = [[]]
    n, lo, hi = 0, math.inf, -math.inf
    for b in present:
        got = _decode(b)
        if not got:
            continue
        low, high = _bounds(b, got)
        lo, hi = min(lo, low), max(hi, high)
        for value, weight in got:
            n += weight
            height = weight.bit_length() - 1
            while len(by_level) <= height:
                by_level.append([])
            by_level[height].append(value)
    if n <= K:  # all of weight one: the tile build of those values (the library's bytes)
        return build(by_level[0])
    for items_ in by_level:
        items_.sort()
    if sum(len(level) for level in by_level) > COARSE_K:
        _compact(by_level, n)
    return encode(by_level, n, lo, hi)


def _compact(by_level: list[list[float]], n: int) -> None:
    """Halve levels 0 .. h-1 in turn (2^h the least power of two with n <= COARSE_K * 2^h):
    each level's sorted items paired from the smallest, one of each pair (the lower on an even
    level, the upper on an odd one) promoted with twice the weight, an odd last item left.
    Level i adds at most 2^i to the rank error at any x (one pair straddles x), all of them
    less than 2^h < 2n / COARSE_K; the levels from h up hold at most n / 2^h <= COARSE_K."""
    h = 0
    while n > COARSE_K << h:
        h += 1
    while len(by_level) <= h:
        by_level.append([])
    for i in range(h):
        level = by_level[i]
        pairs = len(level) // 2
        keep = i % 2
        by_level[i + 1].extend(level[2 * j + keep] for j in range(pairs))
        by_level[i + 1].sort()
        by_level[i] = level[2 * pairs:]


def _bounds(b: bytes, got: list[tuple[float, int]]) -> tuple[float, float]:
    """A sketch's min and max: stored in the full form, the item itself in a single one."""
    if b[3] & 4 or b[1] == 2:
        return got[0][0], got[0][0]
    num = b[18]
    lo, hi = struct.unpack_from("<dd", b, 20 + 4 * num)
    return lo, hi
