"""What one online lookup reads at most, known at compile time (issue 14 item 4).

A lookup of one entity row reads, per feature view of its service, one online cell (one item of
the online store). Its size has an upper bound from the cell codecs of `featql.online` (`tiles`:
FQT3, `compacted`: FQC1, `codec`: row values), mirrored here (below the compiler, so `featql
check` can hold a service to its budget) and checked against really encoded cells by
`tests/serve/test_read_cost.py`:

- an aggregate view's cell holds the tiles of its longest window before the load, compacted
  (`featql.semantics.compaction.plan_cell`; the worst alignment of the load time counts): the
  FQT3 header and layout, the values merged at load, per tile an offset and each partial
  column's value, per coarse level its own header; DynamoDB's split adds the head's brackets
  and two integers (`DYNAMO_SPLIT`), which the bound includes;
- a numeric partial takes at most 8 bytes a tile; a coarse DOUBLE sum is its exact expansion,
  at most min(tiles combined, 40) packed doubles (`EXPANSION_MAX`; in practice two); a
  LAST_N/FIRST_N (and DISTINCT) partial at most n times and n values (orjson text, an integer
  at most 20 characters, a double 24); an HLL sketch 4,136 bytes (DataSketches' maximum for
  lgK 12, HLL_8); a KLL sketch the library's total capacity for k = 200 (`KLL_MAX`);
- *no bound*: TOP_K's histogram (one entry per distinct value of a tile), a STRING partial
  (LAST_N's values of a STRING input), and a stream view's cell (the events of the current
  slide). A service with a budget that reads one of them is a check error (a budget it cannot
  be held to would be a false promise); without a budget the report says `no bound` and why.
- a row-level view's cell: orjson `[event us, created us, [values]]`, one small item whatever
  the windows: its bound counts a STRING feature as its quotes only and says so (`text`): the
  budget is about what windows read, and a row's text is the user's data, not a read pattern.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from featql.core.durations import LIFETIME_SECONDS
from featql.core.ir import FeatureService, FeatureView, Manifest
from featql.semantics import compaction
from featql.semantics.aggregates import FUNCTIONS, Partial

FIXED = 34  # tiles._FIXED: "FQT3" | n u32 | base i64 | unit u32 | hlen u16 | merged_at i64 | u32
LEVEL = 8  # compacted._LEVEL: resolution u32, length u32
FOOTER = 18  # compacted._FOOT: last i64, count u16, size u32, "FQCE"
DYNAMO_SPLIT = 44  # the head "[at,values,last]": brackets, commas, two 64-bit integers
INT_CHARS, DOUBLE_CHARS = 20, 24  # orjson: -9223372036854775808, -2.2250738585072014e-308
EXPANSION_MAX = 40  # non-overlapping doubles cover at most 2,098 exponent bits / 53
HLL_MAX = 4136  # datasketches.hll_sketch.get_max_updatable_serialization_bytes(12, HLL_8)


def _kll_max(k: int = 200, levels: int = 61) -> int:
    """DataSketches KLL doubles: preamble 20, level offsets, min and max, every level full."""
    items = sum(max(8, math.ceil(k * (2 / 3) ** h)) for h in range(levels))
    return 20 + 4 * (levels + 1) + 16 + 8 * items


KLL_MAX = _kll_max()


@dataclass(frozen=True)
class ViewRead:
    """One view's cell in one lookup: its tiles and bytes at most (None: no bound, `why`)."""

    view: str
    kind: str  # row | aggregate | stream
    window: int | None  # the longest window its cell holds (aggregate views)
    tiles: int  # tiles in the cell at most (fine + coarse; 0 for a row view)
    fine_tiles: int  # without compaction
    bytes: int | None
    why: str | None = None  # what has no bound
    text: bool = False  # a row view with STRING features: `bytes` bounds the rest


@dataclass(frozen=True)
class ServiceRead:
    service: str
    views: tuple[ViewRead, ...]

    @property
    def cells(self) -> int:
        return len(self.views)

    @property
    def tiles(self) -> int:
        return sum(v.tiles for v in self.views)

    @property
    def bytes(self) -> int | None:
        """The bound of the whole lookup (row views' text excluded), None when a tile cell has
        no bound."""
        if any(v.bytes is None for v in self.views):
            return None
        return sum(v.bytes or 0 for v in self.views)

    @property
    def text(self) -> bool:
        return any(v.text for v in self.views)


def _value_chars(type_: str, n: int | None) -> int | None:
    """orjson characters of one value of a featql type (None: no bound); arrays of n items."""
    if type_.startswith("ARRAY<"):
        inner = _value_chars(type_[6:-1], None)
        if inner is None or n is None:
            return None
        return 2 + n * (inner + 1)
    if type_ in ("BIGINT", "INT", "TIMESTAMP", "DATE"):
        return INT_CHARS if type_ != "DATE" else 12
    if type_ in ("DOUBLE", "FLOAT"):
        return DOUBLE_CHARS
    if type_ == "BOOLEAN":
        return 5
    return None  # STRING, BINARY and anything else: no bound


def _partial_bytes(partial: Partial, fn_name: str, args: tuple[int | float, ...], tiles: int,
                   combined: int) -> int | None:
    """A stored column's bytes over `tiles` tiles (`combined` fine tiles per tile: 1 for fine,
    R / S for a coarse level)."""
    if partial.type == "BINARY":
        each = HLL_MAX if fn_name == "approx_count_distinct" else KLL_MAX
        return 4 * (tiles + 1) + tiles * each
    if partial.type.startswith("ARRAY<"):
        if fn_name == "top_k":
            return None
        chars = _value_chars(partial.type, int(args[0]) if args else 1)
        return None if chars is None else 4 * (tiles + 1) + tiles * chars
    if partial.merge == "sum" and partial.type == "DOUBLE" and combined > 1:
        return 4 * (tiles + 1) + tiles * 8 * min(combined, EXPANSION_MAX)
    return 8 * tiles


def _merged_chars(view: FeatureView) -> int | None:
    aggs = {a.name: a for a in view.aggregations}
    total = 2
    for f in view.features:
        a = aggs[f.aggregation or ""]
        n = int(a.args[0]) if a.args and a.function != "approx_percentile" else None
        chars = _value_chars(f.type, n)
        if chars is None:
            return None
        total += chars + 1
    return total


def _why_unbounded(view: FeatureView) -> str | None:
    for a in view.aggregations:
        if a.function == "top_k":
            return f"the histogram of TOP_K ({a.name})"
        for p in FUNCTIONS[a.function].partials(a.type):
            if p.type != "BINARY" and _value_chars(p.type, 1) is None:
                return f"the {p.type} values of {a.function.upper()} ({a.name})"
    return None


def _cell_bytes(view: FeatureView, fine: int, coarse: dict[int, int]) -> int | None:
    """The bytes of a tile cell with `fine` fine tiles and `coarse` tiles per level."""
    slide = view.slide_seconds or 1
    parts = [(p, a) for a in view.aggregations for p in FUNCTIONS[a.function].partials(a.type)]
    layout = 5 + 4 * len(parts)
    merged = _merged_chars(view)
    if merged is None:
        return None
    finite = [w for w in view.windows if w != LIFETIME_SECONDS]  # the lifetime prefix: 1 tile
    longest = max(finite) if finite else slide
    width = next((w for w, bound in ((1, 1 << 8), (2, 1 << 16), (4, 1 << 32))
                  if longest // slide < bound), 8)

    def tile_set(n: int, combined: int) -> int | None:
        cols = [_partial_bytes(p, a.function, a.args, n, combined) for p, a in parts]
        if any(c is None for c in cols):
            return None
        return FIXED + layout + width * n + sum(c or 0 for c in cols)

    total = tile_set(fine, 1)
    if total is None:
        return None
    total += merged + DYNAMO_SPLIT
    if coarse:
        for r, n in coarse.items():
            got = tile_set(n, r // slide)
            if got is None:
                return None
            total += LEVEL + got
        total += FOOTER
    return total


@functools.lru_cache(maxsize=256)
def _plans(slide: int, windows: tuple[int, ...], schedule: int
           ) -> tuple[tuple[int, tuple[tuple[int, int], ...]], ...]:
    """Per alignment of the load time (every slide of the coarsest level), the plan's fine
    count and coarse counts per level."""
    from featql.core.ir import FeatureView as View
    from featql.core.ir import Location

    view = View(name="_", base_name="_", variant=None, location=Location("", 0, 0),
                kind="aggregate", entity="_", keys=(), timestamp="", sql="", depends_on=(),
                features=(), fingerprint="", schedule_seconds=schedule, start="",
                windows=windows, slide_seconds=slide)
    lv = compaction.levels(view)
    period = lv[0] if lv else slide
    out = set()
    anchor = 1_704_067_200 - 1_704_067_200 % period  # any multiple of the coarsest level
    for k in range(period // slide):
        plan = compaction.plan_cell(view, anchor + k * slide)
        counts: dict[int, int] = {}
        for _s, r in plan:
            counts[r] = counts.get(r, 0) + 1
        fine = counts.pop(slide, 0)
        out.add((fine, tuple(sorted(counts.items()))))
    return tuple(sorted(out))


def view_read(view: FeatureView, stream: bool = False, compact: bool = True) -> ViewRead:
    """What one lookup reads of `view` at most (`stream`: a stream view, whose cells hold the
    current slide's events; `compact`: cells compacted as the online load writes them)."""
    if view.kind != "aggregate":  # text values are counted as their quotes only
        chars = 4 + 2 * INT_CHARS + 2
        text = []
        for f in view.features:
            c = _value_chars(f.type, None)
            if c is None:
                text.append(f.name)
            chars += (2 if c is None else c) + 1
        return ViewRead(view.name, "row", None, 0, 0, chars,
                        f"the text of {', '.join(text)}" if text else None, bool(text))
    slide = view.slide_seconds or 1
    longest = max(view.windows) if view.windows else slide
    full = longest // slide
    if stream:
        return ViewRead(view.name, "stream", longest, full, full, None,
                        "the current slide's events of a stream view")
    why = _why_unbounded(view)
    # a lifetime window: the cell keeps the longest finite window's tiles plus one prefix
    # tile for everything older (featql.online.tiles.with_prefix)
    finite = tuple(w for w in view.windows if w != LIFETIME_SECONDS)
    prefix = int(len(finite) < len(view.windows))
    kept = (max(finite) if finite else slide) // slide + prefix
    plans = (_plans(slide, finite or (slide,), view.schedule_seconds or slide) if compact
             else ((kept - prefix, ()),))
    plans = tuple((f + prefix, c) for f, c in plans)
    tiles = max(f + sum(n for _, n in c) for f, c in plans)
    if why is not None:
        return ViewRead(view.name, "aggregate", longest, tiles, full, None, why)
    sizes = [_cell_bytes(view, f, dict(c)) for f, c in plans]
    return ViewRead(view.name, "aggregate", longest, tiles, full,
                    max(s for s in sizes if s is not None))


def service_read(manifest: Manifest, service: FeatureService, compact: bool = True,
                 views: Callable[[str], FeatureView | None] | None = None) -> ServiceRead:
    """What one lookup of `service` (one entity row) reads at most: a cell per view it uses
    (features and the inputs of its transforms)."""
    get = views or manifest.view
    names = [r.view for r in service.features]
    for t in service.transforms:
        tr = next((x for x in manifest.transforms if x.name == t), None)
        if tr is not None:
            names.extend(i.split(".")[0] for i in tr.inputs)
    out = []
    for name in dict.fromkeys(names):
        view = get(name)
        if view is None:
            continue
        out.append(view_read(view, manifest.stream_source(view) is not None, compact))
    return ServiceRead(service.name, tuple(out))
