"""What one lookup reads, at compile time (issue 14 item 4): the report's tiles and bytes for the
example's 30-day window (user_txn_aggs) and a 90-day one against really encoded cells (dense
entities, every slide with data, at every alignment of the load; and the example's own data
loaded into SQLite), and the budget's check error (E509) with its exact text and position."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from featql.compiler.project import compile_project
from featql.core.ir import FeatureView, Manifest
from featql.jobs.online_load import TILE_START, load_online, tile_cells
from featql.online import compacted
from featql.online.codec import cell_name
from featql.online.sqlite import SqliteStore
from featql.online.tiles import unpack
from featql.semantics import compaction, read_cost
from featql.semantics.aggregates import for_aggregation, partial_column, partial_columns
from featql.semantics.types import arrow_type

H, D = 3600, 86400
LONG = """-- @feature_view(name = user_txn_long, entity = user, timestamp = event_ts,
--               windows = ['30d', '90d'], slide = '1h', start = '2024-01-01')
SELECT user_id, COUNT(*) AS txn_count, SUM(amount) AS amount_sum, AVG(amount) AS amount_avg,
       MAX(amount) AS amount_max
FROM transactions WHERE amount > 0 GROUP BY user_id
"""
SERVICE = """-- @feature_service(name = long_windows,
--   features = [user_txn_aggs.*, user_txn_long.*], max_read_kb = {kb})
"""


def _project(example_project: Path, tmp_path: Path, kb: str = "256") -> Path:
    root = tmp_path / "features"
    shutil.copytree(example_project, root, ignore=shutil.ignore_patterns(".featql", "target"))
    (root / "views" / "user_txn_long.sql").write_text(LONG)
    (root / "services" / "long_windows.sql").write_text(SERVICE.format(kb=kb))
    return root


@pytest.fixture(scope="module")
def manifest(example_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    result = compile_project(_project(example_project, tmp_path_factory.mktemp("cost")))
    assert result.ok, [d.render() for d in result.diagnostics]
    assert result.manifest is not None
    return result.manifest


def _dense_table(view: FeatureView, loaded: int, rng: random.Random) -> pa.Table:
    """One entity's tiles for every slide of the longest window before `loaded`: 1-4 events
    each, amounts with cents up to 10^7 (wide doubles, sums that need two doubles)."""
    slide = view.slide_seconds or 1
    longest = max(view.windows)
    cols: dict[str, list[Any]] = {c: [] for c in partial_columns(view)}
    starts = []
    for s in range(loaded - longest, loaded, slide):
        amounts = [rng.randrange(1, 10**9) / 100 + rng.random() * 1e-7
                   for _ in range(rng.randrange(1, 5))]
        starts.append(s)
        for a in view.aggregations:
            fn = for_aggregation(a)
            vals = [1] * len(amounts) if a.input_sql is None else amounts
            for p, v in fn.fold(vals).items():
                cols[partial_column(a.name, p)].append(v)
    types = dict(zip(partial_columns(view), (t for _, t in _tile_types(view)), strict=True))
    return pa.table({"user_id": pa.array([7] * len(starts), pa.int64()),
                     TILE_START: pa.array([s * 1_000_000 for s in starts], pa.timestamp("us")),
                     **{c: pa.array(v, arrow_type(types[c])) for c, v in cols.items()}})


def _tile_types(view: FeatureView) -> list[tuple[str, str]]:
    from featql.semantics.aggregates import tile_columns

    return list(tile_columns(view))


@pytest.mark.parametrize("name, window", [("user_txn_aggs", 30 * D), ("user_txn_long", 90 * D)])
def test_the_report_bounds_real_cells(manifest: Manifest, name: str, window: int) -> None:
    view = manifest.view(name)
    assert view is not None and max(view.windows) == window
    got = read_cost.view_read(view)
    plain = read_cost.view_read(view, compact=False)
    assert got.window == window and got.fine_tiles == window // H == plain.tiles
    assert got.bytes is not None and plain.bytes is not None
    rng = random.Random(window)
    anchor = 1_704_067_200 + 120 * D  # a day boundary
    seen_tiles, sizes, fine_sizes = [], [], []
    for k in range(24):  # every alignment of the load within the coarsest level (1 day)
        loaded = anchor + k * H
        table = _dense_table(view, loaded, rng)
        [cell] = tile_cells(view, table, loaded * 1_000_000, compact=True)
        [fine] = tile_cells(view, table, loaded * 1_000_000, compact=False)
        assert cell.payload[:4] == compacted.MAGIC
        names = partial_columns(view)
        tiles = len(unpack(cell.payload, names).offsets) + sum(
            len(p.offsets) for _, p in compacted.levels_of(cell.payload, names))
        assert tiles == len(compaction.plan_cell(view, loaded))
        seen_tiles.append(tiles)
        sizes.append(len(cell.payload))
        fine_sizes.append(len(fine.payload))
        assert len(cell.payload) <= got.bytes, (k, len(cell.payload), got.bytes)
        assert len(fine.payload) <= plain.bytes, (k, len(fine.payload), plain.bytes)
        assert len(cell.payload) * 3 < len(fine.payload)  # what compaction saves, really
    assert max(seen_tiles) == got.tiles  # the bound is reached by a dense entity
    print(f"{name} {window // D}d: at most {got.tiles} tiles of {got.fine_tiles}, "
          f"bound {got.bytes} B (uncompacted {plain.bytes} B); dense cells {min(sizes)}-"
          f"{max(sizes)} B (uncompacted {min(fine_sizes)}-{max(fine_sizes)} B)")


def test_the_numbers_of_the_example(manifest: Manifest) -> None:
    """The figures docs/language.md states for the example's windows on a 1-hour slide."""
    short, long = manifest.view("user_txn_aggs"), manifest.view("user_txn_long")
    assert short is not None and long is not None
    assert (read_cost.view_read(short).tiles, read_cost.view_read(long).tiles) == (145, 182)


def test_the_example_data_loaded_stays_within_the_bound(manifest: Manifest,
                                                        example_project: Path,
                                                        tmp_path: Path) -> None:
    root = _project(example_project, tmp_path)
    store = SqliteStore(tmp_path / "online.db", "cost")
    try:
        load_online(root, manifest, "cost", store=store,
                    views=["user_txn_aggs", "user_txn_long", "user_profile"])
        for name in ("user_txn_aggs", "user_txn_long", "user_profile"):
            view = manifest.view(name)
            assert view is not None
            bound = read_cost.view_read(view)
            sizes = [n for (n,) in store._conn().execute(
                f"SELECT length(payload) FROM {store.table} WHERE view = ?", [cell_name(view)])]
            assert sizes, name
            # a row view's bound leaves its text out: add the text of the row
            if bound.text:
                continue
            assert bound.bytes is not None and max(sizes) <= bound.bytes, (name, max(sizes))
    finally:
        store.close()


def _shown(d: Any) -> str:
    """A diagnostic as `featql check` prints it, from the project's folder."""
    text: str = d.render()
    return text[text.index("services/"):]


def _check(example_project: Path, tmp_path: Path, kb: str) -> list[str]:
    result = compile_project(_project(example_project, tmp_path, kb))
    return [_shown(d) for d in result.diagnostics if d.code in ("E509", "E105")]


def test_a_budget_too_small_is_a_check_error(example_project: Path, tmp_path: Path) -> None:
    [got] = _check(example_project, tmp_path, "16")
    assert got.splitlines()[0] == (
        "services/long_windows.sql:2:67: error[E509]: service 'long_windows' reads up to "
        "57.7 KB per lookup, over its max_read_kb = 16: view 'user_txn_long', window 90d "
        "reads up to 40.9 KB (182 tiles)")
    assert "help: raise max_read_kb, shorten the window or use a longer slide" in got


def test_a_budget_that_holds_and_a_bad_one(example_project: Path, tmp_path: Path) -> None:
    assert _check(example_project, tmp_path / "a", "64") == []
    [bad] = _check(example_project, tmp_path / "b", "'big'")
    assert bad.splitlines()[0] == ("services/long_windows.sql:2:67: error[E105]: expected a "
                                   "number greater than 0, found the string 'big'")


def test_an_unbounded_view_under_a_budget(example_project: Path, tmp_path: Path) -> None:
    root = _project(example_project, tmp_path)
    (root / "views" / "user_txn_long.sql").write_text(
        LONG.replace("MAX(amount) AS amount_max", "TOP_K(channel, 3) AS top_channels"))
    (root / "services" / "long_windows.sql").write_text(SERVICE.format(kb="256").replace(
        "user_txn_long.*", "user_txn_long.top_channels_90d"))
    result = compile_project(root)
    [got] = [_shown(d) for d in result.diagnostics if d.code == "E509"]
    assert got.splitlines()[0] == (
        "services/long_windows.sql:2:82: error[E509]: service 'long_windows' has "
        "max_read_kb = 256, but view 'user_txn_long', window 90d has no size bound: "
        "the histogram of TOP_K (top_channels)")


def test_every_bounded_function_stays_within_its_bound() -> None:
    """A view with every function of FUNCTIONS over a DOUBLE and a BIGINT input (TOP_K aside:
    no bound), dense tiles of 1-40 events each (more than LAST_N's n, more than a few distinct
    values), compacted and not: the real cells against the bound."""
    from featql.core.ir import Aggregation, Column, Feature, Location
    from featql.semantics.aggregates import FUNCTIONS

    aggs = [Aggregation("n", "count", None, None, "BIGINT")]
    for col, t in (("x", "DOUBLE"), ("k", "BIGINT")):
        for name, fn in FUNCTIONS.items():
            if fn.accepts(t) and name != "top_k":
                args = (0.5,) if name == "approx_percentile" else tuple(10 for _ in fn.arity)
                aggs.append(Aggregation(f"{name}_{col}", name, col, t,  # type: ignore[arg-type]
                                        fn.result_type(t), args=args))
    windows = (H, D, 30 * D)
    view = FeatureView(
        name="all", base_name="all", variant=None, location=Location("v.sql", 1, 1),
        kind="aggregate", entity="e", keys=(Column("user_id", "BIGINT"),), timestamp="ts",
        sql="", depends_on=(), features=tuple(Feature(f"{a.name}_{w}", a.type, "", a.name, w)
                                              for a in aggs for w in windows),
        fingerprint="f", schedule_seconds=H, start="2024-01-01", windows=windows,
        slide_seconds=H, aggregations=tuple(aggs))
    bound = read_cost.view_read(view)
    plain = read_cost.view_read(view, compact=False)
    assert bound.bytes is not None and plain.bytes is not None
    rng = random.Random(9)
    loaded = 1_704_067_200 + 100 * D + 11 * H
    types = dict(_tile_types(view))
    cols: dict[str, list[Any]] = {c: [] for c in partial_columns(view)}
    starts = list(range(loaded - 30 * D, loaded, H))
    for s in starts:
        n = rng.randrange(1, 41)
        times = sorted(s * 1_000_000 + rng.randrange(H * 1_000_000) for _ in range(n))
        xs = [rng.uniform(-1e9, 1e9) for _ in range(n)]
        ks = [rng.randrange(-(1 << 40), 1 << 40) for _ in range(n)]  # sums exact as doubles
        for a in aggs:
            fn = for_aggregation(a)
            vals = [1] * n if a.input_sql is None else xs if a.input_sql == "x" else ks
            got = fn.fold(list(zip(times, vals, strict=True)) if fn.ordered else vals)
            for p, v in got.items():
                cols[partial_column(a.name, p)].append(v)
    table = pa.table({"user_id": pa.array([1] * len(starts), pa.int64()),
                      TILE_START: pa.array([s * 1_000_000 for s in starts], pa.timestamp("us")),
                      **{c: pa.array(v, arrow_type(types[c])) for c, v in cols.items()}})
    [cell] = tile_cells(view, table, loaded * 1_000_000, compact=True)
    [fine] = tile_cells(view, table, loaded * 1_000_000, compact=False)
    assert cell.payload[:4] == compacted.MAGIC
    assert len(cell.payload) <= bound.bytes, (len(cell.payload), bound.bytes)
    assert len(fine.payload) <= plain.bytes, (len(fine.payload), plain.bytes)
    print(f"every function, 30d: compacted {len(cell.payload)} B (bound {bound.bytes}), "
          f"fine {len(fine.payload)} B (bound {plain.bytes})")


def test_the_sketch_bounds_hold_for_big_sketches() -> None:
    from featql.semantics.sketches import hll_build, kll_build

    rng = random.Random(2)
    assert len(hll_build(list(range(200_000)))) <= read_cost.HLL_MAX
    assert len(kll_build([rng.random() for _ in range(300_000)])) <= read_cost.KLL_MAX
