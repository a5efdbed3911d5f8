"""As known at (PRODUCT §3) for aggregate views: a training-set row at t aggregates only the events
with ts in its window AND created <= t (a NULL created: never), and an online lookup at now the
same. Every aggregate function of `featql.semantics.aggregates.FUNCTIONS` (exact, ranked,
sketches: the sketches are exact on windows this small) is compared with a brute-force oracle
written here from the definitions (nothing shared with featql): DuckDB and Spark training sets
(from the sources and from the offline store), the online cells merged by `TileMerger`, and
lookups through the SQLite online store. Events arrive on time, at their tile's end exactly, a
little late, days late, with the spine time itself (created == t is visible) or never (NULL);
spine times fall on tile boundaries and just before them; ties on the event time and empty
windows are common. The issue's case (an event created 01-20: not counted at 01-10, counted at
01-21) is checked exactly."""

from __future__ import annotations

import math
import random
import shutil
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featql.jobs.materialize import materialize
from featql.jobs.training import TrainingReport, training_set
from featql.semantics.aggregates import FUNCTIONS
from runtime.conftest import compiled

BASE = datetime(2024, 1, 1)
EPOCH = datetime(1970, 1, 1)
NOW = datetime(2024, 3, 1)
SLIDE = 3600
WINDOWS = {3600: "1h", 3 * 3600: "3h"}

# (feature alias, function, input column, constant argument)
AGGS = [("n", "count", None, None), ("cx", "count", "x", None), ("sx", "sum", "x", None),
        ("ad", "avg", "d", None), ("mnx", "min", "x", None), ("mxd", "max", "d", None),
        ("sds", "stddev_samp", "d", None), ("sdp", "stddev_pop", "x", None),
        ("vs", "var_samp", "x", None), ("vp", "var_pop", "d", None),
        ("lx", "last_n", "x", 3), ("lds", "last_distinct_n", "s", 2),
        ("fd", "first_n", "d", 2), ("fdx", "first_distinct_n", "x", 3),
        ("tk", "top_k", "s", 2), ("dc", "approx_count_distinct", "s", None),
        ("p50", "approx_percentile", "d", "0.5")]
SPREAD = {"stddev_samp", "stddev_pop", "var_samp", "var_pop"}
_SQL = {"count": "COUNT", "sum": "SUM", "avg": "AVG", "min": "MIN", "max": "MAX"}


def _call(function: str, col: str | None, arg: Any) -> str:
    name = _SQL.get(function, function.upper())
    args = [col or "*", *([str(arg)] if arg is not None else [])]
    return f"{name}({', '.join(args)})"


SELECT = ", ".join(f"{_call(f, c, a)} AS {alias}" for alias, f, c, a in AGGS)
COLUMNS = ("user_id BIGINT, x BIGINT, d DOUBLE, s STRING, ts TIMESTAMP, arrived TIMESTAMP")
PROJECT = {
    "featql.toml": '[project]\nname = "known_aggs"\n',
    "entities/user.sql": "-- @entity(name = user, keys = [user_id BIGINT])\n",
    "sources/ev.sql": (
        "-- @source(name = ev, timestamp = ts, created = arrived, known_at = arrived,\n"
        "--         batch = parquet('data/ev/'))\n"
        f"CREATE TABLE ev ({COLUMNS});\n"),
    "sources/ev_plain.sql": (  # the same files, without known_at: the baseline
        "-- @source(name = ev_plain, timestamp = ts, created = arrived,\n"
        "--         batch = parquet('data/ev/'))\n"
        f"CREATE TABLE ev_plain ({COLUMNS});\n"),
    "views/ka.sql": (
        "-- @feature_view(name = ka, entity = user, timestamp = ts,\n"
        "--               windows = ['1h', '3h'], slide = '1h', start = '2024-01-01')\n"
        f"SELECT user_id, {SELECT}\nFROM (SELECT * FROM ev WHERE user_id > 0) e\n"
        "GROUP BY user_id\n"),
    "views/pa.sql": (
        "-- @feature_view(name = pa, entity = user, timestamp = ts,\n"
        "--               windows = ['1h', '3h'], slide = '1h', start = '2024-01-01')\n"
        f"SELECT user_id, {SELECT}\nFROM (SELECT * FROM ev_plain WHERE user_id > 0) e\n"
        "GROUP BY user_id\n"),
    "views/monthly.sql": (
        "-- @feature_view(name = monthly, entity = user, timestamp = ts,\n"
        "--               windows = ['30d'], slide = '1d', start = '2023-12-01')\n"
        "SELECT user_id, COUNT(*) AS n, SUM(x) AS sx, LAST_N(x, 2) AS lx FROM ev\n"
        "GROUP BY user_id\n"),
    "views/life.sql": (
        "-- @feature_view(name = life, entity = user, timestamp = ts,\n"
        "--               windows = ['1h', 'lifetime'], slide = '1h', start = '2024-01-01')\n"
        "SELECT user_id, COUNT(*) AS n, SUM(x) AS sx, VAR_POP(d) AS vp, LAST_N(x, 2) AS lx\n"
        "FROM ev GROUP BY user_id\n"),
    "services/life.sql": "-- @feature_service(name = life, features = [life.*])\n",
    "services/svc.sql": "-- @feature_service(name = svc, features = [ka.*])\n",
    "services/plain.sql": "-- @feature_service(name = plain, features = [pa.*])\n",
    "services/monthly.sql": "-- @feature_service(name = monthly, features = [monthly.*])\n",
}
SCHEMA = pa.schema([("user_id", pa.int64()), ("x", pa.int64()), ("d", pa.float64()),
                    ("s", pa.string()), ("ts", pa.timestamp("us")),
                    ("arrived", pa.timestamp("us"))])
SPINE = pa.schema([("user_id", pa.int64()), ("t", pa.timestamp("us"))])


# -- the oracle ------------------------------------------------------------------------------------
def oracle_value(function: str, arg: Any, events: list[tuple[datetime, Any]]) -> Any:
    """One feature from the raw (event time, input) pairs of its window, from the definitions
    in docs/language.md (`events` of COUNT(*) are all the window's events)."""
    if function == "count":
        return len(events) if arg == "*" else sum(1 for _, v in events if v is not None)
    present = [(t, v) for t, v in events if v is not None]
    values = [v for _, v in present]
    if function == "approx_count_distinct":
        return len({v for v in values if v != ""})
    if not values:
        return None
    if function == "sum":
        return sum(values)
    if function == "avg":
        return math.fsum(values) / len(values)
    if function in ("min", "max"):
        return min(values) if function == "min" else max(values)
    if function in SPREAD:
        n = len(values)
        if function.endswith("samp") and n < 2:
            return None
        mean = math.fsum(values) / n
        var = math.fsum((v - mean) ** 2 for v in values) / (n - 1 if function.endswith("samp")
                                                             else n)
        return math.sqrt(var) if function.startswith("stddev") else var
    if function == "approx_percentile":
        ordered = sorted(float(v) for v in values)
        return ordered[max(1, math.ceil(Fraction(arg) * len(ordered))) - 1]
    if function == "top_k":
        counts: dict[Any, int] = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        return sorted(counts, key=lambda v: (-counts[v], v))[:arg]
    newest = function.startswith("last")
    out: list[Any] = []
    for _, v in sorted(present, key=lambda e: (e[0], e[1]), reverse=newest):
        if "distinct" in function and v in out:
            continue
        out.append(v)
    return out[:arg]


def floor_to(t: datetime, slide: int) -> datetime:
    us = (t - EPOCH) // timedelta(microseconds=1)
    return EPOCH + timedelta(microseconds=us - us % (slide * 1_000_000))


def visible(e: dict[str, Any], t: datetime, known_at: bool) -> bool:
    """As known at: the event had arrived by t (created <= t; NULL never)."""
    return not known_at or (e["arrived"] is not None and e["arrived"] <= t)


def expected(events: list[dict[str, Any]], spine: list[dict[str, Any]], view: str = "ka",
             known_at: bool = True) -> list[dict[str, Any]]:
    out = []
    for row in spine:
        result: dict[str, Any] = dict(row)
        hi = floor_to(row["t"], SLIDE)
        for alias, function, col, arg in AGGS:
            for w, suffix in WINDOWS.items():
                lo = hi - timedelta(seconds=w)
                window = [(e["ts"], e[col] if col else 1) for e in events
                          if e["user_id"] == row["user_id"] and e["user_id"] > 0
                          and lo <= e["ts"] < hi and visible(e, row["t"], known_at)]
                result[f"{view}__{alias}_{suffix}"] = oracle_value(
                    function, "*" if col is None and function == "count" else arg, window)
        out.append(result)
    return out


def assert_rows(got: list[dict[str, Any]], want: list[dict[str, Any]], what: str) -> None:
    assert len(got) == len(want), what
    spread = {f"{v}__{a}_{s}" for v in ("ka", "pa") for a, f, _, _ in AGGS
              if f in SPREAD | {"avg"} for s in WINDOWS.values()}
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        for k, v in w.items():
            if k in spread and v is not None and g[k] is not None:
                assert math.isclose(g[k], v, rel_tol=1e-9, abs_tol=1e-9), (what, i, k, g[k], v)
            else:
                assert g[k] == v and type(g[k]) is type(v), (what, i, k, g[k], v, w)


def test_the_oracle_hides_events_not_yet_created() -> None:
    """The oracle's rule itself, so the comparisons below cannot pass by both being wrong."""
    late = {"user_id": 1, "x": 5, "d": 1.0, "s": "a", "ts": BASE,
            "arrived": BASE + timedelta(days=2)}
    never = {**late, "arrived": None}
    spine = [{"user_id": 1, "t": BASE + timedelta(hours=1)},
             {"user_id": 1, "t": BASE + timedelta(days=2)}]
    known = expected([late, never], spine)
    plain = expected([late, never], spine, "pa", known_at=False)
    assert [r["ka__n_1h"] for r in known] == [0, 0]  # at 2 days the 1h window is past
    assert [r["pa__n_1h"] for r in plain] == [2, 0]
    assert expected([late], [{"user_id": 1, "t": BASE + timedelta(minutes=59)}],
                    known_at=True)[0]["ka__n_1h"] == 0  # (the tile is not closed yet either)
    assert {f for _, f, _, _ in AGGS} == set(FUNCTIONS)  # every function is covered


# -- the cases -------------------------------------------------------------------------------------
def random_case(rng: random.Random, users: int = 3, n: int = 16, spine_n: int = 14
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Events over 6 h (20-minute grid: many on tile edges; twins on (user, ts)) and how late
    each arrived; spine times on a 15-minute grid, on tile boundaries, 1 us before them, and
    at arrival times exactly (created == t: visible)."""
    def ts() -> datetime:
        return BASE + timedelta(minutes=20 * rng.randrange(19))

    def arrived(t: datetime) -> datetime | None:
        end = floor_to(t, SLIDE) + timedelta(seconds=SLIDE)
        return rng.choice([t, t + timedelta(minutes=10), end, end + timedelta(minutes=40),
                           t + timedelta(hours=rng.randrange(1, 8)),
                           t + timedelta(days=rng.randrange(1, 3)), None])

    def maybe(value: Any) -> Any:
        return None if rng.randrange(5) == 0 else value

    events = []
    for _ in range(rng.randrange(n + 1)):
        t = ts()
        events.append({"user_id": rng.randrange(1, users + 1), "x": maybe(rng.randint(-5, 5)),
                       "d": maybe(rng.choice([-2.5, 0.25, 3.75, 1e6 + 0.5, rng.randint(-8, 8)
                                              / 4])),
                       "s": maybe(rng.choice(["a", "b", "B", "é", ""])), "ts": t,
                       "arrived": arrived(t)})
    for e in rng.sample(events, min(len(events), rng.randrange(4))):  # ties on (user, ts)
        events.append({**e, "x": maybe(rng.randint(-5, 5)), "arrived": arrived(e["ts"])})
    arrivals = [e["arrived"] for e in events if e["arrived"] is not None]
    spine = []
    for _ in range(1 + rng.randrange(spine_n)):
        kind = rng.randrange(4)
        if kind == 0:
            t = BASE + timedelta(minutes=15 * rng.randrange(41))
        elif kind == 1:
            t = BASE + timedelta(hours=rng.randrange(11))
        elif kind == 2:
            t = BASE + timedelta(hours=1 + rng.randrange(10)) - timedelta(microseconds=1)
        else:
            t = rng.choice(arrivals) if arrivals else BASE
        spine.append({"user_id": rng.randrange(1, users + 2), "t": t})
    return events, spine


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return random_case(random.Random(draw(st.integers(0, 1 << 30))))


def write_events(root: Path, events: list[dict[str, Any]]) -> None:
    folder = root / "data" / "ev"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(events, schema=SCHEMA), folder / "p.parquet")


def write_project(root: Path, events: list[dict[str, Any]]) -> Path:
    for rel, text in PROJECT.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    write_events(root, events)
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = write_project(tmp_path_factory.mktemp("known_aggs") / "project", [])
    return root, compiled(root)


def _training(project: tuple[Path, Any], spine: list[dict[str, Any]], engine: Any,
              service: str = "svc", use_store: bool = False,
              report: TrainingReport | None = None) -> list[dict[str, Any]]:
    root, c = project
    got = training_set(root, c.manifest, c.config, service, pa.Table.from_pylist(spine, SPINE),
                       engine=engine, use_store=use_store, report=report)
    rows: list[dict[str, Any]] = got.to_pylist()
    return rows


def online_cells(project: tuple[Path, Any], load: datetime, spine: list[dict[str, Any]]
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The online read of the events `write_events` wrote: DuckDB's tiles, those known by the
    load time `load`, packed by the load's `tile_cells` and merged by `TileMerger` at each spine
    time the cells can answer (in the slides from the end of the tiles, up to the load time:
    later ones would need events the load had not seen yet). Returns (answered spine rows,
    their values)."""
    from featql.engines.duckdb import DuckDBEngine
    from featql.jobs.online_load import _known_by, tile_cells
    from featql.jobs.relations import ProjectData
    from featql.online import codec
    from featql.online.tiles import TileMerger

    root, c = project
    view = c.manifest.view("ka")
    engine = DuckDBEngine(threads=1)
    try:
        tiles = engine.query(ProjectData(engine, c.manifest, root).fresh_sql(view))
    finally:
        engine.close()
    if tiles.num_rows == 0:
        return [], []
    end = max(tiles.column("_tile_start").to_pylist()) + timedelta(seconds=SLIDE)
    hi_us = (end - EPOCH) // timedelta(microseconds=1)
    cells = {cell.item: cell.payload
             for cell in tile_cells(view, _known_by(tiles, load), hi_us, 1)}
    merger = TileMerger(view)
    names = [f"ka__{f.name}" for f in view.features]
    rows, out = [], []
    for row in spine:
        if not end <= row["t"] <= load:
            continue
        t_us = (row["t"] - EPOCH) // timedelta(microseconds=1)
        values = merger(cells.get(codec.item_key("user", [row["user_id"]])), t_us)
        assert values is not None
        rows.append(row)
        out.append({**row, **dict(zip(names, values, strict=True))})
    return rows, out


# -- the tests -------------------------------------------------------------------------------------
def test_the_views_are_known_at_where_their_source_is(project: tuple[Path, Any]) -> None:
    _, c = project
    ka, pa_ = c.manifest.view("ka"), c.manifest.view("pa")
    assert (ka.known_at, pa_.known_at) == (True, False)
    assert [f.name for f in ka.features] == [f"{a}_{s}" for a, *_ in AGGS
                                             for s in WINDOWS.values()]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=cases(), late=st.integers(0, 72))
def test_duckdb_training_sets_and_online_cells_match_the_oracle(
        project: tuple[Path, Any], case: tuple[list[dict[str, Any]], list[dict[str, Any]]],
        late: int) -> None:
    events, spine = case
    write_events(project[0], events)
    assert_rows(_training(project, spine, "duckdb"), expected(events, spine), "duckdb")
    assert_rows(_training(project, spine, "duckdb", "plain"),
                expected(events, spine, "pa", known_at=False), "duckdb without known_at")
    end = BASE + timedelta(hours=7)  # at most the end of the tiles: the spine is up to 10 h
    load = end + timedelta(hours=late)
    online_spine = [*spine, *({"user_id": u, "t": end + timedelta(minutes=20 * k)}
                              for u in (1, 2) for k in range(10))]
    rows, got = online_cells(project, load, online_spine)
    assert_rows(got, expected(events, rows), "online cells")
    # the online fold is the training set's fold: the same partials in the same (start, known)
    # order, so even the order-sensitive merges (Chan's VAR, its STDDEVs) agree bit for bit
    if rows:
        offline = _training(project, rows, "duckdb")
        for i, (g, o) in enumerate(zip(got, offline, strict=True)):
            assert g == o, (i, {k: (g[k], o[k]) for k in g if g[k] != o[k]})


def test_a_seeded_project_from_sources_store_and_online_lookups(tmp_path: Path) -> None:
    """One larger seeded case through the whole pipeline on DuckDB: from the sources, then
    materialized (the store's tiles have `_featql_known`) and read back, then loaded into the
    SQLite online store at a time after late events arrived and looked up (`at`) between the
    end of the tiles and the load time: each answer equals the oracle at that time."""
    from featql.jobs.online_load import load_online
    from featql.online.codec import to_micros
    from featql.online.lookup import OnlineService
    from featql.online.sqlite import SqliteStore

    rng = random.Random(21)
    events, _ = random_case(rng, users=12, n=300)
    spine = [{"user_id": rng.randrange(1, 14),
              "t": BASE + timedelta(minutes=15 * rng.randrange(25))} for _ in range(250)]
    spine += [{"user_id": rng.randrange(1, 14), "t": e["arrived"]} for e in events[:60]
              if e["arrived"] is not None and e["arrived"] <= BASE + timedelta(hours=6)]
    root = write_project(tmp_path / "p", events)
    c = compiled(root)
    proj = (root, c)
    want = expected(events, spine)
    assert sum(w["ka__n_3h"] != p["pa__n_3h"] for w, p in zip(
        want, expected(events, spine, "pa", known_at=False), strict=True)) >= 20  # late events
    assert_rows(_training(proj, spine, "duckdb"), want, "sources")
    materialize(root, c.manifest, "dev", engine="duckdb", config=c.config, now=NOW)
    report = TrainingReport()
    assert_rows(_training(proj, spine, "duckdb", use_store=True, report=report), want, "store")
    assert report.reads == {"ka": "store"}, report.reads
    load = BASE + timedelta(hours=30)
    store = SqliteStore(root / "online.db", "dev")
    try:
        load_online(root, c.manifest, "dev", store=store, now=load)
        online = OnlineService(c.manifest, store, root)
        end = max(e["ts"] for e in events)
        end = floor_to(end, SLIDE) + timedelta(seconds=SLIDE)
        times = [end + timedelta(minutes=10 * k) for k in range(30)]
        times += [e["arrived"] for e in events if e["arrived"] is not None
                  and end <= e["arrived"] <= load]
        lookups = [{"user_id": u, "t": t} for t in times for u in range(1, 14)]
        got = []
        for row in lookups:
            [values], _ = online.lookup("svc", [{"user_id": row["user_id"]}],
                                        now_us=to_micros(row["t"]))
            got.append({**row, **{k.replace(".", "__"): v for k, v in values.items()}})
        wanted = expected(events, lookups)
        assert sum(w["ka__n_3h"] > 0 for w in wanted) >= 20  # not only empty windows
        assert_rows(got, wanted, "online lookups")
    finally:
        store.close()


@pytest.mark.slow
def test_spark_sources_and_store_match_the_oracle(tmp_path: Path, spark_engine: Any) -> None:
    """Seeded events of 30 users in one Spark job: from the sources (the known_at plan and the
    plain one), then materialized by Spark and read back from the store."""
    rng = random.Random(5)
    events, _ = random_case(rng, users=30, n=500)
    spine = [{"user_id": rng.randrange(1, 32),
              "t": BASE + timedelta(minutes=15 * rng.randrange(25))} for _ in range(300)]
    spine += [{"user_id": e["user_id"], "t": e["arrived"]} for e in events[:80]
              if e["arrived"] is not None and e["arrived"] <= BASE + timedelta(hours=6)]
    spine += [{"user_id": 1, "t": BASE + timedelta(hours=3) - timedelta(microseconds=1)}]
    root = write_project(tmp_path / "p", events)
    c = compiled(root)
    proj = (root, c)
    want = expected(events, spine)
    assert_rows(_training(proj, spine, spark_engine), want, "spark sources")
    assert_rows(_training(proj, spine, spark_engine, "plain"),
                expected(events, spine, "pa", known_at=False), "spark without known_at")
    materialize(root, c.manifest, "dev", engine=spark_engine, config=c.config, now=NOW)
    report = TrainingReport()
    assert_rows(_training(proj, spine, spark_engine, use_store=True, report=report), want,
                "spark store")
    assert report.reads == {"ka": "store"}, report.reads


# -- the issue's case, exactly ---------------------------------------------------------------------
ISSUE = [  # written on 01-05, arrived on 01-20; and one on time
    {"user_id": 1, "x": 7, "d": 1.0, "s": "a", "ts": datetime(2024, 1, 5, 12),
     "arrived": datetime(2024, 1, 20)},
    {"user_id": 1, "x": 2, "d": 2.0, "s": "b", "ts": datetime(2024, 1, 3, 8),
     "arrived": datetime(2024, 1, 3, 9)},
    {"user_id": 1, "x": 100, "d": 3.0, "s": "c", "ts": datetime(2024, 1, 4),
     "arrived": None},  # never known
]
AT_10, AT_21 = datetime(2024, 1, 10), datetime(2024, 1, 21)


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=pytest.mark.slow)])
def test_an_event_created_on_0120_is_not_counted_on_0110_but_is_on_0121(
        tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> None:
    eng = request.getfixturevalue("spark_engine") if engine == "spark" else engine
    root = write_project(tmp_path / "p", ISSUE)
    c = compiled(root)
    spine = [{"user_id": 1, "t": AT_10}, {"user_id": 1, "t": AT_21}]
    for use_store in (False, True):
        if use_store:
            materialize(root, c.manifest, "dev", engine=eng, config=c.config, now=NOW)
        got = _training((root, c), spine, eng, "monthly", use_store=use_store)
        assert [r["monthly__n_30d"] for r in got] == [1, 2], use_store
        assert [r["monthly__sx_30d"] for r in got] == [2, 9], use_store
        assert [r["monthly__lx_30d"] for r in got] == [[2], [7, 2]], use_store


def test_online_an_event_created_on_0120_is_served_from_0120(tmp_path: Path) -> None:
    """Loaded on 01-25 (the late event is known by then): a lookup at 01-10 does not count it,
    one at 01-21 does; loaded on 01-15, it is not in the store at all."""
    from featql.jobs.online_load import load_online
    from featql.online.codec import to_micros
    from featql.online.lookup import OnlineService
    from featql.online.sqlite import SqliteStore

    root = write_project(tmp_path / "p", ISSUE)
    c = compiled(root)
    for load, at_21 in ((datetime(2024, 1, 25), 2), (datetime(2024, 1, 15), 1)):
        store = SqliteStore(root / f"online{load.day}.db", "dev")
        try:
            load_online(root, c.manifest, "dev", store=store, now=load, views=["monthly"])
            online = OnlineService(c.manifest, store, root)
            got = [online.lookup("monthly", [{"user_id": 1}], now_us=to_micros(t))[0][0]
                   for t in (AT_10, AT_21)]
            assert [g["monthly.n_30d"] for g in got] == [1, at_21], load
            assert got[0]["monthly.lx_30d"] == [2]
        finally:
            store.close()


def test_a_lifetime_window_offline_and_online(tmp_path: Path) -> None:
    """`lifetime`: every event since the start, created by t. Online, the older tiles are folded
    into one prefix tile at load (`with_prefix`), known when its newest partial was: lookups
    after that equal the training set exactly; a replay before it is refused (422), never
    merged without the partials it cannot take out."""
    from featql.jobs.online_load import load_online
    from featql.online.codec import to_micros
    from featql.online.lookup import OnlineService, RequestError
    from featql.online.sqlite import SqliteStore

    rng = random.Random(9)
    events, _ = random_case(rng, users=6, n=200)
    for e in events:  # the first hours' events all arrive within the day: the prefix is known
        if e["ts"] < BASE + timedelta(hours=2) and e["arrived"] is not None:
            e["arrived"] = min(e["arrived"], BASE + timedelta(hours=20))
    root = write_project(tmp_path / "p", events)
    c = compiled(root)
    end = floor_to(max(e["ts"] for e in events), SLIDE) + timedelta(seconds=SLIDE)
    times = [end + timedelta(minutes=20 * k) for k in range(80)]  # to end + 26 h
    spine = [{"user_id": u, "t": t} for t in times for u in range(1, 7)]
    got = _training((root, c), spine, "duckdb", "life")
    for row, g in zip(spine, got, strict=True):
        hi = floor_to(row["t"], SLIDE)
        seen = [e for e in events if e["user_id"] == row["user_id"] and e["ts"] < hi
                and visible(e, row["t"], True)]
        assert g["life__n_lifetime"] == len(seen), row
        assert g["life__sx_lifetime"] == oracle_value("sum", None, [(e["ts"], e["x"])
                                                                    for e in seen]), row
    load = end + timedelta(hours=30)
    store = SqliteStore(root / "online.db", "dev")
    try:
        load_online(root, c.manifest, "dev", store=store, now=load, views=["life"])
        online = OnlineService(c.manifest, store, root)
        served = refused = 0
        for row, g in zip(spine, got, strict=True):
            try:
                [values], _ = online.lookup("life", [{"user_id": row["user_id"]}],
                                            now_us=to_micros(row["t"]))
            except RequestError as e:
                assert (e.status, e.code) == (422, "at_before_online_data"), e.message
                refused += 1
                continue
            served += 1
            assert {k.replace(".", "__"): v for k, v in values.items()} == {
                k: v for k, v in g.items() if k.startswith("life__")}, row
        assert served >= 100 and refused >= 1, (served, refused)
    finally:
        store.close()
