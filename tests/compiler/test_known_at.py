"""`known_at = <created column>` on @source (PRODUCT §3 "as known at"): the header, the IR, the
fingerprints, and one positioned error per mistake (E308 on the source, E423 on a view that
cannot honour it). Aggregate views over a known_at source are known_at themselves (their tiles
are keyed by when their events were known, `_featql_known`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from featql.core.manifest import to_data

from .conftest import Compile

SRC = ("-- @source(name = p, timestamp = ts, created = arrived, known_at = arrived,\n"
       "--         batch = parquet('d/'))\n"
       "CREATE TABLE p (user_id BIGINT, score DOUBLE, ts TIMESTAMP, arrived TIMESTAMP)\n")
ROW = ("-- @feature_view(name = prof, entity = user, timestamp = ts, start = '2024-01-01')\n"
       "SELECT user_id, ts, score FROM p\n")
KNOWN = {"sources/p.sql": SRC, "views/prof.sql": ROW}


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, str]
    headline: str
    at: str  # the text the caret points at
    hint: str | None = None


def _src(header: str, columns: str = "user_id BIGINT, score DOUBLE, ts TIMESTAMP, "
         "arrived TIMESTAMP") -> dict[str, str]:
    return {"sources/p.sql": f"-- @source(name = p, timestamp = ts, {header}, "
            f"batch = parquet('d/'))\nCREATE TABLE p ({columns})\n"}


CASES = [
    Case("known-at-without-created", _src("known_at = arrived"),
         "sources/p.sql:1:49: error[E308]: known_at of source 'p' needs a created column: a "
         "row is visible once it has been created", "arrived",
         "declare created = arrived as well"),
    Case("known-at-other-column", _src("created = arrived, known_at = ts"),
         "sources/p.sql:1:68: error[E308]: known_at of source 'p' names 'ts', not its created "
         "column 'arrived'", "ts", "write known_at = arrived"),
    Case("known-at-typo", _src("created = arrived, known_at = arived"),
         "sources/p.sql:1:68: error[E308]: known_at of source 'p' names 'arived', not its "
         "created column 'arrived' (it has no column 'arived')", "arived",
         "did you mean 'arrived'?"),
    Case("known-at-not-a-timestamp",
         _src("created = arrived, known_at = arrived",
              "user_id BIGINT, score DOUBLE, ts TIMESTAMP, arrived BIGINT"),
         "sources/p.sql:1:48: error[E306]: created column 'arrived' of source 'p' is BIGINT, "
         "expected TIMESTAMP", "arrived", "declare it TIMESTAMP or cast it in the files"),
    Case("known-at-unquoted-kind", _src("created = arrived, known_at = 'a b'"),
         "sources/p.sql:1:68: error[E105]: expected a name, found the string 'a b'", "'a b'"),
    Case("known-at-aggregate-join",
         {"sources/p.sql": SRC,
          "views/a.sql": "-- @feature_view(name = a, entity = user, timestamp = ts,\n"
          "--   windows = ['1d'], slide = '1d', start = '2024-01-01')\n"
          "SELECT p.user_id, COUNT(*) AS n FROM p JOIN users u ON p.user_id = u.user_id "
          "GROUP BY p.user_id\n"},
         "views/a.sql:3:38: error[E423]: feature view 'a' reads source 'p', which is known_at "
         "(a row is visible once created), but its events do not come one by one from that "
         "one relation, so they cannot carry the created column", "p JOIN",
         "aggregate it in a plain SELECT ... FROM <it> [WHERE ...] GROUP BY <keys>, or drop "
         "known_at from the source"),
    Case("known-at-join",
         {"sources/p.sql": SRC,
          "views/j.sql": "-- @feature_view(name = j, entity = user, timestamp = ts, "
          "start = '2024-01-01')\n"
          "SELECT p.user_id, p.ts, p.score, u.country FROM p JOIN users u "
          "ON p.user_id = u.user_id\n"},
         "views/j.sql:2:49: error[E423]: feature view 'j' reads source 'p', which is known_at "
         "(a row is visible once created), but its rows do not come one by one from that one "
         "relation, so they cannot carry the created column", "p JOIN",
         "read it in a plain SELECT ... FROM <it> [WHERE ...] in a row-level view, or drop "
         "known_at from the source"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_mistake(case: Case, project: Compile, tmp_path: Path) -> None:
    result = project(case.files)
    errors = result.diagnostics.errors
    assert [d.headline() for d in errors] == [case.headline]
    diag = errors[0]
    assert diag.hint == case.hint
    text = (tmp_path / diag.span.path).read_text()
    line = text.split("\n")[diag.span.line - 1]
    assert line[diag.span.col - 1:].startswith(case.at), (line, diag.span.col)
    assert not result.ok


def test_known_at_reaches_the_ir_and_views_reading_it(project: Compile) -> None:
    flags = ("-- @feature_view(name = flags, entity = user, timestamp = ts, "
             "start = '2024-01-01')\n"
             "SELECT user_id, ts, score > 0 AS positive FROM (SELECT * FROM prof) x\n")
    plain = ("-- @feature_view(name = last_txn, entity = user, timestamp = event_ts, "
             "start = '2024-01-01')\nSELECT user_id, event_ts, amount FROM txns\n")
    result = project({**KNOWN, "views/flags.sql": flags, "views/last_txn.sql": plain})
    assert [d.headline() for d in result.diagnostics] == []
    m = result.manifest
    assert m is not None
    src = m.source("p")
    assert src is not None and src.known_at == "arrived" and src.created == "arrived"
    prof, fl, last = m.view("prof"), m.view("flags"), m.view("last_txn")
    assert prof is not None and fl is not None and last is not None
    assert (prof.known_at, prof.created) == (True, "arrived")
    assert (fl.known_at, fl.created) == (True, "_featql_created")  # carried from prof's rows
    assert (last.known_at, last.created) == (False, None)
    data = to_data(m)
    views = {v["name"]: v for v in data["views"]}
    assert views["prof"]["known_at"] is True and "known_at" not in views["last_txn"]
    sources = {s["name"]: s for s in data["sources"]}
    assert sources["p"]["known_at"] == "arrived" and "known_at" not in sources["txns"]


def test_known_at_changes_the_fingerprints_only_where_set(project: Compile,
                                                          tmp_path: Path) -> None:
    plain = ("-- @feature_view(name = last_txn, entity = user, timestamp = event_ts, "
             "start = '2024-01-01')\nSELECT user_id, event_ts, amount FROM txns\n")
    with_known = project({**KNOWN, "views/last_txn.sql": plain}).manifest
    (tmp_path / "sources/p.sql").write_text(SRC.replace(", known_at = arrived", ""))
    without = project({"views/last_txn.sql": plain}).manifest
    assert with_known is not None and without is not None
    a, b = with_known.view("prof"), without.view("prof")
    assert a is not None and b is not None and not b.known_at
    assert a.fingerprint != b.fingerprint
    assert [f.fingerprint for f in a.features] != [f.fingerprint for f in b.features]
    assert with_known.view("last_txn") == without.view("last_txn")
    assert json.dumps(to_data(without.view("last_txn"))) == json.dumps(
        to_data(with_known.view("last_txn")))


AGG = ("-- @feature_view(name = a, entity = user, timestamp = ts,\n"
       "--   windows = ['1h', '1d'], slide = '1h', start = '2024-01-01')\n"
       "SELECT user_id, COUNT(*) AS n, SUM(score) AS s FROM (SELECT * FROM p WHERE score > 0) x "
       "GROUP BY user_id\n")


def test_an_aggregate_view_over_a_known_at_source_is_known_at(project: Compile) -> None:
    """No E423 any more: the view is known_at, its events carry the source's created column
    through the row-preserving subquery, and its lowered tiles have `_featql_known`."""
    from featql.dialects.contract import lowered_columns
    from featql.dialects.lower import lower_view

    plain = ("-- @feature_view(name = b, entity = user, timestamp = event_ts, windows = ['1d'],"
             "\n--   slide = '1h', start = '2024-01-01')\n"
             "SELECT user_id, COUNT(*) AS n FROM txns GROUP BY user_id\n")
    result = project({**KNOWN, "views/a.sql": AGG, "views/b.sql": plain})
    assert [d.headline() for d in result.diagnostics] == []
    m = result.manifest
    assert m is not None
    a, b = m.view("a"), m.view("b")
    assert a is not None and b is not None
    assert (a.kind, a.known_at, a.created) == ("aggregate", True, "arrived")
    assert (b.known_at, b.created) == (False, None)
    assert [c.name for c in lowered_columns(a)][:3] == ["user_id", "_tile_start", "_featql_known"]
    assert "_featql_known" not in [c.name for c in lowered_columns(b)]
    for target in ("duckdb", "spark"):
        sql = lower_view(m, "a", target)
        assert "AS _featql_created" in sql and "AS _featql_known" in sql, sql
        assert "_featql_known" not in lower_view(m, "b", target)


def test_an_aggregate_over_a_known_at_view_is_known_at(project: Compile) -> None:
    up = ("-- @feature_view(name = c, entity = user, timestamp = ts, windows = ['1d'],\n"
          "--   slide = '1h', start = '2024-01-01')\n"
          "SELECT user_id, MAX(score) AS top FROM prof GROUP BY user_id\n")
    result = project({**KNOWN, "views/c.sql": up})
    assert [d.headline() for d in result.diagnostics] == []
    assert result.manifest is not None
    c = result.manifest.view("c")
    assert c is not None and (c.known_at, c.created) == (True, "_featql_created")


def test_a_stream_aggregate_over_a_known_at_source_is_refused_where_it_reads_it(
        project: Compile, tmp_path: Path) -> None:
    src = SRC.replace("batch = parquet('d/')",
                      "batch = parquet('d/'),\n--         stream = files('in/', format = json)")
    view = ("-- @feature_view(name = s, entity = user, timestamp = ts, windows = ['1h'],\n"
            "--   slide = '1h', start = '2024-01-01')\n"
            "SELECT user_id, COUNT(*) AS n FROM p GROUP BY user_id\n")
    result = project({"sources/p.sql": src, "views/s.sql": view, "in/.keep": ""})
    errors = result.diagnostics.errors
    assert [d.headline() for d in errors] == [
        "views/s.sql:3:36: error[E423]: feature view 's' aggregates the known_at events of 'p', "
        "which come from a stream source, but a stream view cannot count events as of when "
        "they were created yet (only batch aggregate views can)"]
    assert errors[0].hint == "drop known_at from the source, or aggregate a batch source"
    assert not result.ok
