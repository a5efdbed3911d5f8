"""As known at (PRODUCT §3): a row of a `known_at` source is visible at t only when its created
<= t (a NULL created never is), offline on DuckDB and Spark (from the sources and from the
offline store, which keeps every version) and online (the load keeps the newest row created by
the load time; a lookup serves it only once created, and refuses a replay it cannot answer).
Every engine and store is compared with the brute-force oracle on hypothesis-generated rows
(ties on ts, equal created, NULL created), and the issue's own case is checked exactly."""

from __future__ import annotations

import math
import random
import shutil
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featql.compiler.project import compile_project
from featql.jobs.join import join_spine
from featql.jobs.materialize import materialize
from featql.jobs.online_load import load_online
from featql.jobs.training import TrainingReport, training_set
from featql.online.codec import to_micros
from featql.online.lookup import OnlineService, RequestError
from featql.online.sqlite import SqliteStore
from runtime import oracle
from runtime.cases import Case, cases, merge, node, tables

BASE = datetime(2024, 1, 1)
NOW = datetime(2024, 3, 1)  # materializations run "now": after all of the data

FILES = {
    "featql.toml": '[project]\nname = "known"\n',
    "entities/user.sql": "-- @entity(name = user, keys = [user_id BIGINT])\n",
    "sources/profiles.sql":
        "-- @source(name = profiles, timestamp = updated_at, created = arrived_at,\n"
        "--         known_at = arrived_at, batch = parquet('data/profiles/'))\n"
        "CREATE TABLE profiles (user_id BIGINT, score DOUBLE, tier STRING,\n"
        "                       updated_at TIMESTAMP, arrived_at TIMESTAMP);\n",
    "views/profile.sql":
        "-- @feature_view(name = profile, entity = user, timestamp = updated_at,\n"
        "--               schedule = '1d', start = '2024-01-01')\n"
        "SELECT user_id, updated_at, score, tier FROM profiles\n",
    "views/recent.sql":
        "-- @feature_view(name = recent, entity = user, timestamp = updated_at, ttl = '2h',\n"
        "--               schedule = '1d', start = '2024-01-01')\n"
        "SELECT user_id, updated_at, score AS last_score FROM profiles\n",
    "views/profile_flags.sql":  # reads a known_at view: the created column travels with rows
        "-- @feature_view(name = profile_flags, entity = user, timestamp = updated_at,\n"
        "--               schedule = '1d', start = '2024-01-01')\n"
        "SELECT user_id, updated_at, score > 0 AS positive FROM profile\n"
        "WHERE tier IS NOT NULL\n",
    "services/svc.sql":
        "-- @feature_service(name = svc, features = [profile.*, recent.*, profile_flags.*])\n",
}
SCHEMA = pa.schema([("user_id", pa.int64()), ("score", pa.float64()), ("tier", pa.string()),
                    ("updated_at", pa.timestamp("us")), ("arrived_at", pa.timestamp("us"))])
SPINE = pa.schema([("user_id", pa.int64()), ("t", pa.timestamp("us"))])


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return bool(a == b) and type(a) is type(b)


# -- the join node against the oracle --------------------------------------------------------
def _known(case: Case) -> Case:
    """The harness's case with view `va` (whose rows have created times, NULL ones too,
    and twins on (keys, ts)) made known_at."""
    return replace(case, a=replace(case.a, known_at=True))


def _check_node(engine: Any, case: Case) -> None:
    tabs = tables(case)
    for name, table in tabs.items():
        if name != "spine":
            engine.register_arrow(name, table)
    plan = node(case)
    plan = replace(plan, views=tuple(replace(v, known_at=True) if v.view == "va" else v
                                     for v in plan.views))
    got = join_spine(engine, plan, tabs["spine"], "t").to_pylist()
    want = oracle.training_set(case.spine, "t", [case.a, case.b, case.c])
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        bad = {k: (g[k], w[k]) for k in w if "__" in k and not _same(g[k], w[k])}
        assert not bad, f"spine row {i} {case.spine[i]}: engine vs oracle {bad}"


@pytest.fixture(scope="module")
def duck() -> Any:
    from featql.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine()
    yield engine
    engine.close()


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=cases())
def test_duckdb_known_at_join_matches_oracle(duck: Any, case: Case) -> None:
    _check_node(duck, _known(case))


def random_case(rng: random.Random) -> Case:
    """A case shaped like `runtime.cases.cases()` (same pools and grids: NULL keys, times and
    created, twins on (keys, ts)), from a seeded generator. The Spark test needs many non-trivial
    cases in one job, and hypothesis' first example of a batch is its simplest: every view
    empty."""
    def grid(minutes: int, n: int) -> datetime:
        return BASE + timedelta(minutes=minutes * rng.randrange(n + 1))

    def maybe(value: Any, none_in: int = 4) -> Any:
        return None if rng.randrange(none_in) == 0 else value

    a_rows = [{"user_id": maybe(rng.choice([1, 2, 3])), "ts": maybe(grid(30, 12), 5),
               "_featql_created": maybe(grid(30, 12), 3), "fa_int": maybe(rng.randint(-3, 3)),
               "fa_str": maybe(rng.choice(["x", "y", "Z"]))} for _ in range(rng.randrange(11))]
    for row in rng.sample(a_rows, min(len(a_rows), rng.randrange(4))):
        a_rows.append({**row, "_featql_created": rng.choice([row["_featql_created"], None,
                                                            grid(30, 12)]),
                       "fa_int": maybe(rng.randint(-3, 3))})
    c_rows = [{"user_id": rng.choice([1, 2, 3]), "merchant": rng.choice(["a", "b", "é"]),
               "ts": grid(30, 12), "_featql_created": None,
               "fc": maybe(rng.choice([-1.5, 0.0, 2.25]))} for _ in range(rng.randrange(9))]
    events = [{"merchant": rng.choice(["a", "b", "é"]), "ts": grid(20, 24),
               "x": maybe(rng.randint(-3, 3))} for _ in range(rng.randrange(15))]
    spine = [{"user_id": maybe(rng.choice([1, 2, 3]), 5),
              "merchant": maybe(rng.choice(["a", "b", "é"])), "t": maybe(grid(15, 30), 5),
              "label": 0} for _ in range(1 + rng.randrange(10))]
    return Case(spine, oracle.RowView("va", ["user_id"], "ts", ["fa_int", "fa_str"],
                                      rng.choice([None, 3600, 7200, 5400]), a_rows),
                oracle.RowView("vc", ["user_id", "merchant"], "ts", ["fc"],
                               rng.choice([None, 3600]), c_rows),
                oracle.AggView("vb", ["merchant"], 3600, [3600, 3 * 3600],
                               [oracle.AggSpec("cnt", "count", None),
                                oracle.AggSpec("cx", "count", "x"),
                                oracle.AggSpec("sx", "sum", "x"),
                                oracle.AggSpec("ax", "avg", "x"),
                                oracle.AggSpec("mn", "min", "x"),
                                oracle.AggSpec("mx", "max", "x")], events))


@pytest.mark.slow
def test_spark_known_at_join_matches_oracle(spark_engine: Any) -> None:
    """60 seeded random cases in one Spark job (their keys made disjoint)."""
    rng = random.Random(3)
    batch = [random_case(rng) for _ in range(60)]
    assert sum(len(c.a.rows) for c in batch) > 200  # the comparison is not vacuous
    _check_node(spark_engine, _known(merge(batch)))


def test_the_oracle_hides_rows_not_yet_created() -> None:
    """The oracle's rule itself, so the comparisons above cannot pass by both being wrong."""
    rows = [{"k": 1, "ts": BASE, "_featql_created": BASE + timedelta(days=19), "f": "late"},
            {"k": 1, "ts": BASE - timedelta(days=3), "_featql_created": None, "f": "null"}]
    known = oracle.RowView("v", ["k"], "ts", ["f"], None, rows, known_at=True)
    plain = oracle.RowView("v", ["k"], "ts", ["f"], None, rows)
    assert oracle.row_value(known, (1,), BASE + timedelta(days=9)) == {"f": None}
    assert oracle.row_value(known, (1,), BASE + timedelta(days=19)) == {"f": "late"}
    assert oracle.row_value(plain, (1,), BASE + timedelta(days=9)) == {"f": "late"}


# -- a project: sources, offline store, online store -----------------------------------------
def _grid(minutes: int, n: int) -> st.SearchStrategy[datetime]:
    return st.integers(0, n).map(lambda i: BASE + timedelta(minutes=minutes * i))


_t = _grid(30, 12)


@st.composite
def project_rows(draw: st.DrawFn) -> dict[str, Any]:
    rows = draw(st.lists(st.fixed_dictionaries({
        "user_id": st.sampled_from([1, 2, 3]),
        "score": st.one_of(st.sampled_from([-1.5, 0.0, 2.25]), st.none()),
        "tier": st.one_of(st.sampled_from(["a", "b"]), st.none()),
        "updated_at": _t,
        "arrived_at": st.one_of(_t, _t, _t, st.none())}), max_size=12))
    if rows and draw(st.integers(0, 2)):  # twins on (user, ts), some with equal created
        for row in draw(st.lists(st.sampled_from(rows), min_size=1, max_size=3)):
            rows.append({**row, "score": draw(st.sampled_from([-1.5, 0.0, 2.25])),
                         "arrived_at": draw(st.sampled_from(
                             [row["arrived_at"], row["arrived_at"], None,
                              row["updated_at"] + timedelta(hours=1)]))})
    spine = draw(st.lists(st.fixed_dictionaries({
        "user_id": st.sampled_from([1, 2, 3]), "t": _grid(15, 30)}), min_size=1, max_size=10))
    load = draw(_grid(30, 16))
    return {"rows": rows, "spine": spine, "load": load}


def write_project(root: Path, rows: list[dict[str, Any]], known: bool = True) -> Path:
    for rel, text in FILES.items():
        if not known and rel == "sources/profiles.sql":
            text = text.replace("--         known_at = arrived_at, ", "--         ")
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    data = root / "data" / "profiles"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), data / "p.parquet")
    return root


def oracle_views(rows: list[dict[str, Any]], known: bool = True) -> list[oracle.RowView]:
    with_created = [{**r, "_featql_created": r["arrived_at"]} for r in rows]
    recent = [{**r, "last_score": r["score"]} for r in with_created]
    flags = [{**r, "positive": None if r["score"] is None else r["score"] > 0}
             for r in with_created if r["tier"] is not None]
    return [oracle.RowView("profile", ["user_id"], "updated_at", ["score", "tier"], None,
                           with_created, known_at=known),
            oracle.RowView("recent", ["user_id"], "updated_at", ["last_score"], 7200, recent,
                           known_at=known),
            oracle.RowView("profile_flags", ["user_id"], "updated_at", ["positive"], None,
                           flags, known_at=known)]


def assert_oracle(got: pa.Table, spine: list[dict[str, Any]], rows: list[dict[str, Any]],
                  known: bool = True) -> None:
    want = oracle.training_set(spine, "t", oracle_views(rows, known))
    for i, (g, w) in enumerate(zip(got.to_pylist(), want, strict=True)):
        bad = {k: (g[k], v) for k, v in w.items() if not _same(g[k], v)}
        assert not bad, f"spine row {i} {spine[i]}: got vs oracle {bad}"
    assert got.num_rows == len(want)


def kept_row(view: oracle.RowView, key: int, load: datetime) -> dict[str, Any] | None:
    """What the online load keeps for an entity: the greatest (ts, created, features) among
    its rows created by the load time (NULL created: never)."""
    best, rank = None, None
    for r in view.rows:
        c = r["_featql_created"]
        if r["user_id"] != key or c is None or c > load:
            continue
        k = (r["updated_at"], c, *((v is not None, v) for v in (r[f] for f in view.features)))
        if rank is None or k > rank:
            best, rank = r, k
    return best


def check_online(root: Path, manifest: Any, case: dict[str, Any], spine_rows: list[Any]
                 ) -> tuple[int, int]:
    """Lookups at the spine times up to the load time: each equals the oracle, or is refused
    (422) exactly when some view's kept row is not visible at that time."""
    load: datetime = case["load"]
    store = SqliteStore(root / "online.db", "dev")
    try:
        load_online(root, manifest, "dev", store=store, now=load)
        online = OnlineService(manifest, store, root)
        views = oracle_views(case["rows"])
        served = refused = 0
        for s in spine_rows:
            if s["t"] > load:
                continue  # the store is as fresh as its last load
            kept = [kept_row(v, s["user_id"], load) for v in views]
            unanswerable = any(k is not None and (k["updated_at"] >= s["t"]
                                                   or k["_featql_created"] > s["t"])
                               for k in kept)
            try:
                [got], _ = online.lookup("svc", [{"user_id": s["user_id"]}],
                                         now_us=to_micros(s["t"]))
            except RequestError as e:
                assert (e.status, e.code, e.field) == (422, "at_before_online_data", "at")
                assert unanswerable, (s, e.message)
                refused += 1
                continue
            assert not unanswerable, (s, got)
            [want] = oracle.training_set([s], "t", views)
            for col, value in got.items():
                view, feature = col.split(".", 1)
                assert _same(value, want[f"{view}__{feature}"]), (s, col, value)
            served += 1
        return served, refused
    finally:
        store.close()


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=project_rows())
def test_duckdb_sources_store_and_online_match_oracle(tmp_path_factory: pytest.TempPathFactory,
                                                      case: dict[str, Any]) -> None:
    root = write_project(tmp_path_factory.mktemp("known") / "p", case["rows"])
    result = compile_project(root)
    assert result.ok, [d.headline() for d in result.diagnostics]
    m = result.manifest
    spine = pa.Table.from_pylist(case["spine"], schema=SPINE)
    got = training_set(root, m, result.config, "svc", spine, engine="duckdb", use_store=False)
    assert_oracle(got, case["spine"], case["rows"])
    materialize(root, m, "dev", engine="duckdb", config=result.config, now=NOW)
    report = TrainingReport()
    stored = training_set(root, m, result.config, "svc", spine, engine="duckdb",
                          report=report)
    if case["rows"]:  # (a view without rows has nothing materialized: read from sources)
        assert report.reads["profile"] == report.reads["recent"] == "store", report.reads
    assert_oracle(stored, case["spine"], case["rows"])
    check_online(root, m, case, case["spine"])


def random_rows(rng: random.Random, users: int, n: int) -> list[dict[str, Any]]:
    """Rows like `project_rows` draws (a 30-minute grid, small value pools, NULL created, twins
    on (user, ts) with equal and other created), from a seeded generator: one Spark job checks
    many at once, and hypothesis' first example of a batch is its simplest (no rows)."""
    def t() -> datetime:
        return BASE + timedelta(minutes=30 * rng.randrange(13))

    rows = [{"user_id": rng.randrange(users), "score": rng.choice([-1.5, 0.0, 2.25, None]),
             "tier": rng.choice(["a", "b", None]), "updated_at": t(),
             "arrived_at": rng.choice([t(), t(), t(), None])} for _ in range(n)]
    for row in rng.sample(rows, n // 4):
        rows.append({**row, "score": rng.choice([-1.5, 0.0, 2.25]),
                     "arrived_at": rng.choice([row["arrived_at"], None,
                                               row["updated_at"] + timedelta(hours=1)])})
    return rows


def test_duckdb_seeded_project_and_online_match_oracle(tmp_path: Path) -> None:
    """One larger seeded case, so both outcomes of the online comparison are sure to happen:
    lookups served (equal to the oracle) and replays refused (the kept row not yet seen)."""
    rng = random.Random(8)
    rows = random_rows(rng, 20, 160)
    spine_rows = [{"user_id": rng.randrange(22),
                   "t": BASE + timedelta(minutes=15 * rng.randrange(31))} for _ in range(300)]
    root = write_project(tmp_path / "p", rows)
    result = compile_project(root)
    m = result.manifest
    spine = pa.Table.from_pylist(spine_rows, schema=SPINE)
    assert_oracle(training_set(root, m, result.config, "svc", spine, engine="duckdb",
                               use_store=False), spine_rows, rows)
    materialize(root, m, "dev", engine="duckdb", config=result.config, now=NOW)
    assert_oracle(training_set(root, m, result.config, "svc", spine, engine="duckdb"),
                  spine_rows, rows)
    served, refused = check_online(root, m, {"rows": rows, "load": BASE + timedelta(hours=5)},
                                   spine_rows)
    assert served >= 20 and refused >= 20, (served, refused)


@pytest.mark.slow
def test_spark_sources_and_store_match_oracle(tmp_path: Path, spark_engine: Any) -> None:
    """Random rows of 60 users in one Spark job: from the sources, then materialized by Spark
    (every version kept) and read back from the store."""
    rng = random.Random(15)
    rows = random_rows(rng, 60, 400)
    spine_rows = [{"user_id": rng.randrange(62),
                   "t": BASE + timedelta(minutes=15 * rng.randrange(31))}
                  for _ in range(600)]
    root = write_project(tmp_path / "p", rows)
    result = compile_project(root)
    assert result.ok, [d.headline() for d in result.diagnostics]
    spine = pa.Table.from_pylist(spine_rows, schema=SPINE)
    got = training_set(root, result.manifest, result.config, "svc", spine,
                       engine=spark_engine, use_store=False)
    assert_oracle(got, spine_rows, rows)
    materialize(root, result.manifest, "dev", engine=spark_engine, config=result.config,
                now=NOW)
    report = TrainingReport()
    stored = training_set(root, result.manifest, result.config, "svc", spine,
                          engine=spark_engine, report=report)
    assert set(report.reads.values()) == {"store"}, report.reads
    assert_oracle(stored, spine_rows, rows)


# -- the issue's case, exactly ---------------------------------------------------------------
ISSUE_ROWS = [
    # written on 01-05 but it arrived on 01-20
    {"user_id": 1, "score": 1.0, "tier": "a", "updated_at": datetime(2024, 1, 5),
     "arrived_at": datetime(2024, 1, 20)},
    {"user_id": 1, "score": -2.0, "tier": "b", "updated_at": datetime(2024, 1, 2),
     "arrived_at": datetime(2024, 1, 2)},
]
AT_10, AT_21 = datetime(2024, 1, 10), datetime(2024, 1, 21)


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=pytest.mark.slow)])
def test_a_row_created_on_0120_is_not_served_on_0110_but_is_on_0121(
        tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> None:
    eng = request.getfixturevalue("spark_engine") if engine == "spark" else engine
    spine = pa.Table.from_pylist([{"user_id": 1, "t": AT_10}, {"user_id": 1, "t": AT_21}],
                                 schema=SPINE)
    for known, at_10 in ((True, -2.0), (False, 1.0)):  # without known_at it leaks (the issue)
        root = write_project(tmp_path / f"p{known}", ISSUE_ROWS, known)
        result = compile_project(root)
        assert result.ok, [d.headline() for d in result.diagnostics]
        for use_store in (False, True):
            if use_store:
                materialize(root, result.manifest, "dev", engine=eng, config=result.config,
                            now=NOW)
            got = training_set(root, result.manifest, result.config, "svc", spine,
                               engine=eng, use_store=use_store)
            assert got.column("profile__score").to_pylist() == [at_10, 1.0], (known, use_store)
            assert got.column("profile__tier").to_pylist() == [
                "b" if known else "a", "a"]
            assert got.column("profile_flags__positive").to_pylist() == [not known, True]


def test_a_null_created_row_is_never_visible(tmp_path: Path) -> None:
    rows = [{"user_id": 2, "score": 5.0, "tier": "a", "updated_at": datetime(2024, 1, 3),
             "arrived_at": None}]
    root = write_project(tmp_path / "p", rows)
    result = compile_project(root)
    spine = pa.Table.from_pylist([{"user_id": 2, "t": datetime(2024, 2, 1)}], schema=SPINE)
    got = training_set(root, result.manifest, result.config, "svc", spine, engine="duckdb",
                       use_store=False)
    assert got.column("profile__score").to_pylist() == [None]
    store = SqliteStore(root / "online.db", "dev")
    try:
        report = load_online(root, result.manifest, "dev", store=store, now=NOW)
        assert {v.view: v.entities for v in report.views}["profile"] == 0
    finally:
        store.close()
