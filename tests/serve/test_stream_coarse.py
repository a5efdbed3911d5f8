"""Stream cells with a coarse part (issues 13 and 14): pushes onto a cell the online load
compacted keep its coarse tiles verbatim, and every window of every function answers what a
brute-force oracle over all the events answers (the training set's definition, the stream
window `[floor(t,S) - W, t)`), bit for bit what the same pushes onto the all-fine cell answer;
a view with a lifetime window folds the tiles that leave every finite window into its prefix,
so its cell stays bounded however long it is pushed, and still equals the oracle.

Every function of `FUNCTIONS` over BIGINT, dyadic and arbitrary DOUBLE and BOOLEAN inputs
(`tests.serve.test_compaction`): exact functions and dyadic sums equal, arbitrary DOUBLE sums
and STDDEV/VAR within rounding of the oracle (they equal the all-fine read exactly, resp. to
1e-12), APPROX_COUNT_DISTINCT within the sketch's bound; fewer than 200 values per window, so
KLL is exact.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from featql.core.durations import LIFETIME_SECONDS
from featql.core.ir import FeatureView
from featql.jobs.ingest import _as_stream_cell
from featql.online import compacted, stream_cells
from featql.online.stream_cells import StreamCell, StreamMerger, add_events, decode, encode
from featql.online.tiles import IncompleteWindow, TileMerger, encode_tiles, with_prefix
from featql.semantics import compaction
from featql.semantics.aggregates import for_aggregation, partial_column, partial_columns
from featql.semantics.sketches import hll_bound
from featql.semantics.time import floor
from tests.semantics.test_merge_property import SPREAD, _direct
from tests.serve.test_compaction import AGG, HOURLY, _events, _input, _view

US = 1_000_000
H, D = 3600, 86400
Event = tuple[int, dict[str, Any]]


def _tiles(view: FeatureView, events: list[Event]) -> tuple[list[int], dict[str, list[Any]]]:
    """The tiles the tile stage computes from `events` (per slide, each aggregation's fold)."""
    by_tile: dict[int, list[Event]] = {}
    for e in events:
        by_tile.setdefault(floor(e[0] // US, view.slide_seconds or 1), []).append(e)
    starts = sorted(by_tile)
    cols: dict[str, list[Any]] = {c: [] for c in partial_columns(view)}
    for s in starts:
        for a in view.aggregations:
            fn = for_aggregation(a)
            got = fn.fold([(t, _input(a, v)) if fn.ordered else _input(a, v)
                           for t, v in by_tile[s]])
            for p, v in got.items():
                cols[partial_column(a.name, p)].append(v)
    return starts, cols


def _pushed(view: FeatureView, events: list[Event]) -> list[tuple[int, list[Any]]]:
    return [(t, [_input(a, v) for a in view.aggregations]) for t, v in sorted(events,
                                                                          key=lambda e: e[0])]


def _check(view: FeatureView, got: list[Any], events: list[Event], t: int, what: str,
           fine: list[Any] | None = None) -> None:
    """`got` (the features at t) against the oracle over `events`, and against `fine` (the
    same cell all-fine) when given."""
    hi = floor(t // US, view.slide_seconds or 1)
    for k, f in enumerate(view.features):
        a = AGG[f.aggregation or ""]
        lo = hi - (f.window_seconds or 0)
        evs = [(te, v) for te, v in events if lo * US <= te < t]
        want = _direct(a.function, [_input(a, v) for _, v in evs], f.type,
                       [te for te, _ in evs], n=3)
        x = got[k]
        where = (what, t, f.name, x, want)
        if a.function == "approx_count_distinct":
            assert abs(x - want) <= hll_bound(want), where
        elif a.function in SPREAD or (a.input_sql == "g" and a.function in ("sum", "avg")):
            assert (x is None) == (want is None), where
            if x is not None:
                assert math.isclose(x, want, rel_tol=1e-9, abs_tol=1e-6), where
        else:
            assert x == want and type(x) is type(want), where
        if fine is None:
            continue
        y = fine[k]
        if a.function in SPREAD and x is not None and y is not None:
            assert math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12), (where, y)
        elif a.function == "approx_count_distinct":
            assert abs(x - y) <= hll_bound(y), (where, y)
        else:
            assert x == y and type(x) is type(y), (where, y)


def _lookups(rng: random.Random, lo_us: int, hi_us: int, slide: int) -> list[int]:
    """Times in [lo_us, hi_us): the ends, slide boundaries and a microsecond either side, random."""
    out = {lo_us, hi_us - 1}
    first = -(-lo_us // (slide * US)) * slide * US
    bounds = list(range(first, hi_us, slide * US))
    for b in rng.sample(bounds, min(4, len(bounds))):
        out.update({b, b - 1, b + 1})
    out.update(rng.randrange(lo_us, hi_us) for _ in range(4))
    return sorted(t for t in out if lo_us <= t < hi_us)


@pytest.mark.parametrize("seed", [0, *(pytest.param(s, marks=pytest.mark.slow) for s in (1, 2))])
def test_pushes_onto_a_compacted_cell_answer_every_window_exactly(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_cells, "COMPACT_AT", 12)  # fold pushed events into tiles often
    view = HOURLY
    rng = random.Random(seed)
    loaded = floor(1_704_067_200 + 100 * D + rng.randrange(0, 2 * D), H)
    loaded_events = _events(rng, loaded - 90 * D, loaded, 110)
    starts, cols = _tiles(view, loaded_events)
    merger = TileMerger(view)
    plain = encode_tiles(starts, cols)
    merged = merger(plain, loaded * US)
    assert merged is not None
    payload = compacted.encode(view, starts, cols, loaded, merged=(loaded, merged))
    assert payload is not None and compacted.levels_of(payload, partial_columns(view))
    cell = _as_stream_cell(view, payload)
    fine = _as_stream_cell(view, encode_tiles(starts, cols, merged=(loaded, merged)))
    assert cell.coarse and not fine.coarse and cell.kept_from == loaded - 90 * D
    n_coarse = len(cell.coarse)
    events = list(loaded_events)
    h = compaction.horizon(view)
    newest = loaded * US
    looked = 0
    for batch in range(6):  # pushes in time order (a few late ones), each followed by lookups
        lo = loaded + batch * h // 6
        push = _events(rng, lo, lo + h // 6, 8)
        push.append((rng.randrange(loaded - 20 * D, loaded) * US, push[0][1]))  # a late event
        events.extend(push)
        cell = decode(encode(add_events(view, cell, _pushed(view, push))))
        fine = add_events(view, fine, _pushed(view, push))
        newest = max(newest, *(t for t, _ in push))
        assert cell.coarse[:1] and len(cell.coarse) == n_coarse  # kept verbatim
        for t in _lookups(rng, newest, (loaded + h + H) * US, H):
            got = StreamMerger(view)(cell, t)
            _check(view, got, events, t, f"batch {batch}", StreamMerger(view)(fine, t))
            looked += 1
    assert looked > 60
    # beyond the horizon the 90-day window's edge falls inside a coarse tile: refused
    s, _ = next(g for g in cell.coarse if g[0] > loaded - 90 * D + h)
    with pytest.raises(IncompleteWindow):
        StreamMerger(view)(cell, (s + 90 * D + H) * US)


def test_a_batch_view_pushed_onto_a_compacted_cell_reads_whole_slides() -> None:
    view = HOURLY
    rng = random.Random(7)
    loaded = 1_704_067_200 + 100 * D + 5 * H
    loaded_events = _events(rng, loaded - 90 * D, loaded, 110)
    starts, cols = _tiles(view, loaded_events)
    payload = compacted.encode(view, starts, cols, loaded)
    assert payload is not None
    push = _events(rng, loaded, loaded + 20 * H, 10)
    cell = add_events(view, _as_stream_cell(view, payload), _pushed(view, push))
    cell.batch = True
    events = [*loaded_events, *push]
    for t in _lookups(rng, max(t for t, _ in push), (loaded + D) * US, H):
        got = StreamMerger(view)(cell, t)
        _check(view, got, events, floor(t // US, H) * US, "batch window")


def _lifetime_cell(view: FeatureView, loaded: int, events: list[Event], compact: bool
                   ) -> StreamCell:
    """The stream cell a push makes of a load's cell (its tiles before the longest finite
    window folded into one prefix tile, `with_prefix`; compacted or not)."""
    if not events:
        return _as_stream_cell(view, None)
    starts, cols = _tiles(view, events)
    starts, cols = with_prefix(view, starts, cols, loaded - D)
    merged = TileMerger(view)(encode_tiles(starts, cols), loaded * US)
    assert merged is not None
    payload = compacted.encode(view, starts, cols, loaded, merged=(loaded, merged)) \
        if compact else None
    return _as_stream_cell(view, payload or encode_tiles(starts, cols, merged=(loaded, merged)))


@pytest.mark.parametrize("start", ["empty", "loaded", "compacted"])
def test_a_lifetime_stream_cell_stays_bounded_and_exact(
        start: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_cells, "COMPACT_AT", 16)
    rng = random.Random(hash(start) % 1000)
    view = _view(H, (H, D, LIFETIME_SECONDS))
    day0 = 1_704_067_200 + 50 * D
    events: list[Event] = [] if start == "empty" else _events(rng, day0 - 20 * D, day0, 40)
    cell = _lifetime_cell(view, day0, events, start == "compacted")
    assert bool(cell.coarse) == (start == "compacted")
    sizes = []
    for day in range(24):
        lo = day0 + day * D
        push = _events(rng, lo, lo + D, 3)
        if day % 5 == 4:  # late events, into the prefix (or the tiles) they belong to
            push.append((rng.randrange(day0 - 30 * D, lo) * US, push[0][1]))
        events.extend(push)
        cell = decode(encode(add_events(view, cell, _pushed(view, push))))
        newest = max(t for t, _ in push)
        for t in _lookups(rng, newest, (lo + D + 2 * H) * US, H)[:6]:
            _check(view, StreamMerger(view)(cell, t), events, t, f"{start} day {day}")
        sizes.append(len(cell.starts) + len(cell.coarse) + len(cell.events))
    assert cell.prefix is not None and not cell.coarse
    # the prefix plus the fine tiles of the longest finite window (a day) and the raw events
    # not folded yet, whatever the view's age
    assert max(sizes[5:]) <= D // H + 2 + stream_cells.COMPACT_AT, sizes
    assert len(cell.starts) <= D // H + 2
    with pytest.raises(IncompleteWindow):  # before the prefix's end: the prefix cannot split
        StreamMerger(view)(cell, (day0 + 10 * D) * US)
