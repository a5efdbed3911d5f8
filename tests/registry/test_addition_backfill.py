"""Plan precision (issue 15 item 7): a feature added to an aggregate view computes only what is
new, a TTL change recomputes nothing, a row-level view says why it is recomputed, a breaking
change backfills everything. Real DuckDB, real Parquet; the offline data written by reuse is
compared with a from-scratch materialization and training sets with the brute-force oracle."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from runtime.oracle import AggSpec, AggView, RowView
from runtime.oracle import training_set as oracle_training_set

from featql.core.config import ProjectConfig
from featql.engines.engine import Engine, open_engine
from featql.jobs.materialize import MaterializeReport, ViewRun, materialize
from featql.jobs.training import TrainingReport, training_set
from featql.offline.store import OfflineStore
from featql.registry.reuse import ROW_VIEW_REASON

from .helpers import Proj, write_txns

ADD_MIN = ("SUM(amount) AS amount_sum",
           "SUM(amount) AS amount_sum,\n       MIN(amount) AS amount_min")
DAY, WEEK = 86400, 7 * 86400


class Recording:
    """The engine materialize runs, with every query and registered view it was given."""

    def __init__(self) -> None:
        self.engine: Engine = open_engine("duckdb", ProjectConfig(), deterministic=True)
        self.queries: list[str] = []
        self.views: dict[str, str] = {}
        query, register = self.engine.query, self.engine.register_sql

        def on_query(sql: str) -> pa.Table:
            self.queries.append(sql)
            return query(sql)

        def on_register(name: str, sql: str) -> None:
            self.views[name] = sql
            register(name, sql)

        self.engine.query = on_query  # type: ignore[method-assign]
        self.engine.register_sql = on_register  # type: ignore[method-assign]


def run(proj: Proj, recording: Recording | None = None) -> dict[str, ViewRun]:
    engine = recording.engine if recording else None
    try:
        report: MaterializeReport = materialize(proj.root, proj.manifest(), "dev", engine=engine)
    finally:
        if recording:
            recording.engine.close()
    return {v.view: v for v in report.views}


@pytest.fixture
def stored(applied: Proj) -> Proj:
    """Apply #1 with 10 days of txns, materialized offline."""
    write_txns(applied.root, days=10)
    runs = run(applied)
    assert runs["user_aggs"].written == runs["user_last"].written == 10
    return applied


def storage(proj: Proj, view: str) -> str:
    v = proj.manifest().view(view)
    assert v is not None
    return v.stored_as


def backfill_lines(text: str, view: str) -> list[str]:
    """The detail lines under the view's change in a plan's text."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if f" feature view {view} (" in line)
    out = []
    for line in lines[at + 1:]:
        if not line.startswith("      "):
            break
        out.append(line.strip())
    return out


# -- the plan --------------------------------------------------------------------------------
def test_added_aggregation_plans_only_the_new_partials(stored: Proj) -> None:
    old = storage(stored, "user_aggs")
    stored.edit("views/user_aggs.sql", *ADD_MIN)
    new = storage(stored, "user_aggs")
    assert new != old
    assert backfill_lines(stored.plan_text(), "user_aggs") == [
        "query changed; existing features keep their meaning",
        "features added: amount_min_1d, amount_min_7d",
        "backfill: 10 × 1d intervals, 2024-01-01 00:00 → 2024-01-11 00:00 (end of data), "
        "30 source rows to scan (txns)",
        "reuse: 10 of 10 intervals compute only 1 aggregation, amount_min (amount_min_1d, "
        f"amount_min_7d); 2 aggregations (txn_count, amount_sum: 4 features) reused from {old}",
    ]
    plan = stored.plan()
    b = plan.changes[0].backfill
    assert b is not None and b.fingerprint == new and b.reuse is not None
    assert (b.reuse.base, b.reuse.kept, b.reuse.computed, b.reused) == (
        old, ("txn_count", "amount_sum"), ("amount_min",), 10)
    from featql.registry.render import plan_json

    assert plan_json(plan)["changes"][0]["backfill"]["reuse"] == {
        "base": old, "kept": ["txn_count", "amount_sum"], "computed": ["amount_min"],
        "intervals": 10}


def test_added_aggregation_before_anything_is_stored_computes_everything(applied: Proj) -> None:
    write_txns(applied.root, days=10)
    old = storage(applied, "user_aggs")
    applied.edit("views/user_aggs.sql", *ADD_MIN)
    lines = backfill_lines(applied.plan_text(), "user_aggs")
    assert lines[-1] == (f"reuse: none, no interval of the 10 is stored under {old} (the old "
                         "definition), so every column is computed")


def test_added_row_column_is_recomputed_and_the_plan_says_why(stored: Proj) -> None:
    stored.edit("views/user_last.sql", "t.channel AS last_channel",
                "t.channel AS last_channel, t.amount * 2 AS last_double")
    lines = backfill_lines(stored.plan_text(), "user_last")
    assert lines == [
        "query changed; existing features keep their meaning",
        "features added: last_double",
        "backfill: 10 × 1d intervals, 2024-01-01 00:00 → 2024-01-11 00:00 (end of data), "
        "30 source rows to scan (txns)",
        f"no reuse: {ROW_VIEW_REASON}",
    ]
    stored.apply()
    assert run(stored)["user_last"].written == 10  # recomputed whole, as the plan says


def test_ttl_change_needs_no_backfill(stored: Proj) -> None:
    kept = storage(stored, "user_last")
    fingerprint = stored.manifest().view("user_last").fingerprint  # type: ignore[union-attr]
    stored.edit("views/user_last.sql", "ttl = '30d'", "ttl = '1d'")
    assert storage(stored, "user_last") == kept  # the stored rows' identity is unchanged
    assert stored.manifest().view("user_last").fingerprint != fingerprint  # type: ignore[union-attr]
    text = stored.plan_text()
    assert backfill_lines(text, "user_last") == [
        "ttl: 30d → 1d",
        "all 2 features change meaning",
        "downstream: service scoring (1 of 5 features)",
        "backfill: none, ttl 30d → 1d: applies at read time, no recompute (the 10 × 1d "
        f"intervals stored under {kept} are kept)",
    ]
    assert "-/+ recreate feature view user_last (breaking)" in text
    apply_id = stored.apply()
    reg = stored.registry()
    try:
        assert [b for b in reg.backfills("dev") if b.apply_id == apply_id] == []
    finally:
        reg.close()
    runs = run(stored)
    assert (runs["user_last"].written, runs["user_last"].note) == (0, "up to date")
    # the kept rows answer with the new TTL (user 2's last row is 34 hours old by then)
    spine = [{"user_id": u, "ts": datetime(2024, 1, 10, 20)} for u in range(4)]
    table, report = training(stored, spine)
    assert report.reads["user_last"] == "store"
    expected = [r["user_last__last_amount"] for r in oracle(stored, spine, ttl=DAY)]
    assert table.column("user_last__last_amount").to_pylist() == expected
    assert expected[2] is None and None not in expected[:2] + expected[3:]


def test_window_added_keeps_the_tiles(stored: Proj) -> None:
    kept = storage(stored, "user_aggs")
    stored.edit("views/user_aggs.sql", "windows = ['1d', '7d']", "windows = ['1d', '7d', '30d']")
    lines = backfill_lines(stored.plan_text(), "user_aggs")
    assert lines[-1] == ("backfill: none, windows [1d, 7d] → [1d, 7d, 30d]: applies at read "
                         f"time, no recompute (the 10 × 1d intervals stored under {kept} are "
                         "kept)")


def test_breaking_change_backfills_everything(stored: Proj) -> None:
    stored.edit("views/user_aggs.sql", "WHERE amount > 0", "WHERE amount > 1")
    text = stored.plan_text()
    assert "-/+ recreate feature view user_aggs (breaking)" in text
    lines = backfill_lines(text, "user_aggs")
    assert lines[-1] == ("backfill: 10 × 1d intervals, 2024-01-01 00:00 → 2024-01-11 00:00 "
                         "(end of data), 30 source rows to scan (txns)")
    assert not any(line.startswith("reuse:") for line in lines)
    stored.apply()
    rec = Recording()
    runs = run(stored, rec)
    assert (runs["user_aggs"].written, runs["user_aggs"].reused) == (10, 0)
    assert not any(name.startswith("_featql_new_") for name in rec.views)


# -- what materialize does ---------------------------------------------------------------------
def test_added_aggregation_computes_only_the_new_partials(stored: Proj, tmp_path: Path) -> None:
    old = storage(stored, "user_aggs")
    stored.edit("views/user_aggs.sql", *ADD_MIN)
    stored.apply()
    rec = Recording()
    runs = run(stored, rec)
    r = runs["user_aggs"]
    assert (r.written, r.reused) == (10, 10)
    assert r.note == f"10 interval(s) computed amount_min only; txn_count, amount_sum reused " \
                     f"from {old}"
    # the engine was asked for the new aggregation's partials alone
    new_only = rec.views["_featql_new_user_aggs"]
    assert "MIN(" in new_only and "SUM(" not in new_only and "COUNT(" not in new_only
    interval_queries = [q for q in rec.queries if "_tile_start" in q and ">=" in q]
    assert interval_queries and all("_featql_new_user_aggs" in q for q in interval_queries)

    # the stored data equals a from-scratch materialization of the new definition
    scratch = Proj(tmp_path / "scratch")
    scratch.write("views/user_aggs.sql", stored.read("views/user_aggs.sql"))
    shutil.copytree(stored.root / "data" / "txns", scratch.root / "data" / "txns")
    scratch.apply()
    assert run(scratch)["user_aggs"].reused == 0
    new = storage(stored, "user_aggs")
    assert storage(scratch, "user_aggs") == new
    mine, theirs = data_files(stored, new), data_files(scratch, new)
    assert mine.keys() == theirs.keys() and len(mine) == 10
    for name in mine:
        assert pq.read_table(mine[name]).equals(pq.read_table(theirs[name])), name
        assert mine[name].read_bytes() == theirs[name].read_bytes(), name

    # training sets read the reused data and equal the oracle
    spine = [{"user_id": u, "ts": datetime(2024, 1, d, h)}
             for u in range(4) for d in (2, 5, 9, 10) for h in (0, 13)]
    table, report = training(stored, spine)
    assert report.reads["user_aggs"] == "store"
    expected = oracle(stored, spine, ttl=30 * DAY, with_min=True)
    for col in ("user_aggs__txn_count_1d", "user_aggs__amount_sum_7d",
                "user_aggs__amount_min_1d", "user_aggs__amount_min_7d"):
        assert table.column(col).to_pylist() == [e[col] for e in expected], col


def test_a_second_run_changes_nothing(stored: Proj) -> None:
    stored.edit("views/user_aggs.sql", *ADD_MIN)
    stored.apply()
    assert run(stored)["user_aggs"].reused == 10
    again = run(stored)["user_aggs"]
    assert (again.written, again.note) == (0, "up to date")
    assert stored.plan().has_changes is False


# -- helpers ---------------------------------------------------------------------------------
def data_files(proj: Proj, fingerprint: str) -> dict[str, Path]:
    store = OfflineStore(proj.root, None, "dev")
    vdir = Path(store.view_dir("user_aggs", fingerprint))
    return {str(p.relative_to(vdir)): p for p in sorted(vdir.rglob("*.parquet"))}


def training(proj: Proj, spine: list[dict[str, Any]]) -> tuple[pa.Table, TrainingReport]:
    report = TrainingReport()
    table = training_set(proj.root, proj.manifest(), ProjectConfig(), "scoring",
                         pa.Table.from_pylist(spine, pa.schema([("user_id", pa.int64()),
                                                                ("ts", pa.timestamp("us"))])),
                         workspace="dev", report=report)
    return table, report


def oracle(proj: Proj, spine: list[dict[str, Any]], ttl: int,
           with_min: bool = False) -> list[dict[str, Any]]:
    rows = pq.read_table(proj.root / "data" / "txns").to_pylist()
    aggs = [AggSpec("txn_count", "count", None), AggSpec("amount_sum", "sum", "amount")]
    if with_min:
        aggs.append(AggSpec("amount_min", "min", "amount"))
    events = [{"user_id": r["user_id"], "ts": r["event_ts"], "amount": r["amount"]}
              for r in rows if r["amount"] > 0]
    last = [{"user_id": r["user_id"], "event_ts": r["event_ts"], "_featql_created": None,
             "last_amount": r["amount"], "last_channel": r["channel"]} for r in rows]
    return oracle_training_set(spine, "ts", [
        AggView("user_aggs", ["user_id"], DAY, [DAY, WEEK], aggs, events,
                {DAY: "1d", WEEK: "7d"}),
        RowView("user_last", ["user_id"], "event_ts", ["last_amount", "last_channel"], ttl,
                last)])



def test_apply_and_the_materialize_command_do_what_the_plan_says(
        applied: Proj, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import io

    import featql.jobs.materialize as job
    from featql.cli.main import main
    from featql.registry.materializations import MaterializationState

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    write_txns(applied.root, days=10)
    p = str(applied.root)
    assert main(["materialize", "--project", p]) == 0  # apply #1's data
    reused: list[int] = []
    original = job.reused_tiles

    def counting(*args: Any) -> pa.Table | None:
        table = original(*args)
        reused.append(len(args[1]) if table is not None else 0)
        return table

    monkeypatch.setattr(job, "reused_tiles", counting)
    old = storage(applied, "user_aggs")
    applied.edit("views/user_aggs.sql", *ADD_MIN)
    capsys.readouterr()
    assert main(["apply", "--project", p, "--yes"]) == 0  # runs the backfill
    out = capsys.readouterr().out
    assert f"reused from {old}" in out and "Backfilled: user_aggs." in out
    assert sum(reused) == 10
    second = storage(applied, "user_aggs")
    assert len(MaterializationState(applied.root).done("dev", "user_aggs", second)) == 10

    # the materialize command says what it reused
    applied.edit("views/user_aggs.sql", "MIN(amount) AS amount_min",
                 "MIN(amount) AS amount_min, MAX(amount) AS amount_max")
    applied.apply()  # recorded only: the command computes it
    capsys.readouterr()
    assert main(["materialize", "--project", p]) == 0
    out = capsys.readouterr().out
    assert ("↳ user_aggs: 10 interval(s) computed amount_max only; txn_count, amount_sum, "
            f"amount_min reused from {second}") in out


def test_an_apply_by_an_older_featql_plans_the_move_to_storage_fingerprints(proj: Proj) -> None:
    from dataclasses import replace

    from featql.registry import apply_now
    from featql.registry.planner import MOVED

    write_txns(proj.root, days=10)
    current = proj.manifest()
    legacy = replace(current, views=tuple(replace(v, storage_fingerprint="", stored=())
                                          for v in current.views))
    apply_now(proj.root, legacy)  # what an older featql recorded: data keyed by fingerprint
    assert backfill_lines(proj.plan_text(), "user_aggs") == [
        MOVED,
        "backfill: 10 × 1d intervals, 2024-01-01 00:00 → 2024-01-11 00:00 (end of data), "
        "30 source rows to scan (txns)",
    ]
    assert [c.name for c in proj.plan().changes] == ["user_aggs", "user_last"]
    proj.apply()
    assert proj.plan().has_changes is False


@pytest.mark.slow
def test_spark_computes_only_the_new_partials_too(stored: Proj, tmp_path: Path,
                                                   spark: Any) -> None:
    from featql.engines.spark import SparkEngine

    stored.edit("views/user_aggs.sql", *ADD_MIN)
    stored.apply()
    engine = SparkEngine("local[2]", {"spark.sql.shuffle.partitions": "4"})
    try:
        assert engine.spark is spark
        report = materialize(stored.root, stored.manifest(), "dev", engine=engine)
    finally:
        engine.close()
    r = {v.view: v for v in report.views}["user_aggs"]
    assert (r.written, r.reused) == (10, 10)
    scratch = Proj(tmp_path / "scratch")
    scratch.write("views/user_aggs.sql", stored.read("views/user_aggs.sql"))
    shutil.copytree(stored.root / "data" / "txns", scratch.root / "data" / "txns")
    scratch.apply()
    run(scratch)
    new = storage(stored, "user_aggs")
    mine, theirs = data_files(stored, new), data_files(scratch, new)
    assert mine.keys() == theirs.keys() and len(mine) == 10
    for name in mine:
        assert pq.read_table(mine[name]).equals(pq.read_table(theirs[name])), name


def test_a_later_start_computes_the_first_interval_whole(stored: Proj, tmp_path: Path) -> None:
    stored.edit("views/user_aggs.sql", *ADD_MIN)
    stored.edit("views/user_aggs.sql", "start = '2024-01-01'", "start = '2024-01-03'")
    lines = backfill_lines(stored.plan_text(), "user_aggs")
    assert lines[-1].startswith("reuse: 7 of 8 intervals compute only 1 aggregation")
    stored.apply()
    r = run(stored)["user_aggs"]
    assert (r.written, r.reused) == (8, 7)  # the first also holds every tile before it
    scratch = Proj(tmp_path / "scratch")
    scratch.write("views/user_aggs.sql", stored.read("views/user_aggs.sql"))
    shutil.copytree(stored.root / "data" / "txns", scratch.root / "data" / "txns")
    scratch.apply()
    run(scratch)
    new = storage(stored, "user_aggs")
    mine, theirs = data_files(stored, new), data_files(scratch, new)
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert mine[name].read_bytes() == theirs[name].read_bytes(), name


def test_an_aggregation_over_a_column_no_other_reads_still_reuses(stored: Proj,
                                                                  tmp_path: Path) -> None:
    """The groups' identities cover the columns each reads, not the whole view's: counting
    `channel` (read by nothing before) leaves txn_count and amount_sum as they were. (The
    diff still calls the existing features changed: feature fingerprints cover every column
    the view reads.)"""
    old = storage(stored, "user_aggs")
    stored.edit("views/user_aggs.sql", "SUM(amount) AS amount_sum",
                "SUM(amount) AS amount_sum,\n       COUNT(channel) AS channel_count")
    lines = backfill_lines(stored.plan_text(), "user_aggs")
    assert lines[-1] == (
        "reuse: 10 of 10 intervals compute only 1 aggregation, channel_count (channel_count_1d, "
        f"channel_count_7d); 2 aggregations (txn_count, amount_sum: 4 features) reused from {old}")
    stored.apply()
    assert run(stored)["user_aggs"].reused == 10
    scratch = Proj(tmp_path / "scratch")
    scratch.write("views/user_aggs.sql", stored.read("views/user_aggs.sql"))
    shutil.copytree(stored.root / "data" / "txns", scratch.root / "data" / "txns")
    scratch.apply()
    run(scratch)
    new = storage(stored, "user_aggs")
    mine, theirs = data_files(stored, new), data_files(scratch, new)
    assert mine.keys() == theirs.keys() and len(mine) == 10
    for name in mine:
        assert mine[name].read_bytes() == theirs[name].read_bytes(), name


def test_a_changed_aggregation_is_recomputed_alone(stored: Proj) -> None:
    old = storage(stored, "user_aggs")
    stored.edit("views/user_aggs.sql", "SUM(amount) AS amount_sum", "SUM(amount * 2) AS amount_sum")
    text = stored.plan_text()
    assert "-/+ recreate feature view user_aggs (breaking)" in text
    assert backfill_lines(text, "user_aggs")[-1] == (
        "reuse: 10 of 10 intervals compute only 1 aggregation, amount_sum (amount_sum_1d, "
        f"amount_sum_7d); 1 aggregation (txn_count: 2 features) reused from {old}")
    stored.apply()
    rec = Recording()
    assert run(stored, rec)["user_aggs"].reused == 10
    assert "COUNT(*)" not in rec.views["_featql_new_user_aggs"]  # txn_count is not computed
    tiles = OfflineStore(stored.root, None, "dev", stored.manifest()).scan("user_aggs")
    raw = pq.read_table(stored.root / "data" / "txns").to_pylist()
    assert sum(v for v in tiles.column("amount_sum__sum").to_pylist() if v is not None) == sum(
        2 * r["amount"] for r in raw if r["amount"] > 0)
    assert sum(tiles.column("txn_count__count").to_pylist()) == sum(
        1 for r in raw if r["amount"] > 0)


def test_the_join_matches_null_keys_and_refuses_one_sided_tiles() -> None:
    from featql.jobs.reuse import _join

    t0, t1 = datetime(2024, 1, 1), datetime(2024, 1, 2)
    old = pa.table({"user_id": pa.array([None, 1], pa.int64()), "_tile_start": [t0, t1],
                    "txn_count__count": pa.array([3, 4], pa.int64())})
    new = pa.table({"user_id": pa.array([1, None], pa.int64()), "_tile_start": [t1, t0],
                    "amount_min__min": [2.5, 0.5]})
    joined = _join(old, new, ["user_id"])
    assert joined is not None
    assert sorted(joined.to_pylist(), key=lambda r: r["_tile_start"]) == [
        {"user_id": None, "_tile_start": t0, "txn_count__count": 3, "amount_min__min": 0.5},
        {"user_id": 1, "_tile_start": t1, "txn_count__count": 4, "amount_min__min": 2.5}]
    assert _join(old, new.slice(0, 1), ["user_id"]) is None  # (NULL, t0) only in the old tiles


def test_the_interval_ranges_agree_with_a_brute_force_reading() -> None:
    import random
    from datetime import timedelta

    from featql.jobs.reuse import _Ranges

    rng = random.Random(7)
    t0 = datetime(2024, 1, 1)
    for _ in range(200):
        ranges = []
        for _ in range(rng.randint(0, 6)):
            a = rng.randint(0, 30)
            ranges.append((t0 + timedelta(hours=a), t0 + timedelta(hours=a + rng.randint(1, 5))))
        r = _Ranges(ranges)
        for _ in range(20):
            a = rng.randint(0, 34)
            lo, hi = t0 + timedelta(hours=a), t0 + timedelta(hours=a + rng.randint(1, 4))
            hours = {lo + timedelta(hours=h) for h in range((hi - lo) // timedelta(hours=1))}
            inside = {s + timedelta(hours=h) for s, e in ranges
                      for h in range((e - s) // timedelta(hours=1))}
            assert r.covers(lo, hi) == (hours <= inside)
            assert r.overlaps(lo, hi) == any(s < hi and lo < e for s, e in ranges)
