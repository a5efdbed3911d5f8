"""Compacted online cells (issue 14 item 3): fine edge tiles + coarse middle tiles read exactly as
all-fine tiles, for every function of `FUNCTIONS`, at random lookup times (slide boundaries, one
microsecond either side, coarse-tile boundaries, the horizon's end), against the all-fine read and a
brute-force oracle over the raw events.

Two views: a 1-hour slide with the example's windows plus 90 days (levels: 1 day), and a 5-minute
slide with windows of 1 hour, 1 day and 13 days (levels: 1 day and 1 hour). DOUBLE inputs come in
two kinds: dyadic (every sum exact in any order: equal to the oracle exactly) and arbitrary
doubles (the all-fine read rounds; the compacted read must give the same bits, which only the
exact expansion of the coarse sums gives). STDDEV/VAR merge in another grouping: within 1e-12
relative of the all-fine read. APPROX_PERCENTILE: the same items while a coarse tile holds at most
k values (it does here), so equal too. APPROX_COUNT_DISTINCT: the union holds the same registers,
but a union of coarse unions is estimated by the composite estimator where the all-fine union of
coupon lists may keep the HIP one: equal in coupon mode, within the documented bound
(`hll_bound`) of the all-fine value and of the exact count beyond.
"""

from __future__ import annotations

import math
import random
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from featql.core.ir import Aggregation, Column, Feature, FeatureView, Location
from featql.online import compacted
from featql.online.tiles import IncompleteWindow, TileMerger, encode_tiles, split_merged
from featql.semantics import compaction
from featql.semantics.aggregates import FUNCTIONS, for_aggregation, partial_column, partial_columns
from featql.semantics.sketches import hll_bound
from featql.semantics.time import floor
from tests.semantics.test_merge_property import SPREAD, _direct

US = 1_000_000
H, D = 3600, 86400
INPUTS = {"i": "BIGINT", "d": "DOUBLE", "g": "DOUBLE", "b": "BOOLEAN"}


def _aggs() -> tuple[Aggregation, ...]:
    out = [Aggregation("n", "count", None, None, "BIGINT")]
    for col, t in INPUTS.items():
        for name, fn in FUNCTIONS.items():
            if fn.accepts(t):
                args = (0.3,) if name == "approx_percentile" else tuple(3 for _ in fn.arity)
                out.append(Aggregation(f"{name}_{col}", name, col, t,  # type: ignore[arg-type]
                                       fn.result_type(t), args=args))
    return tuple(out)


AGGS = _aggs()
AGG = {a.name: a for a in AGGS}


def _view(slide: int, windows: tuple[int, ...]) -> FeatureView:
    return FeatureView(
        name=f"v{slide}", base_name=f"v{slide}", variant=None, location=Location("v.sql", 1, 1),
        kind="aggregate", entity="e", keys=(Column("k", "BIGINT"),), timestamp="ts", sql="",
        depends_on=(), features=tuple(Feature(f"{a.name}_{w}", a.type, "", a.name, w)
                                      for a in AGGS for w in windows),
        fingerprint="f", schedule_seconds=slide, start="2024-01-01", windows=windows,
        slide_seconds=slide, aggregations=AGGS)


HOURLY = _view(H, (H, D, 7 * D, 30 * D, 90 * D))
FIVE = _view(300, (H, D, 13 * D))


def test_the_rule() -> None:
    assert [compaction.resolution(w, H) for w in (H, D, 7 * D, 30 * D, 90 * D)] == \
        [H, H, H, D, D]
    assert [compaction.resolution(w, 300) for w in (H, 11 * H, 12 * H, 11 * D, 12 * D)] == \
        [300, 300, H, H, D]
    assert compaction.resolution(30 * D, 7 * 60) == 7 * 60  # 1 day is not a multiple of 7 min
    assert compaction.levels(HOURLY) == (D,)
    assert compaction.levels(FIVE) == (D, H)
    assert compaction.horizon(HOURLY) == D


@pytest.mark.parametrize("view", [HOURLY, FIVE], ids=lambda v: v.name)
@pytest.mark.parametrize("loaded_offset", [0, 7 * H])
def test_the_plan_covers_the_cell_without_overlap(view: FeatureView, loaded_offset: int) -> None:
    loaded = 1_704_067_200 + 95 * D + loaded_offset  # slide-aligned
    plan = compaction.plan_cell(view, loaded)
    assert plan[0][0] == loaded - max(view.windows)
    assert all(a + r == b for (a, r), (b, _) in pairwise(plan))
    assert plan[-1][0] + plan[-1][1] == loaded
    h = compaction.horizon(view)
    for s, r in plan:
        assert s % r == 0
        for w in view.windows:  # no lookup in [loaded, loaded + h] has an edge inside it
            assert not (s < loaded - w + h and loaded - w < s + r) or r == view.slide_seconds
    assert sum(r > (view.slide_seconds or 0) for _, r in plan) > 0


def _value(col: str, rng: random.Random) -> Any:
    if rng.random() < 0.15:
        return None
    if col == "i":
        return rng.randrange(-50, 50)
    if col == "d":
        return rng.randrange(-1024, 1024) / 4
    if col == "g":
        return rng.uniform(-1e6, 1e6) * (1e-8 if rng.random() < 0.2 else 1)
    return rng.random() < 0.5


def _events(rng: random.Random, lo: int, hi: int, n: int) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for _ in range(n):
        t = rng.randrange(lo, hi) * US + rng.choice([0, 0, 1, rng.randrange(US)])
        out.append((t, {c: _value(c, rng) for c in INPUTS}))
    out.extend(out[rng.randrange(len(out))] for _ in range(5))  # exact ties
    return out


def _input(agg: Aggregation, values: dict[str, Any]) -> Any:
    return 1 if agg.input_sql is None else values[agg.input_sql]


def _tiles(view: FeatureView, events: list[tuple[int, dict[str, Any]]]
           ) -> tuple[list[int], dict[str, list[Any]]]:
    slide = view.slide_seconds or 1
    by_tile: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for e in events:
        by_tile.setdefault(floor(e[0] // US, slide), []).append(e)
    starts = sorted(by_tile)
    cols: dict[str, list[Any]] = {c: [] for c in partial_columns(view)}
    for s in starts:
        for a in AGGS:
            fn = for_aggregation(a)
            got = fn.fold([(t, _input(a, v)) if fn.ordered else _input(a, v)
                           for t, v in by_tile[s]])
            for p, v in got.items():
                cols[partial_column(a.name, p)].append(v)
    return starts, cols


def _oracle(view: FeatureView, events: list[tuple[int, dict[str, Any]]], hi: int,
            kept_from: int, loaded: int) -> list[Any]:
    out = []
    for f in view.features:
        a = AGG[f.aggregation or ""]
        lo = max(hi - (f.window_seconds or 0), kept_from)
        evs = [(t, v) for t, v in events if lo * US <= t < min(hi, loaded) * US]
        out.append(_direct(a.function, [_input(a, v) for _, v in evs], f.type,
                           [t for t, _ in evs], n=3))
    return out


def _exact_vs_oracle(f: Feature) -> bool:
    a = AGG[f.aggregation or ""]
    return a.function not in SPREAD and not (a.input_sql == "g" and a.function in ("sum", "avg"))


def _assert_same(view: FeatureView, got: list[Any], want: list[Any], what: str) -> None:
    for f, x, y in zip(view.features, got, want, strict=True):
        function = AGG[f.aggregation or ""].function
        if function in SPREAD and x is not None and y is not None:
            assert math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12), (what, f.name, x, y)
        elif function == "approx_count_distinct":  # the same registers, maybe another estimator
            assert abs(x - y) <= hll_bound(y), (what, f.name, x, y)
        else:
            assert x == y and type(x) is type(y), (what, f.name, x, y)


def _times(view: FeatureView, loaded: int, rng: random.Random) -> list[int]:
    """Lookup times (us) in [loaded, loaded + horizon]: slide and coarse boundaries, one
    microsecond either side, random."""
    slide, h = view.slide_seconds or 1, compaction.horizon(view)
    out = [loaded * US, (loaded + h) * US, (loaded + h + slide) * US - 1]
    for r in (slide, *compaction.levels(view)):
        first = -(-loaded // r) * r
        for c in range(first, loaded + h + 1, r):
            out.extend([c * US, c * US - 1, c * US + 1])
    out = sorted(set(t for t in out if loaded * US <= t < (loaded + h + slide) * US))
    if len(out) > 30:  # every coarse boundary's three times for some, the load and horizon
        out = [*out[:3], *out[-3:], *rng.sample(out[3:-3], 24)]
    out.extend(rng.randrange(loaded * US, (loaded + h + slide) * US) for _ in range(6))
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("view", [HOURLY, pytest.param(FIVE, marks=pytest.mark.slow)],
                         ids=lambda v: v.name)
def test_compacted_read_equals_all_fine_and_the_oracle(view: FeatureView, seed: int) -> None:
    rng = random.Random(seed)
    slide = view.slide_seconds or 1
    longest = max(view.windows)
    loaded = floor(1_704_067_200 + 100 * D + rng.randrange(0, 3 * D), slide)
    kept_from = loaded - longest
    n = 300 if view is HOURLY else 900
    events = _events(rng, kept_from - 2 * D, loaded, n)
    kept = [e for e in events if kept_from * US <= e[0] < loaded * US]
    starts, cols = _tiles(view, kept)
    merger = TileMerger(view)
    fine = encode_tiles(starts, cols)
    merged = merger(fine, loaded * US)
    assert merged is not None
    plain = encode_tiles(starts, cols, merged=(loaded, merged))
    cell = compacted.encode(view, starts, cols, loaded, merged=(loaded, merged))
    assert cell is not None and cell[:4] == compacted.MAGIC
    coarse = compacted.levels_of(cell, merger.names)
    assert sum(len(p.offsets) for _, p in coarse) > 0
    assert len(cell) < len(plain)
    split = split_merged(cell)
    assert split is not None
    checked = 0
    for t in _times(view, loaded, rng):
        hi = floor(t // US, slide)
        want_fine = TileMerger(view)(plain, t)
        assert want_fine is not None
        got = TileMerger(view)(cell, t)
        got_tiles = TileMerger(view)(split[1], t)  # DynamoDB's t: attribute
        assert got is not None and got_tiles is not None
        _assert_same(view, got, want_fine, f"compacted vs all-fine at {t}")
        _assert_same(view, got_tiles, want_fine, f"split tiles vs all-fine at {t}")
        # a slide whose windows all start after the cell's last tile: the head answers alone
        oracle = _oracle(view, events, hi, kept_from, loaded)
        for f, x, y in zip(view.features, got, oracle, strict=True):
            if AGG[f.aggregation or ""].function == "approx_count_distinct":
                assert abs(x - y) <= hll_bound(y), (t, f.name, x, y)
            elif _exact_vs_oracle(f):
                assert x == y, (t, f.name, x, y)
            elif x is not None or y is not None:
                assert x is not None and y is not None and \
                    math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-6), (t, f.name, x, y)
        checked += 1
    assert checked > 20


def test_beyond_the_horizon_a_coarse_edge_is_refused() -> None:
    view = HOURLY
    rng = random.Random(5)
    loaded = 1_704_067_200 + 100 * D
    events = _events(rng, loaded - 90 * D, loaded, 400)
    starts, cols = _tiles(view, events)
    cell = compacted.encode(view, starts, cols, loaded)
    assert cell is not None
    plain = encode_tiles(starts, cols)
    refused = served = 0
    for k in range(2, 30):  # lookups 2..29 days after the load, at 13:00
        t = (loaded + k * D + 13 * H) * US
        want = TileMerger(view)(plain, t)
        try:
            got = TileMerger(view)(cell, t)
        except IncompleteWindow as e:
            assert "inside a compacted tile of the online store" in str(e)
            assert "up to 24 h after their load" in str(e)
            refused += 1
            continue
        assert got == want
        served += 1
    assert refused > 0
    # beyond the longest window every window starts after the tiles: answered (empty)
    late = TileMerger(view)(cell, (loaded + 91 * D) * US)
    assert late == TileMerger(view)(plain, (loaded + 91 * D) * US)
    assert late is not None and late[0] == 0


def test_replays_before_the_load_are_equal_or_refused() -> None:
    """Before the load, a window edge may fall inside a coarse tile: refused; every replay the
    compacted cell answers equals the all-fine cell's answer, and an all-fine refusal is one."""
    view = HOURLY
    rng = random.Random(8)
    loaded = 1_704_067_200 + 100 * D + 5 * H
    events = _events(rng, loaded - 90 * D, loaded, 500)
    starts, cols = _tiles(view, events)
    cell = compacted.encode(view, starts, cols, loaded)
    assert cell is not None
    plain = encode_tiles(starts, cols)
    # a service reading the windows up to 30 days: replays within 60 days are answerable
    needed = {k for k, f in enumerate(view.features) if (f.window_seconds or 0) <= 30 * D}
    served = refused = 0
    times = [(loaded - k * H) * US + d for k in range(1, 49) for d in (0, -1, 1)]
    for t in times + [rng.randrange((loaded - 3 * D) * US, loaded * US) for _ in range(40)]:
        want = TileMerger(view, needed)(plain, t)
        try:
            got = TileMerger(view, needed)(cell, t)
        except IncompleteWindow:
            refused += 1
            continue
        assert want is not None and got is not None
        _assert_same(view, got, want, f"replay at {t}")
        served += 1
    assert refused > 0 and served > 0, (refused, served)


def test_a_real_load_serves_the_same_values(example_project: Path, tmp_path: Path) -> None:
    """The example loaded twice into SQLite, compacted (the default) and not: lookups through
    `OnlineService` at slide boundaries and between them over the day after the load give the
    same features, and the compacted cells are smaller."""
    from featql.compiler.project import compile_project
    from featql.jobs.online_load import load_online
    from featql.online.lookup import OnlineService
    from featql.online.sqlite import SqliteStore

    result = compile_project(example_project)
    m = result.manifest
    assert m is not None
    stores = {k: SqliteStore(tmp_path / f"{k}.db", "cmp") for k in ("compact", "fine")}
    try:
        for k, store in stores.items():
            load_online(example_project, m, "cmp", store=store, config=result.config,
                        views=["user_txn_aggs"], compact=k == "compact")
        size = {k: s._conn().execute(f"SELECT sum(length(payload)) FROM {s.table}").fetchone()[0]
                for k, s in stores.items()}
        assert size["compact"] < size["fine"]
        view = m.view("user_txn_aggs")
        assert view is not None
        online = {k: OnlineService(m, s, example_project) for k, s in stores.items()}
        rng = random.Random(4)
        users = [{"user_id": u} for u in rng.sample(range(1, 300), 60)]
        loaded = _loaded(stores["fine"], view)
        for t in [loaded * US, (loaded + D) * US, *(rng.randrange(loaded * US, (loaded + D) * US)
                                                  for _ in range(8))]:
            got = _features(online["compact"], users, t)
            want = _features(online["fine"], users, t)
            assert got == want, t
            assert all("refused" not in r for r in got)
            assert any(r["user_txn_aggs.txn_count_30d"] for r in got)
    finally:
        for s in stores.values():
            s.close()


def _loaded(store: Any, view: FeatureView) -> int:
    from featql.online.codec import cell_name
    from featql.online.tiles import merged_at

    rows = store._conn().execute(f"SELECT payload FROM {store.table} WHERE view = ?",
                                 [cell_name(view)]).fetchall()
    return max(merged_at(p) or 0 for (p,) in rows)


def _features(online: Any, users: list[dict[str, Any]], t: int) -> list[dict[str, Any]]:
    from featql.online.lookup import RequestError

    out = []
    for u in users:
        try:
            got, _ = online.lookup("fraud_detection", [{**u, "merchant_id": 1}],
                                   [{"amount": 10.0}], now_us=t)
        except RequestError as e:
            out.append({"refused": e.code})
            continue
        out.append({k: v for k, v in got[0].items() if k.startswith("user_txn_aggs.")})
    return out


def test_a_push_onto_a_compacted_cell_keeps_its_coarse_tiles(tmp_path: Path) -> None:
    """Pushed events fold into a stream cell that takes the compacted cell's fine and coarse
    tiles over verbatim: every window stays exact up to the horizon (more in
    tests/serve/test_stream_coarse.py)."""
    from featql.jobs.ingest import _as_stream_cell
    from featql.jobs.ingest_log import Ledger
    from featql.jobs.online_load import _pushed_sources
    from featql.online.stream_cells import StreamMerger

    view = HOURLY
    rng = random.Random(12)
    loaded = 1_704_067_200 + 100 * D + 9 * H
    starts, cols = _tiles(view, _events(rng, loaded - 90 * D, loaded, 400))
    merger = TileMerger(view)
    plain = encode_tiles(starts, cols)
    merged = merger(plain, loaded * US)
    assert merged is not None
    cell = compacted.encode(view, starts, cols, loaded, merged=(loaded, merged))
    assert cell is not None
    stream = _as_stream_cell(view, cell)
    assert stream.kept_from == loaded - 90 * D and stream.coarse
    for t in [loaded * US, (loaded + 5 * H) * US + 7, (loaded + D) * US]:
        want = TileMerger(view)(plain, t)
        assert want is not None
        _assert_same(view, StreamMerger(view)(stream, t), want, f"stream cell at {t}")
    # the ledger says events were pushed into `transactions` in workspace dev
    assert _pushed_sources(tmp_path, "dev") == set()
    ledger = Ledger(tmp_path)
    ledger.con.execute("INSERT INTO batches (source, workspace, batch_id, state, received, "
                       "created) VALUES ('transactions', 'dev', 'b1', 'done', 1, 'now')")
    ledger.close()
    assert _pushed_sources(tmp_path, "dev") == {"transactions"}
    assert _pushed_sources(tmp_path, "other") == set()


def test_views_over_a_pushed_source_are_loaded_fine(example_project: Path,
                                                    tmp_path: Path) -> None:
    import shutil

    from featql.compiler.project import compile_project
    from featql.jobs.ingest_log import Ledger
    from featql.jobs.online_load import load_online
    from featql.online.codec import cell_name
    from featql.online.sqlite import SqliteStore

    root = tmp_path / "features"
    shutil.copytree(example_project, root, ignore=shutil.ignore_patterns(".featql", "target"))
    result = compile_project(root)
    m = result.manifest
    assert m is not None
    view = m.view("user_txn_aggs")
    assert view is not None

    def magics(name: str) -> set[bytes]:
        store = SqliteStore(tmp_path / f"{name}.db", "dev")
        try:
            load_online(root, m, "dev", store=store, config=result.config,
                        views=["user_txn_aggs"], compact=True)
            return {bytes(p[:4]) for (p,) in store._conn().execute(
                f"SELECT payload FROM {store.table} WHERE view = ?", [cell_name(view)])}
        finally:
            store.close()

    assert b"FQC1" in magics("before")
    ledger = Ledger(root)
    ledger.con.execute("INSERT INTO batches (source, workspace, batch_id, state, received, "
                       "created) VALUES ('transactions', 'dev', 'b1', 'done', 1, 'now')")
    ledger.close()
    assert magics("after") == {b"FQT3"}
