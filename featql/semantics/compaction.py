"""Compaction of long windows: the coarse resolutions, the plan of a cell, the coarse partials.

The rule (Chronon's): a window shorter than 12 hours is read at 5-minute tiles, one shorter
than 12 days at 1-hour tiles, a longer one at 1-day tiles; never finer than the slide, and a
resolution the slide does not divide is not used. Why: a window then reads at most ~144
(12 h / 5 min) to ~288 (12 d / 1 h) whole coarse tiles plus its fine edges, whatever its
length, and the three steps are the units people write windows in, so a window's middle is
whole coarse tiles. A view's *levels* are the distinct coarse resolutions of its windows
(coarser than its slide), coarsest first.

Exactness (PRODUCT §3: the batch window is exactly `[floor(t,S) - W, floor(t,S))`): a coarse
tile `[c, c + R)` (c a multiple of R from the epoch) replaces the fine tiles inside it, and a
window can use it only when it lies wholly inside the window. A cell (the tiles of one entity,
loaded for `loaded` = the end of its tiles) is therefore *planned* for the lookups it must
answer: every slide start `hi` in `[loaded, loaded + horizon]`. For each window `W` of the view,
the left edges `hi - W` of those lookups fall in `[loaded - W, loaded - W + horizon]`; no coarse
tile may hold one of them strictly inside, and no coarse tile may reach past `loaded` (its
tiles are not complete). `plan_cell` places, from the oldest tile on, the coarsest tile that
fits at each position, else a fine tile. A window of any lookup in that range then merges
fine edge tiles and coarse middle tiles covering exactly the fine tiles it would merge.

`horizon` = the view's coarsest level (at least its schedule interval): a cell loaded for
`loaded` answers every later slide for a day (the example) exactly, which covers a load each
schedule interval. Beyond it a lookup whose window edge falls inside a coarse tile is refused
(`featql.online.tiles.IncompleteWindow`), never guessed; a lookup whose windows all start at or
after `loaded` (an idle entity, or a lookup after the longest window has passed) is answered.

The coarse partial of each function is the partial of the union of its fine tiles
(`combine`): sums added (integers exactly; DOUBLE sums as their exact floating-point expansion,
non-overlapping doubles whose real sum is exactly the fine sum, at most one per fine tile and
in practice two, packed as 8-byte doubles; `math.fsum` over edges and coarse tiles then rounds
once, to the all-fine value); MIN/MAX the extreme; STDDEV/VAR
Chan's merge of the fine states (a different merge order than the all-fine fold: the value
agrees to rounding, about 1e-15 relative); LAST_N and the other ordered functions the n best
entries (exact: the n best of a union are among each part's n best); TOP_K the full histogram
(exact); APPROX_COUNT_DISTINCT the HLL union (the same registers, and every read estimates
from the registers alone, `sketches.register_estimate`: the estimate is the all-fine one);
APPROX_PERCENTILE every item of the fine sketches (the same value as the all-fine read while
the coarse tile holds at most 800 items; beyond, compacted deterministically to 800, within
0.75 % of p: `featql.semantics.quantiles.union`).
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Sequence
from typing import Any

from featql.core.ir import FeatureView
from featql.semantics.aggregates import AggregateFunction, Window, partial_column

MINUTE, HOUR, DAY = 60, 3600, 86400
RULE: tuple[tuple[int, int], ...] = ((12 * HOUR, 5 * MINUTE), (12 * DAY, HOUR))
"""(window shorter than, resolution); beyond the last, `BEYOND`."""
BEYOND = DAY


def resolution(window: int, slide: int) -> int:
    """The resolution a window of `window` seconds is read at, on a `slide` (never finer than
    the slide; the slide itself when the rule's resolution is not a multiple of it)."""
    r = next((res for below, res in RULE if window < below), BEYOND)
    if r <= slide or r % slide:
        return slide
    return r


def levels(view: FeatureView) -> tuple[int, ...]:
    """The view's coarse resolutions (coarser than its slide), coarsest first; () when no
    window is long enough. (The online load does not compact stream views: pushes keep them.)"""
    slide = view.slide_seconds or 0
    if view.kind != "aggregate" or not slide or not view.windows:
        return ()
    return tuple(sorted({r for w in view.windows if (r := resolution(w, slide)) > slide},
                        reverse=True))


def horizon(view: FeatureView) -> int:
    """How many seconds after its load a compacted cell answers every slide exactly."""
    lv = levels(view)
    return max((lv[0] if lv else 0), view.schedule_seconds or 0, view.slide_seconds or 1)


def plan_cell(view: FeatureView, loaded: int) -> list[tuple[int, int]]:
    """The tiles of a cell loaded for `loaded` (a slide start, epoch seconds): `(start, length)`
    in time order, covering `[loaded - longest window, loaded)` without overlap; length is the
    slide (a fine tile) or one of `levels(view)`."""
    slide = view.slide_seconds or 1
    longest = max(view.windows) if view.windows else slide
    lv = levels(view)
    h = horizon(view)
    # the left edges of every lookup in [loaded, loaded + h], per window: closed ranges
    edges = sorted((loaded - w, loaded - w + h) for w in view.windows)
    out: list[tuple[int, int]] = []
    x = loaded - longest
    while x < loaded:
        for r in lv:
            if x % r == 0 and x + r <= loaded and not any(a < x + r and b > x for a, b in edges):
                out.append((x, r))
                x += r
                break
        else:
            out.append((x, slide))
            x += slide
    return out


# -- coarse partials ----------------------------------------------------------------------------
def expansion(values: Sequence[Any]) -> list[float]:
    """The exact sum of doubles as non-overlapping doubles, smallest first (Shewchuk's
    algorithm, the one `math.fsum` runs): `math.fsum(expansion(v)) == math.fsum(v)`, and
    `math.fsum([*a, *expansion(v)]) == math.fsum([*a, *v])` for any doubles `a`. A value may
    itself be an expansion (packed, `pack_expansion`): coarse tiles combine again exactly (a
    stream cell's lifetime prefix, `featql.online.stream_cells`)."""
    partials: list[float] = []
    for v in values:
        if isinstance(v, list):
            items: Sequence[float] = v
        elif isinstance(v, bytes | bytearray | memoryview):  # a coarse tile's packed expansion
            items = unpack_expansion(v)
        else:
            items = (float(v),)
        for x in items:
            i = 0
            for y in partials:
                if abs(x) < abs(y):
                    x, y = y, x
                hi = x + y
                lo = y - (hi - x)
                if lo:
                    partials[i] = lo
                    i += 1
                x = hi
            partials[i:] = [x]
    return [p for p in partials if p] or [0.0]


def combine(fn: AggregateFunction, aggregation: str, window: Window,
            types: dict[str, str]) -> dict[str, Any]:
    """The partials of one coarse tile of `aggregation` from the fine tiles of `window`
    (`types`: partial name -> its featql type), by partial name."""
    from featql.semantics.ranked import TopK
    from featql.semantics.sketches import ApproxCountDistinct, ApproxPercentile

    if isinstance(fn, TopK):
        counts: Counter[Any] = Counter()
        vals = window.column(partial_column(aggregation, "hist_values"))
        cnts = window.column(partial_column(aggregation, "hist_counts"))
        for vs, cs in zip(vals, cnts, strict=True):
            for v, c in zip(vs or (), cs or (), strict=True):
                counts[v] += int(c)
        keys = sorted(counts)
        return {"hist_values": keys or None, "hist_counts": [counts[k] for k in keys] or None}
    if isinstance(fn, ApproxCountDistinct):
        return {"hll": _hll_combine(window.present(partial_column(aggregation, "hll")))}
    if isinstance(fn, ApproxPercentile):
        return {"kll": _kll_combine(window.present(partial_column(aggregation, "kll")))}
    out: dict[str, Any] = {}
    ops = fn.merge_ops()
    custom = any(op == "custom" for op in ops.values())
    merged = fn.merge(window, aggregation) if custom else {}
    for p, op in ops.items():
        col = partial_column(aggregation, p)
        if op == "sum":
            present = [v for v in window.column(col) if v is not None]
            if types.get(p) == "DOUBLE" or any(isinstance(v, float | bytes) for v in present):
                out[p] = pack_expansion(expansion(present))
            else:
                out[p] = sum(int(v) for v in present)
        elif op in ("min", "max"):
            got = [v for v in window.present(col) if v is not None]
            out[p] = (max(got) if op == "max" else min(got)) if got else None
        else:
            out[p] = merged[p]
    return out


def pack_expansion(parts: Sequence[float]) -> bytes:
    """An expansion as stored in a coarse tile: little-endian doubles (8 bytes each, at most
    one per fine tile combined: never more than the fine tiles' own column)."""
    return struct.pack(f"<{len(parts)}d", *parts)


def unpack_expansion(packed: bytes | bytearray | memoryview) -> tuple[float, ...]:
    return struct.unpack(f"<{len(packed) // 8}d", packed)


def total(values: Sequence[Any]) -> int | float:
    """An additive column's total over fine values and coarse expansions (packed doubles):
    exact for integers, the correctly rounded exact sum (`math.fsum`) otherwise, as the
    all-fine read."""
    flat: list[Any] = []
    ints = True
    for v in values:
        if v is None:
            continue
        if isinstance(v, bytes | bytearray | memoryview):
            flat.extend(unpack_expansion(v))
            ints = False
        else:
            flat.append(v)
            ints = ints and isinstance(v, int)
    return sum(flat) if ints else math.fsum(flat)


def _hll_combine(sketches: Sequence[Any]) -> bytes | None:
    import datasketches as ds

    from featql.semantics.sketches import hll_union

    union = hll_union(list(sketches))
    if union is None:
        return None
    return bytes(union.get_result(ds.tgt_hll_type.HLL_8).serialize_updatable())


def _kll_combine(sketches: Sequence[Any]) -> bytes | None:
    from featql.semantics.quantiles import union

    return union(list(sketches))
