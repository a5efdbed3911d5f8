"""End to end against the oracle: random source files (Parquet, JSON lines, CSV) of a small
project, compiled once, lowered by the dialects, joined by each engine; compared value for value
with the oracle reading the raw rows (tiles and their merge included)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sampling import samples

from featql.jobs.training import training_set
from runtime import oracle
from runtime.conftest import compiled

HERE = Path(__file__).parent / "harness_project"
BASE = datetime(2024, 1, 1)


def _grid(minutes: int, n: int) -> st.SearchStrategy[datetime]:
    return st.integers(0, n).map(lambda i: BASE + timedelta(minutes=minutes * i))


_user = st.sampled_from([1, 2, 3])
_merchant = st.sampled_from(["a", "b", "é"])
_t = _grid(30, 12)


@st.composite
def project_case(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    events = draw(st.lists(st.fixed_dictionaries({
        "user_id": st.one_of(_user, _user, _user, st.none()),
        "merchant": st.one_of(_merchant, _merchant, _merchant, st.none()),
        "x": st.one_of(st.integers(-5, 5), st.none()),
        "s": st.one_of(st.sampled_from(["k", "l", "M"]), st.none()),
        "ts": st.one_of(_grid(20, 18), _grid(20, 18), _grid(20, 18), st.none()),
        "created_at": st.one_of(_t, st.none())}), max_size=14))
    if events and draw(st.integers(0, 3)):  # twins on (user_id, ts): random lists rarely tie
        for row in draw(st.lists(st.sampled_from(events), min_size=1, max_size=3)):
            events.append({**row, "x": draw(st.one_of(st.integers(-5, 5), st.none())),
                           "created_at": draw(st.one_of(_t, st.none()))})
    profiles = draw(st.lists(st.fixed_dictionaries({
        "user_id": _user, "merchant": _merchant, "updated_at": _t,
        "score": st.one_of(st.sampled_from([0.5, -2.0, 3.25]), st.none())}), max_size=8))
    tags = draw(st.lists(st.fixed_dictionaries({
        "user_id": _user, "tag": st.sampled_from(["p", "q"]), "tagged_at": _t}), max_size=6))
    spine = draw(st.lists(st.fixed_dictionaries({
        "user_id": st.one_of(_user, _user, _user, st.none()),
        "merchant": st.one_of(_merchant, _merchant, _merchant, st.none()),
        "t": _grid(15, 30)}), min_size=1, max_size=10))
    return {"events": events, "profiles": profiles, "tags": tags, "spine": spine}


SCHEMAS = {
    "events": pa.schema([("user_id", pa.int64()), ("merchant", pa.string()), ("x", pa.int64()),
                         ("s", pa.string()), ("ts", pa.timestamp("us")),
                         ("created_at", pa.timestamp("us"))]),
    "profiles": pa.schema([("user_id", pa.int64()), ("merchant", pa.string()),
                           ("score", pa.float64()), ("updated_at", pa.timestamp("us"))]),
    "tags": pa.schema([("user_id", pa.int64()), ("tag", pa.string()),
                       ("tagged_at", pa.timestamp("us"))]),
    "spine": pa.schema([("user_id", pa.int64()), ("merchant", pa.string()),
                        ("t", pa.timestamp("us"))]),
}


def write_data(root: Path, case: dict[str, list[dict[str, Any]]]) -> None:
    for name in ("events", "profiles", "tags"):
        folder = root / "data" / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        rows = case[name]
        if not rows:
            continue  # an empty source: no files at all
        if name == "events":
            pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS[name]), folder / "p.parquet")
        elif name == "profiles":
            with (folder / "p.json").open("w") as f:
                for r in rows:
                    f.write(json.dumps({**r, "updated_at": r["updated_at"].isoformat(" ")}) + "\n")
        else:
            pcsv.write_csv(pa.Table.from_pylist(rows, schema=SCHEMAS[name]), folder / "p.csv")


def expected(case: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    events = [{**e, "_featql_created": e["created_at"]} for e in case["events"]]
    views: list[oracle.RowView | oracle.AggView] = [
        oracle.RowView("last_event", ["user_id"], "ts", ["x", "s"], 7200, events),
        oracle.AggView("merchant_aggs", ["merchant"], 3600, [3600, 10800], [
            oracle.AggSpec("n", "count", None), oracle.AggSpec("nx", "count", "x"),
            oracle.AggSpec("sx", "sum", "x"), oracle.AggSpec("ax", "avg", "x"),
            oracle.AggSpec("mn", "min", "x"), oracle.AggSpec("ms", "max", "s")],
            case["events"], {3600: "1h", 10800: "3h"}),
        oracle.RowView("pair_profile", ["user_id", "merchant"], "updated_at", ["score"], 10800,
                       case["profiles"]),
        oracle.RowView("user_tag", ["user_id"], "tagged_at", ["tag"], None, case["tags"]),
    ]
    return oracle.training_set(case["spine"], "t", views)


def assert_matches(got: pa.Table, want: list[dict[str, Any]]) -> None:
    rows = got.to_pylist()
    assert len(rows) == len(want)
    for i, (g, w) in enumerate(zip(rows, want, strict=True)):
        assert list(g) == ["user_id", "merchant", "t", *(k for k in w if "__" in k)]
        for k, v in w.items():
            if isinstance(v, float) and g[k] is not None:
                assert abs(g[k] - v) <= 1e-9 * max(1.0, abs(v)), (i, k, g[k], v)
            else:
                assert g[k] == v and type(g[k]) is type(v), (i, k, g[k], v)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("harness") / "project"
    shutil.copytree(HERE, root)
    return root, compiled(root)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=project_case())
def test_duckdb_end_to_end_matches_oracle(harness: tuple[Path, Any], case: dict[str, Any]
                                          ) -> None:
    root, c = harness
    write_data(root, case)
    spine = pa.Table.from_pylist(case["spine"], schema=SCHEMAS["spine"])
    got = training_set(root, c.manifest, c.config, "svc", spine, engine="duckdb",
                       use_store=False)
    assert_matches(got, expected(case))


def _merge(batch: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in ("events", "profiles", "tags", "spine")}
    for i, case in enumerate(batch):
        for name, rows in case.items():
            for r in rows:
                r = dict(r)
                if r.get("user_id") is not None:
                    r["user_id"] += 100 * i
                if r.get("merchant") is not None:
                    r["merchant"] = f"{i}:{r['merchant']}"
                out[name].append(r)
    return out


@pytest.mark.slow
def test_spark_end_to_end_matches_oracle(harness: tuple[Path, Any], spark_engine: Any) -> None:
    """30 random projects' data in one Spark job (keys made disjoint per case), drawn from a
    fixed seed (`tests.sampling`: not hypothesis's simplest example, 30 empty projects)."""
    root, c = harness
    case = _merge(samples(project_case(), 30, 1))
    assert case["spine"], "the drawn batch has no spine rows"
    write_data(root, case)
    spine = pa.Table.from_pylist(case["spine"], schema=SCHEMAS["spine"])
    got = training_set(root, c.manifest, c.config, "svc", spine, engine=spark_engine,
                       use_store=False)
    assert_matches(got, expected(case))
