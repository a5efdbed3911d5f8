"""featql.dialects: TimeFloor on both engines, the lowered SQL executed and checked for meaning,
DuckDB → Spark parity, and the refusals (exact messages).

Spark tests are marked slow and use one local[1] session; if Spark cannot start they fail.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot.errors import ErrorLevel

from featql.compiler.project import CompileResult, compile_project
from featql.core.diagnostics import Span
from featql.core.ir import Manifest
from featql.dialects import (
    TARGETS,
    FeatqlDuckDB,
    FeatqlSpark,
    LoweringError,
    TimeFloor,
    generate,
    lower_all,
    lower_view,
    lowered_columns,
    transpile,
)
from featql.dialects.render import parse

EPOCH = datetime(1970, 1, 1)
US = 1_000_000
HOUR, DAY = 3600, 86400


def micros(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1)


def floor_oracle(m: int, seconds: int) -> int:
    return m - m % (seconds * US)  # Python's % floors: the definition TimeFloor must match


# --------------------------------------------------------------------------- helpers
def manifest_of(result: CompileResult) -> Manifest:
    assert result.manifest is not None and result.ok, [d.headline() for d in result.diagnostics]
    return result.manifest


def dag_order(manifest: Manifest) -> list[str]:
    done: list[str] = []
    pending = [v.name for v in manifest.views]
    while pending:
        ready = [n for n in pending if all(d in done or manifest.view(d) is None
                                           for d in manifest.view(n).depends_on)]  # type: ignore
        done.extend(ready)
        pending = [n for n in pending if n not in ready]
    return done


def duckdb_session(project: Path, manifest: Manifest) -> duckdb.DuckDBPyConnection:
    """Sources as views over their Parquet files; row-level views as views of their own SQL."""
    con = duckdb.connect()
    for s in manifest.sources:
        files = project / s.batch.path / "*.parquet"
        con.execute(f"CREATE VIEW {s.name} AS SELECT * FROM read_parquet('{files}')")
    for name in dag_order(manifest):
        if manifest.view(name).kind == "row":  # type: ignore[union-attr]
            con.execute(f"CREATE VIEW {name} AS {lower_view(manifest, name, 'duckdb')}")
    return con


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# --------------------------------------------------------------------------- TimeFloor
FLOOR_CASES = [
    micros(datetime(1900, 3, 1, 12, 34, 56, 789)),
    micros(datetime(1969, 12, 31, 23, 30)),
    micros(datetime(1969, 12, 31, 23)),  # exact boundary before the epoch
    -1,
    0,
    1,
    micros(datetime(2024, 1, 1)) - 1,
    micros(datetime(2024, 1, 1)),
    micros(datetime(2024, 1, 1, 0, 59, 59, 999999)),
    micros(datetime(2024, 2, 29, 13, 0, 0, 1)),
    micros(datetime(2100, 1, 1, 5)),
]
SLIDES = [1, 900, HOUR, 5400, DAY, 7 * DAY]


def test_time_floor_expression() -> None:
    node = TimeFloor(this=sqlglot.exp.column("ts"), seconds=3600)
    assert (node.seconds, node.micros) == (3600, 3_600_000_000)
    with pytest.raises(ValueError, match="positive"):
        TimeFloor(this=sqlglot.exp.column("ts"), seconds=0)
    parsed = sqlglot.parse_one("SELECT TIME_FLOOR(ts, 60) FROM t", read=FeatqlDuckDB)
    assert isinstance(parsed, sqlglot.exp.Select) and isinstance(parsed.selects[0], TimeFloor)
    assert "EPOCH_US(ts)" in parsed.sql(dialect=FeatqlDuckDB)
    assert "PMOD(UNIX_MICROS(CAST(ts AS TIMESTAMP)), 60000000)" in parsed.sql(dialect=FeatqlSpark)


@pytest.mark.parametrize("seconds", SLIDES)
def test_time_floor_duckdb(seconds: int) -> None:
    con = duckdb.connect()
    values = ", ".join(f"({m})" for m in FLOOR_CASES)
    con.execute(f"CREATE TABLE input AS SELECT m, MAKE_TIMESTAMP(m) AS ts FROM (VALUES {values}) "
                "AS t(m)")
    sql = generate(parse(f"SELECT m, TIME_FLOOR(ts, {seconds}) AS f FROM input"), "duckdb")
    got = {m: micros(f) for m, f in con.execute(sql).fetchall()}
    assert got == {m: floor_oracle(m, seconds) for m in FLOOR_CASES}
    assert con.execute(f"SELECT typeof(f) FROM ({sql}) LIMIT 1").fetchone() == ("TIMESTAMP",)


# --------------------------------------------------------------------------- lowering, DuckDB
def test_lowered_sql_is_deterministic_and_clean(example_compiled: CompileResult) -> None:
    manifest = manifest_of(example_compiled)
    first, second = lower_all(manifest), lower_all(manifest)
    assert first == second
    assert sorted(first) == sorted((v.name, t) for v in manifest.views for t in TARGETS)
    for (view, target), sql in first.items():
        assert sql.startswith(f"-- featql feature view: {view}\n"), view
        assert f"-- target: {target}\n" in sql
        assert "@" not in sql and "/*" not in sql, f"a comment leaked into {view}/{target}"
        ctes = [line for line in sql.splitlines() if line.endswith(" AS (")]
        stages = [line for line in sql.splitlines() if line.startswith("-- stage: ")]
        assert len(stages) == len(ctes) + 1
        sqlglot.parse_one(sql, read=FeatqlDuckDB if target == "duckdb" else FeatqlSpark)


def test_every_view_runs_on_duckdb_with_the_contract_columns(
        example_project: Path, example_compiled: CompileResult) -> None:
    manifest = manifest_of(example_compiled)
    con = duckdb_session(example_project, manifest)
    duck_types = {"BIGINT": "BIGINT", "INT": "INTEGER", "DOUBLE": "DOUBLE", "STRING": "VARCHAR",
                  "BOOLEAN": "BOOLEAN", "TIMESTAMP": "TIMESTAMP", "DATE": "DATE"}
    for view in manifest.views:
        rel = con.sql(lower_view(manifest, view.name, "duckdb"))
        expected = lowered_columns(view)
        assert rel.columns == [c.name for c in expected], view.name
        assert [str(t) for t in rel.types] == [duck_types[c.type] for c in expected], view.name
        assert rel.aggregate("count(*)").fetchall()[0][0] > 0


def test_aggregate_tiles_match_a_brute_force_count(example_project: Path,
                                                   example_compiled: CompileResult) -> None:
    manifest = manifest_of(example_compiled)
    con = duckdb_session(example_project, manifest)
    txns = pq.read_table(example_project / "data" / "transactions")
    user = pc.mode(txns["user_id"])[0]["mode"].as_py()  # the busiest user
    mine = txns.filter(pc.and_(pc.equal(txns["user_id"], user), pc.greater(txns["amount"], 0)))
    expected: dict[int, list[float]] = {}
    for ts, amount in zip(mine["event_ts"].to_pylist(), mine["amount"].to_pylist(), strict=True):
        expected.setdefault(floor_oracle(micros(ts), HOUR), []).append(amount)
    sql = lower_view(manifest, "user_txn_aggs", "duckdb")
    got = {micros(r["_tile_start"]): r for r in rows(con, sql) if r["user_id"] == user}
    assert sorted(got) == sorted(expected)
    for tile, amounts in expected.items():
        r = got[tile]
        assert r["txn_count__count"] == len(amounts)
        assert r["amount_sum__count"] == r["amount_avg__count"] == len(amounts)
        assert math.isclose(r["amount_sum__sum"], sum(amounts))
        assert r["amount_max__max"] == max(amounts)
    total = con.execute(f"SELECT SUM(txn_count__count) FROM ({sql})").fetchone()
    assert total == (pc.sum(pc.greater(txns["amount"], 0).cast(pa.int64())).as_py(),)


def test_row_view_carries_every_event_and_its_created_column(
        example_project: Path, example_compiled: CompileResult) -> None:
    manifest = manifest_of(example_compiled)
    con = duckdb_session(example_project, manifest)
    txns = pq.read_table(example_project / "data" / "transactions")
    got = con.execute("SELECT user_id, event_ts, _featql_created, last_amount FROM "
                      f"({lower_view(manifest, 'user_last_txn', 'duckdb')})").fetchall()
    expected = zip(*(txns[c].to_pylist() for c in ("user_id", "event_ts", "created_ts", "amount")),
                   strict=True)
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    flags = con.execute("SELECT COUNT(*), COUNT(_featql_created) FROM user_risk_flags").fetchone()
    assert flags == (pq.read_table(example_project / "data" / "users").num_rows, 0)


MINI = {
    "featql.toml": '[project]\nname = "mini"\n',
    "entities/user.sql": "-- @entity(name = user, keys = [user_id BIGINT])\n",
    "sources/events.sql": """\
-- @source(name = events, timestamp = event_ts, created = created_ts,
--         batch = parquet('data/events/'))
CREATE TABLE events (user_id BIGINT, amount DOUBLE, flag BOOLEAN, tag STRING,
                     event_ts TIMESTAMP, created_ts TIMESTAMP);
""",
    "sources/profiles.sql": """\
-- @source(name = profiles, timestamp = updated_at, batch = parquet('data/profiles/'))
CREATE TABLE profiles (user_id BIGINT, country STRING, updated_at TIMESTAMP);
""",
    "views/aggs.sql": """\
-- @feature_view(name = aggs, entity = user, timestamp = event_ts, windows = ['1d'],
--               slide = '1h', start = '1969-01-01')
SELECT user_id, COUNT(*) AS n, SUM(amount) AS amount_sum, AVG(flag) AS flag_rate,
       SUM(flag) AS flags, MIN(tag) AS first_tag
FROM events
WHERE tag <> 'skip'
GROUP BY user_id
""",
}


def write_project(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_tiles_keep_null_sums_filter_before_tiling_and_floor_before_1970(tmp_path: Path) -> None:
    root = write_project(tmp_path, MINI)
    manifest = manifest_of(compile_project(root))
    ts = [datetime(1969, 12, 31, 23, 30), datetime(1969, 12, 31, 23, 59), datetime(1970, 1, 1),
          datetime(1970, 1, 1, 0, 0, 1)]
    data = pa.table({
        "user_id": [1, 1, 1, 1], "amount": [None, None, 2.5, 4.0],
        "flag": [True, False, None, True], "tag": ["b", "a", "c", "skip"],
        "event_ts": pa.array(ts, pa.timestamp("us")),
        "created_ts": pa.array(ts, pa.timestamp("us")),
    })
    (root / "data" / "events").mkdir(parents=True)
    pq.write_table(data, root / "data" / "events" / "part-0.parquet")
    con = duckdb.connect()
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{root}/data/events/*.parquet')")
    got = rows(con, lower_view(manifest, "aggs", "duckdb") + "ORDER BY _tile_start")
    assert [r["_tile_start"] for r in got] == [datetime(1969, 12, 31, 23), EPOCH]
    before, after = got
    # the 23:00 tile has only NULL amounts: its sum is NULL, not 0, and counts none
    assert (before["n__count"], before["amount_sum__sum"], before["amount_sum__count"]) == (
        2, None, 0)
    assert (before["flag_rate__sum"], before["flag_rate__count"]) == (1.0, 2)
    assert (before["flags__sum"], before["flags__count"], before["first_tag__min"]) == (1, 2, "a")
    # the 'skip' row is filtered out before tiling
    assert (after["n__count"], after["amount_sum__sum"], after["flags__count"]) == (1, 2.5, 0)


# --------------------------------------------------------------------------- refusals
def refusal(sql: str, read: str = "duckdb", write: str = "spark") -> str:
    with pytest.raises(LoweringError) as info:
        transpile(sql, read, write)  # type: ignore[arg-type]
    assert info.value.diagnostic.code == "E701"
    return info.value.diagnostic.message


def test_refuses_asof_join_for_spark() -> None:
    sql = "SELECT a.k, b.v FROM a ASOF JOIN b ON a.k = b.k AND a.ts >= b.ts"
    # the quirk: sqlglot 30.30 passes ASOF through to Spark, even at ErrorLevel.RAISE
    assert "ASOF JOIN" in sqlglot.transpile(sql, read="duckdb", write="spark",
                                            unsupported_level=ErrorLevel.RAISE)[0]
    assert refusal(sql) == "ASOF JOIN cannot run on Spark: Spark SQL has no as-of join"
    assert "ASOF JOIN" in transpile(sql, "duckdb", "duckdb")


def test_refuses_ordered_array_agg_for_spark() -> None:
    sql = "SELECT ARRAY_AGG(x ORDER BY y) AS xs FROM t"
    assert sqlglot.transpile(sql, read="duckdb", write="spark",
                             unsupported_level=ErrorLevel.RAISE) == [
        "SELECT COLLECT_LIST(x) AS xs FROM t"]
    assert refusal(sql) == ("ARRAY_AGG(... ORDER BY ...) cannot run on Spark: Spark's "
                            "COLLECT_LIST has no ORDER BY, so the order would be lost")
    assert refusal("SELECT FIRST(x ORDER BY y) AS f FROM t") == (
        "FIRST(... ORDER BY ...) cannot run on Spark: Spark aggregates take no ORDER BY inside "
        "the call")
    assert "WITHIN GROUP (ORDER BY y" in transpile(
        "SELECT STRING_AGG(x, ',' ORDER BY y) AS s FROM t", "duckdb", "spark", pretty=False)


def test_refuses_array_agg_that_would_drop_nulls_on_spark() -> None:
    assert refusal("SELECT ARRAY_AGG(x) AS xs FROM t") == (
        "ARRAY_AGG cannot run on Spark: Spark's COLLECT_LIST drops NULL elements that DuckDB's "
        "ARRAY_AGG keeps")
    ok = transpile("SELECT ARRAY_AGG(x) FILTER (WHERE x IS NOT NULL) AS xs FROM t",
                   "duckdb", "spark", pretty=False)
    assert ok == "SELECT COLLECT_LIST(x) FILTER(WHERE NOT x IS NULL) AS xs FROM t"


def test_refuses_regexp_replace_options_for_spark() -> None:
    assert refusal("SELECT REGEXP_REPLACE(s, 'x', 'y') AS r FROM t") == (
        "REGEXP_REPLACE without 'g' cannot run on Spark: DuckDB replaces the first match only, "
        "Spark replaces every match")
    assert refusal("SELECT REGEXP_REPLACE(s, 'x', 'y', 'gi') AS r FROM t") == (
        "REGEXP_REPLACE options 'gi' cannot run on Spark: only 'g' has a Spark equivalent")
    assert transpile("SELECT REGEXP_REPLACE(s, 'x', 'y', 'g') AS r FROM t", "duckdb", "spark",
                     pretty=False) == "SELECT REGEXP_REPLACE(s, 'x', 'y') AS r FROM t"


def test_refuses_date_diff_units_spark_lacks() -> None:
    assert refusal("SELECT DATE_DIFF('decade', a, b) AS d FROM t") == (
        "DATE_DIFF('decade', ...) cannot run on Spark: Spark has no such unit")


def test_refuses_spark_last_ignore_nulls_for_duckdb() -> None:
    sql = "SELECT last(x, true) AS l FROM t"
    # the quirk: below ErrorLevel.RAISE, sqlglot only logs and drops IGNORE NULLS
    assert sqlglot.transpile(sql, read="spark", write="duckdb",
                             unsupported_level=ErrorLevel.IGNORE) == ["SELECT LAST(x) AS l FROM t"]
    assert refusal(sql, "spark", "duckdb") == (
        "LAST(..., true) cannot run on DuckDB: sqlglot drops its IGNORE NULLS")
    # as a window function FeatqlDuckDB keeps it (sqlglot's DuckDB would refuse it)
    window = transpile("SELECT last(x, true) OVER (ORDER BY y) AS l FROM t", "spark", "duckdb",
                       pretty=False)
    assert window == "SELECT LAST(x IGNORE NULLS) OVER (ORDER BY y NULLS FIRST) AS l FROM t"
    values = "(VALUES (1, 1), (NULL, 2)) AS t(x, y)"
    assert duckdb.connect().execute(window.replace("FROM t", f"FROM {values}")).fetchall() == [
        (1,), (1,)]
    # first(x, true) becomes ANY_VALUE, which skips NULLs on DuckDB too
    assert transpile("SELECT first(x, true) AS f FROM t", "spark", "duckdb",
                     pretty=False) == "SELECT ANY_VALUE(x) AS f FROM t"


def test_sqlglot_unsupported_becomes_a_refusal() -> None:
    assert refusal("SELECT * FROM READ_PARQUET('a', 'b')") == (
        "this query cannot run on Spark: READ_PARQUET with multiple arguments is not supported")


def test_date_diff_counts_boundaries_on_spark() -> None:
    assert transpile("SELECT DATE_DIFF('day', a, b) AS d FROM t", "duckdb", "spark",
                     pretty=False) == (
        "SELECT DATEDIFF(DAY, DATE_TRUNC('DAY', a), DATE_TRUNC('DAY', b)) AS d FROM t")
    assert transpile("SELECT DATE_DIFF('week', a, b) AS d FROM t", "duckdb", "spark",
                     pretty=False) == (
        "SELECT DATEDIFF(WEEK, DATE_TRUNC('DAY', a), DATE_TRUNC('DAY', b)) AS d FROM t")


MINI_REFUSED = {
    "views/asof.sql": """\
-- @feature_view(name = asof_view, entity = user, timestamp = event_ts, start = '2024-01-01')
SELECT e.user_id, e.event_ts, p.country
FROM events AS e ASOF JOIN profiles AS p ON e.user_id = p.user_id AND e.event_ts >= p.updated_at
""",
    "views/grouped.sql": """\
-- @feature_view(name = grouped_view, entity = user, timestamp = event_ts, start = '2024-01-01')
SELECT user_id, event_ts, n
FROM (SELECT user_id, MAX(event_ts) AS event_ts, COUNT(*) AS n FROM events GROUP BY user_id) g
""",
    "views/tiles_cte.sql": """\
-- @feature_view(name = cte_view, entity = user, timestamp = event_ts, start = '2024-01-01')
WITH tiles AS (SELECT user_id, event_ts, amount FROM events)
SELECT user_id, event_ts, amount FROM tiles
""",
}


def test_lowering_refusals_point_at_the_view(tmp_path: Path) -> None:
    manifest = manifest_of(compile_project(write_project(tmp_path, {**MINI, **MINI_REFUSED})))
    cases = {
        ("asof_view", "spark"): ("E701", "ASOF JOIN cannot run on Spark: Spark SQL has no as-of "
                                         "join"),
        ("cte_view", "duckdb"): ("E702", "CTE name 'tiles' is reserved in feature view "
                                         "'cte_view': featql's generated SQL uses it"),
    }
    for (view, target), (code, message) in cases.items():
        with pytest.raises(LoweringError) as info:
            lower_view(manifest, view, target)  # type: ignore[arg-type]
        d = info.value.diagnostic
        assert (d.code, d.message) == (code, message)
        loc = manifest.view(view).location  # type: ignore[union-attr]
        assert d.span == Span(loc.path, loc.line, loc.col)
    assert "ASOF JOIN profiles" in lower_view(manifest, "asof_view", "duckdb")
    # through a GROUP BY a source row's created time cannot travel: the compiler does not ask
    # for it (ties then break deterministically), so lowering has nothing to refuse
    assert manifest.view("grouped_view").created is None  # type: ignore[union-attr]
    assert "CAST(NULL AS TIMESTAMP) AS _featql_created" in lower_view(
        manifest, "grouped_view", "duckdb")
    with pytest.raises(KeyError):
        lower_view(manifest, "nope", "duckdb")
    with pytest.raises(ValueError, match="unknown target"):
        lower_view(manifest, "aggs", "postgres")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Spark (slow)
# `spark`: the session's one SparkSession, from tests/conftest.py
def spark_rows(spark: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in spark.sql(sql).collect()]


@pytest.mark.slow
@pytest.mark.parametrize("input_type", ["TIMESTAMP_NTZ", "TIMESTAMP"])
def test_time_floor_spark(spark: Any, input_type: str) -> None:
    values = ", ".join(f"({m})" for m in FLOOR_CASES)
    spark.sql(f"SELECT m, CAST(TIMESTAMP_MICROS(m) AS {input_type}) AS ts FROM VALUES {values} "
              "AS t(m)").createOrReplaceTempView("floor_input")
    for seconds in SLIDES:
        sql = generate(parse(f"SELECT m, TIME_FLOOR(ts, {seconds}) AS f FROM floor_input"),
                       "spark")
        got = dict(spark_rows(spark, f"SELECT m, UNIX_MICROS(CAST(f AS TIMESTAMP)) FROM ({sql})"))
        assert got == {m: floor_oracle(m, seconds) for m in FLOOR_CASES}, seconds
        assert spark_rows(spark, f"SELECT typeof(f) FROM ({sql}) LIMIT 1") == [("timestamp_ntz",)]


@pytest.mark.slow
def test_date_diff_matches_duckdb_on_spark(spark: Any) -> None:
    pairs = [("2024-01-01 23:00:00", "2024-01-02 01:00:00"), ("2024-01-01 23:00:00",
             "2024-01-08 22:00:00"), ("2024-01-08 22:00:00", "2024-01-01 23:00:00"),
             ("2024-01-31 10:00:00", "2024-02-01 09:00:00"), ("2023-12-31 23:59:59",
             "2024-01-01 00:00:00"), ("1969-12-31 23:00:00", "1970-03-01 00:30:00")]
    con = duckdb.connect()
    for unit in ("year", "quarter", "month", "week", "day", "hour", "minute", "second"):
        for a, b in pairs:
            sql = f"SELECT DATE_DIFF('{unit}', TIMESTAMP '{a}', TIMESTAMP '{b}') AS d"
            expected = con.execute(sql).fetchall()[0][0]
            assert spark_rows(spark, transpile(sql, "duckdb", "spark")) == [(expected,)], (
                unit, a, b)


@pytest.mark.slow
def test_refusal_premises_hold_on_spark(spark: Any) -> None:
    """What the refused translations would really do on Spark."""
    assert spark_rows(spark, "SELECT REGEXP_REPLACE('xax', 'x', 'y')") == [("yay",)]
    duck = duckdb.connect()
    assert duck.execute("SELECT REGEXP_REPLACE('xax', 'x', 'y')").fetchall() == [("yax",)]
    assert spark_rows(spark, "SELECT COLLECT_LIST(x) FROM VALUES (1), (NULL) AS t(x)") == [([1],)]
    assert duck.execute("SELECT ARRAY_AGG(x) FROM (VALUES (1), (NULL)) t(x)").fetchall() == [
        ([1, None],)]
    with pytest.raises(Exception, match=r"(?i)syntax|parse"):
        spark.sql("SELECT * FROM VALUES (1, 1) AS a(k, ts) ASOF JOIN VALUES (1, 0) AS b(k, ts) "
                  "ON a.k = b.k AND a.ts >= b.ts").collect()


def comparable(sql: str, view_columns: list[tuple[str, str]], micros: str) -> str:
    """`micros`: the epoch-microseconds expression of a TIMESTAMP column `{}`."""
    cols = ", ".join(micros.format(n) if t == "TIMESTAMP" else n for n, t in view_columns)
    return f"SELECT {cols} FROM (\n{sql})"


def same_rows(left: list[tuple[Any, ...]], right: list[tuple[Any, ...]]) -> bool:
    def key(r: tuple[Any, ...]) -> str:
        return repr(tuple(round(v, 4) if isinstance(v, float) else v for v in r))

    if len(left) != len(right):
        return False
    for a, b in zip(sorted(left, key=key), sorted(right, key=key), strict=True):
        for x, y in zip(a, b, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif x != y:
                return False
    return True


@pytest.mark.slow
def test_every_view_gives_the_same_rows_on_spark_and_duckdb(
        spark: Any, example_project: Path, example_compiled: CompileResult) -> None:
    manifest = manifest_of(example_compiled)
    con = duckdb_session(example_project, manifest)
    for s in manifest.sources:
        spark.read.parquet(str(example_project / s.batch.path)).createOrReplaceTempView(s.name)
    for name in dag_order(manifest):
        view = manifest.view(name)
        assert view is not None
        spark_sql = lower_view(manifest, name, "spark")
        if view.kind == "row":
            spark.sql(spark_sql).createOrReplaceTempView(name)
        columns = [(c.name, c.type) for c in lowered_columns(view)]
        duck = con.execute(comparable(lower_view(manifest, name, "duckdb"), columns,
                                      "EPOCH_US({})")).fetchall()
        # Spark 4.2's UNIX_MICROS takes only a session-zone TIMESTAMP
        theirs = spark_rows(spark, comparable(spark_sql, columns,
                                              "UNIX_MICROS(CAST({} AS TIMESTAMP))"))
        assert duck and same_rows(duck, theirs), name


def test_a_compiled_sqlglot_is_refused_with_a_clear_error(monkeypatch):
    """sqlglotc's compiled classes cannot be subclassed: featql says so before crashing."""
    from sqlglot import tokens

    from featql.cli.console import UserError
    from featql.dialects import compat

    compat.require_pure_sqlglot()  # the test environment has the pure-Python build
    monkeypatch.setattr(tokens, "SQLGLOTC_INSTALLED", True)
    with pytest.raises(UserError, match="pip uninstall sqlglotc"):
        compat.require_pure_sqlglot()
