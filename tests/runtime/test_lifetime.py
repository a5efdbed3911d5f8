"""`windows = [..., 'lifetime']`: every event since the view's start, against a brute-force oracle.

Offline the lifetime window is a window of 1000 years (`featql.core.durations.LIFETIME_SECONDS`),
so the point-in-time merge's frame simply reaches every tile. Online a cell keeps the tiles of
the longest finite window before its load and folds the older ones into one prefix tile
(`featql.online.tiles.with_prefix`): a lifetime lookup reads that tile plus at most
`longest finite window / slide` tiles, not every tile since the start. Checked: DuckDB (and
Spark, slow) training sets, and the online read of the load's cells (plain and compacted) at
every slide the store can answer, all equal to the oracle; earlier lookups are refused.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.oracle import floor_time
from runtime.oracle_project import OracleProject, disjoint_batch, to_us

BASE = datetime(2024, 1, 1)
HOUR = 3600
WINDOWS = {HOUR: "1h", 3 * HOUR: "3h", None: "lifetime"}

PROJECT = {
    "featql.toml": '[project]\nname = "lifetime"\n',
    "entities/user.sql": "-- @entity(name = user, keys = [user_id BIGINT])\n",
    "sources/events.sql": (
        "-- @source(name = events, timestamp = ts, batch = parquet('data/events/'))\n"
        "CREATE TABLE events (user_id BIGINT, x BIGINT, s STRING, ts TIMESTAMP);\n"),
    "views/life.sql": (
        "-- @feature_view(name = life, entity = user, timestamp = ts,\n"
        "--               windows = ['1h', '3h', 'lifetime'], slide = '1h', start = '2024-01-01')\n"
        "SELECT user_id, COUNT(*) AS n, SUM(x) AS sx, MIN(x) AS mn, AVG(x) AS ax,\n"
        "       STDDEV_POP(x) AS sd, LAST_N(x, 2) AS lx, TOP_K(s, 2) AS ts_, FIRST_N(s, 2) AS fs\n"
        "FROM events GROUP BY user_id\n"),
    "services/svc.sql": "-- @feature_service(name = svc, features = [life.*])\n",
}
AGGS = [("n", "count", None), ("sx", "sum", "x"), ("mn", "min", "x"), ("ax", "avg", "x"),
        ("sd", "stddev_pop", "x"), ("lx", "last_n", "x"), ("ts_", "top_k", "s"),
        ("fs", "first_n", "s")]
SCHEMA = pa.schema([("user_id", pa.int64()), ("x", pa.int64()), ("s", pa.string()),
                    ("ts", pa.timestamp("us"))])
SPINE = pa.schema([("user_id", pa.int64()), ("t", pa.timestamp("us"))])


def _value(function: str, events: list[tuple[datetime, Any]]) -> Any:
    if function == "count":
        return len(events)
    present = [(t, v) for t, v in events if v is not None]
    values = [v for _, v in present]
    if not values:
        return None
    if function == "sum":
        return sum(values)
    if function == "min":
        return min(values)
    if function == "avg":
        return sum(values) / len(values)
    if function == "stddev_pop":
        mean = sum(values) / len(values)
        return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    if function == "top_k":
        counts: dict[Any, int] = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        return sorted(counts, key=lambda v: (-counts[v], v))[:2]
    ranked = sorted(present, reverse=function == "last_n")
    return [v for _, v in ranked][:2]


def expected_at(events: list[dict[str, Any]], user: int, t: datetime) -> dict[str, Any]:
    hi = floor_time(t, HOUR)
    out = {}
    for alias, function, col in AGGS:
        for w, suffix in WINDOWS.items():
            lo = hi - timedelta(seconds=w) if w is not None else datetime.min
            window = [(e["ts"], e[col] if col else 1) for e in events
                      if e["user_id"] == user and lo <= e["ts"] < hi]
            out[f"life__{alias}_{suffix}"] = _value(function, window)
    return out


def same(got: dict[str, Any], want: dict[str, Any], what: str) -> None:
    for k, v in want.items():
        g = got[k]
        if isinstance(v, float) and isinstance(g, float):
            assert math.isclose(g, v, rel_tol=1e-9, abs_tol=1e-9), (what, k, g, v)
        else:
            assert g == v and type(g) is type(v), (what, k, g, v)


_t = st.integers(0, 40 * 3).map(lambda i: BASE + timedelta(minutes=20 * i))  # 40 hours


@st.composite
def case(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events = draw(st.lists(st.fixed_dictionaries({
        "user_id": st.sampled_from([1, 2]), "x": st.one_of(st.none(), st.integers(-9, 9)),
        "s": st.one_of(st.none(), st.sampled_from(["a", "b", "c"])), "ts": _t}),
        min_size=1, max_size=30))
    spine = draw(st.lists(st.fixed_dictionaries({
        "user_id": st.sampled_from([1, 2, 3]),
        "t": st.integers(0, 44 * 4).map(lambda i: BASE + timedelta(minutes=15 * i))}),
        min_size=1, max_size=10))
    return events, spine


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> OracleProject:
    return OracleProject.create(tmp_path_factory.mktemp("lifetime") / "project", PROJECT, SCHEMA,
                                SPINE)


def test_lifetime_features_are_named_and_typed(project: OracleProject) -> None:
    view = project.manifest.view("life")
    names = {f.name: f.type for f in view.features}
    assert names["n_lifetime"] == "BIGINT" and names["lx_lifetime"] == "ARRAY<BIGINT>"
    assert [f.name for f in view.features][:3] == ["n_1h", "n_3h", "n_lifetime"]


def _check_training(project: OracleProject, events: list[dict[str, Any]],
                    spine: list[dict[str, Any]], engine: Any) -> None:
    got = project.training(events, spine, engine)
    assert len(got) == len(spine)
    for g, row in zip(got, spine, strict=True):
        same(g, expected_at(events, row["user_id"], row["t"]), f"training set at {row}")


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=case())
def test_duckdb_training_sets_and_online_reads_match_the_oracle(
        project: OracleProject, data: tuple[list[dict[str, Any]], list[dict[str, Any]]]
) -> None:
    from featql.jobs.online_load import tile_cells
    from featql.online import codec
    from featql.online.tiles import IncompleteWindow, TileMerger, decode_tiles, partial_columns

    events, spine = data
    _check_training(project, events, spine, "duckdb")
    view = project.manifest.view("life")
    tiles = project.duck_tiles("life")
    merger = TileMerger(view)
    loaded = BASE + timedelta(hours=41)  # the end of the data's last tile
    loaded_us = to_us(loaded)
    for compact in (False, True):
        cells = {cell.item: cell.payload for cell in tile_cells(view, tiles, loaded_us,
                                                                 compact=compact)}
        for user in (1, 2):
            payload = cells.get(codec.item_key("user", [user]))
            if payload is None:
                continue
            if not compact:  # the prefix tile and the 3h window's tiles, never more
                assert len(decode_tiles(payload, partial_columns(view)).starts) <= 4
            # every slide the store can answer: the 3h window must start at or after the
            # oldest tile kept (load - 3h), so from the load on (and long after it)
            for hours in (*range(41, 46), 60, 200):
                at = BASE + timedelta(hours=hours, minutes=7)
                t_us = to_us(at)
                values = merger(payload, t_us)
                assert values is not None
                got = {f"life__{f.name}": v for f, v in zip(view.features, values, strict=True)}
                same(got, expected_at(events, user, at), f"online at {at} compact={compact}")
            with pytest.raises(IncompleteWindow):  # its 3h window needs folded tiles
                merger(payload, to_us(BASE + timedelta(hours=40)))


@pytest.mark.slow
def test_spark_training_sets_match_the_oracle(
        project: OracleProject, spark_engine: Any) -> None:
    events, spine = disjoint_batch(case, 20, 1)
    _check_training(project, events, spine, spark_engine)


def test_compile_time_read_cost_counts_the_prefix_tile(project: OracleProject) -> None:
    """`featql compile`'s per-lookup bound: the 3h window's 3 tiles and the prefix tile."""
    from featql.semantics.read_cost import view_read

    view = project.manifest.view("life")
    for compact in (False, True):
        assert view_read(view, compact=compact).tiles == 3 + 1
