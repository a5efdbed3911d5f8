"""Issue 14's exact aggregate functions end to end, against a brute-force oracle.

A small project (one source, one aggregate view with every new function over BIGINT, DOUBLE and
STRING inputs, windows 1h and 3h on a 1h slide) gets random events: NULL inputs, ties on the
event time, negative values, large doubles (a mean of 1e6 with a small spread), single events.
The oracle below computes each feature from the raw events of `[floor(t, S) - W, floor(t, S))`,
written from the definitions in docs/language.md (nothing shared with featql). It is compared
with:

- DuckDB training sets (the dialects' tile stage and point-in-time merge);
- Spark training sets (the same, on Spark; slow);
- the online read: DuckDB's tiles packed as FQT3 cells by the online load's `tile_cells` (the
  values merged at load time for the slide after the data, read at that slide) and by
  `encode_tiles` (read at every spine time), merged by `TileMerger`.

Arrays and integers must be equal exactly; STDDEV/VAR within a relative 1e-9 (+1e-9 absolute):
the engines build each tile's M2 with their own VAR_POP, which rounds differently from a
two-pass sum over the raw events (docs/language.md).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.oracle import floor_time
from runtime.oracle_project import OracleProject, disjoint_batch, write_events, write_files

BASE = datetime(2024, 1, 1)
SLIDE = 3600
WINDOWS = {3600: "1h", 3 * 3600: "3h"}

PROJECT = {
    "featql.toml": '[project]\nname = "exact"\n',
    "entities/user.sql": "-- @entity(name = user, keys = [user_id BIGINT])\n",
    "sources/events.sql": (
        "-- @source(name = events, timestamp = ts, batch = parquet('data/events/'))\n"
        "CREATE TABLE events (user_id BIGINT, x BIGINT, d DOUBLE, s STRING, ts TIMESTAMP);\n"),
    "views/ua.sql": (
        "-- @feature_view(name = ua, entity = user, timestamp = ts,\n"
        "--               windows = ['1h', '3h'], slide = '1h', start = '2024-01-01')\n"
        "SELECT user_id, STDDEV_SAMP(d) AS sd_s, STDDEV_POP(x) AS sd_p, VAR_SAMP(x) AS v_s,\n"
        "       VAR_POP(d) AS v_p, STDDEV(x) AS sd_alias, VARIANCE(d) AS var_alias,\n"
        "       LAST_N(x, 3) AS last_x, LAST_DISTINCT_N(s, 2) AS lastd_s,\n"
        "       FIRST_N(d, 2) AS first_d,\n"
        "       FIRST_DISTINCT_N(x, 3) AS firstd_x, TOP_K(s, 2) AS top_s, TOP_K(x, 3) AS top_x,\n"
        "       LAST_N(s, 1) AS last_s\n"
        "FROM events GROUP BY user_id\n"),
    "services/svc.sql": "-- @feature_service(name = svc, features = [ua.*])\n",
}

# (feature alias, function, input column, argument)
AGGS = [("sd_s", "stddev_samp", "d", None), ("sd_p", "stddev_pop", "x", None),
        ("v_s", "var_samp", "x", None), ("v_p", "var_pop", "d", None),
        ("sd_alias", "stddev_samp", "x", None), ("var_alias", "var_samp", "d", None),
        ("last_x", "last_n", "x", 3), ("lastd_s", "last_distinct_n", "s", 2),
        ("first_d", "first_n", "d", 2), ("firstd_x", "first_distinct_n", "x", 3),
        ("top_s", "top_k", "s", 2), ("top_x", "top_k", "x", 3), ("last_s", "last_n", "s", 1)]
SPREAD = {"stddev_samp", "stddev_pop", "var_samp", "var_pop"}

SCHEMA = pa.schema([("user_id", pa.int64()), ("x", pa.int64()), ("d", pa.float64()),
                    ("s", pa.string()), ("ts", pa.timestamp("us"))])
SPINE = pa.schema([("user_id", pa.int64()), ("t", pa.timestamp("us"))])


# -- the oracle ------------------------------------------------------------------------------------
def oracle_value(function: str, arg: int | None, events: list[tuple[datetime, Any]]) -> Any:
    """One feature from the raw (time, input) events of its window, from the definition."""
    present = [(t, v) for t, v in events if v is not None]
    if not present:
        return None
    values = [v for _, v in present]
    if function in SPREAD:
        n = len(values)
        if function.endswith("samp") and n < 2:
            return None
        mean = math.fsum(values) / n
        var = math.fsum((v - mean) ** 2 for v in values) / (n - 1 if function.endswith("samp")
                                                             else n)
        return math.sqrt(var) if function.startswith("stddev") else var
    assert arg is not None
    if function == "top_k":
        counts: dict[Any, int] = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        best = sorted(counts, key=lambda v: (-counts[v], v))
        return best[:arg]
    newest = function.startswith("last")
    ranked = sorted(present, key=lambda e: (e[0], e[1]), reverse=newest)
    out: list[Any] = []
    for _, v in ranked:
        if "distinct" in function and v in out:
            continue
        out.append(v)
    return out[:arg]


def expected(events: list[dict[str, Any]], spine: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in spine:
        result: dict[str, Any] = dict(row)
        hi = floor_time(row["t"], SLIDE)
        for alias, function, col, arg in AGGS:
            for w, suffix in WINDOWS.items():
                lo = hi - timedelta(seconds=w)
                window = [(e["ts"], e[col]) for e in events
                          if e["user_id"] == row["user_id"] and lo <= e["ts"] < hi]
                result[f"ua__{alias}_{suffix}"] = oracle_value(function, arg, window)
        out.append(result)
    return out


def assert_rows(got: list[dict[str, Any]], want: list[dict[str, Any]], what: str) -> None:
    assert len(got) == len(want), what
    spread = {f"ua__{a}_{s}" for a, f, _, _ in AGGS if f in SPREAD for s in WINDOWS.values()}
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        for k, v in w.items():
            if k in spread and v is not None and g[k] is not None:
                assert math.isclose(g[k], v, rel_tol=1e-9, abs_tol=1e-9), (what, i, k, g[k], v)
            else:
                assert g[k] == v and type(g[k]) is type(v), (what, i, k, g[k], v)


# -- the cases -------------------------------------------------------------------------------------
def _at(minutes: int, n: int) -> st.SearchStrategy[datetime]:
    return st.integers(0, n).map(lambda i: BASE + timedelta(minutes=minutes * i))


_doubles = st.one_of(st.none(), st.sampled_from([-2.5, 0.25, 3.75, -1e6, 1e6 + 0.5, 1e6 + 0.25]),
                     st.integers(-64, 64).map(lambda q: q / 4))


@st.composite
def case(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events = draw(st.lists(st.fixed_dictionaries({
        "user_id": st.sampled_from([1, 2, 3]),
        "x": st.one_of(st.none(), st.integers(-5, 5)),
        "d": _doubles,
        "s": st.one_of(st.none(), st.sampled_from(["a", "b", "B", "é"])),
        "ts": st.one_of(_at(20, 18), _at(60, 6))}), max_size=16))  # 6 h, many on tile edges
    if events and draw(st.booleans()):  # twins on (user_id, ts) with other values: ties
        for e in draw(st.lists(st.sampled_from(events), min_size=1, max_size=4)):
            events.append({**e, "x": draw(st.one_of(st.none(), st.integers(-5, 5))),
                           "s": draw(st.sampled_from(["a", "b", None]))})
    spine = draw(st.lists(st.fixed_dictionaries({
        "user_id": st.sampled_from([1, 2, 3, 4]),
        "t": st.one_of(_at(15, 40), _at(60, 10),
                       _at(60, 10).map(lambda t: t - timedelta(microseconds=1)))}),
        min_size=1, max_size=12))
    return events, spine


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> OracleProject:
    return OracleProject.create(tmp_path_factory.mktemp("exact") / "project", PROJECT, SCHEMA,
                                SPINE)


# -- the tests -------------------------------------------------------------------------------------
def test_the_manifest_types_the_new_features(project: OracleProject) -> None:
    view = project.manifest.view("ua")
    types = {f.name: f.type for f in view.features}
    assert types["sd_s_1h"] == types["v_p_3h"] == "DOUBLE"
    assert types["last_x_1h"] == "ARRAY<BIGINT>" and types["first_d_3h"] == "ARRAY<DOUBLE>"
    assert types["lastd_s_1h"] == types["top_s_3h"] == "ARRAY<STRING>"
    args = {a.name: (a.function, a.args) for a in view.aggregations}
    assert args["last_x"] == ("last_n", (3,)) and args["top_s"] == ("top_k", (2,))
    assert args["sd_alias"] == ("stddev_samp", ()) and args["var_alias"] == ("var_samp", ())


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=case())
def test_duckdb_training_sets_and_online_reads_match_the_oracle(
        project: OracleProject, data: tuple[list[dict[str, Any]], list[dict[str, Any]]]
) -> None:
    """The online read: DuckDB's tiles of the events (`training` already wrote them)."""
    events, spine = data
    want = expected(events, spine)
    assert_rows(project.training(events, spine, "duckdb"), want, "DuckDB training set")
    assert_rows(project.online("ua", project.duck_tiles("ua"), spine), want, "online read")


@pytest.mark.slow
def test_spark_training_sets_match_the_oracle(
        project: OracleProject, spark_engine: Any) -> None:
    """25 random cases in one Spark job (users made disjoint per case)."""
    events, spine = disjoint_batch(case, 25, 1)
    want = expected(events, spine)
    assert_rows(project.training(events, spine, spark_engine), want, "Spark training set")
    assert_rows(project.training(events, spine, "duckdb"), want, "DuckDB training set")


def test_apply_materialize_and_online_lookups_match_the_oracle(tmp_path: Path) -> None:
    """The whole path on one random data set: `featql apply` (backfill into Parquet tiles with
    list partials), a training set read from the offline store, `materialize --online`
    (SQLite cells) and `Project.online` lookups (the HTTP route's code) at the end of data."""
    import random
    import subprocess
    import sys

    import featql

    root = tmp_path / "project"
    write_files(root, PROJECT)
    r = random.Random(14)
    events = [{"user_id": r.choice([1, 2, 3]), "x": r.choice([None, r.randint(-5, 5)]),
               "d": r.choice([None, r.random() * 10 - 5, 1e6 + r.random()]),
               "s": r.choice([None, "a", "b", "é"]),
               "ts": BASE + timedelta(minutes=20 * r.randint(0, 18))} for _ in range(60)]
    write_events(root, SCHEMA, events)
    featql_cli = Path(sys.executable).parent / "featql"
    for cmd in (["apply", "--yes"], ["materialize", "--online"]):
        done = subprocess.run([str(featql_cli), *cmd], cwd=root, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    project = featql.Project(root)
    spine = [{"user_id": u, "t": BASE + timedelta(hours=h)} for u in (1, 2, 3, 4)
             for h in (1, 3, 5, 6, 7)]
    stored = project.training_set("svc", pa.Table.from_pylist(spine, SPINE)).to_pylist()
    assert_rows(stored, expected(events, spine), "training set from the offline store")
    end = BASE + timedelta(hours=7)  # the slide after the data: what the online store holds
    for user in (1, 2, 3, 4):
        [row] = project.online("svc", [{"user_id": user}], at=end.isoformat())
        got = {k.replace(".", "__"): v for k, v in row.items() if k.startswith("ua.")}
        assert_rows([{**got, "user_id": user, "t": end}],
                    expected(events, [{"user_id": user, "t": end}]), f"online, user {user}")
