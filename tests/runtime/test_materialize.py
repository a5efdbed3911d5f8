"""Batch materialization: recorded state, incremental runs, byte-identical re-runs, atomic
overwrite (also when killed half-way), and training sets read from the store."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from featql.jobs.materialize import materialize
from featql.jobs.training import TrainingReport, training_set
from featql.offline.store import OfflineStore
from featql.registry.materializations import MaterializationState
from runtime.conftest import compiled, same_tables
from runtime.killed_run import kill_overwrite_after


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_materialize_records_state_and_is_idempotent(small_example: Path) -> None:
    c = compiled(small_example)
    first = materialize(small_example, c.manifest, config=c.config)
    assert first.written > 0 and all(v.written == v.intervals for v in first.views)
    store_dir = small_example / "data" / "offline" / "dev"
    files = _digest(store_dir)
    assert any("/date=" in f and "/hour=" in f for f in files)  # hourly view: hour partitions
    con = sqlite3.connect(small_example / ".featql" / "registry.db")
    cols = [r[1] for r in con.execute("PRAGMA table_info(materializations)")]
    assert cols == ["workspace", "view", "fingerprint", "interval_start", "interval_end", "rows",
                    "files", "finished_at"]
    recorded = con.execute("SELECT count(*), sum(rows) FROM materializations").fetchone()
    assert recorded[0] == first.written
    assert recorded[1] == sum(v.rows for v in first.views)
    con.close()
    again = materialize(small_example, c.manifest, config=c.config)
    assert again.written == 0
    assert _digest(store_dir) == files
    over = materialize(small_example, c.manifest, config=c.config,
                       overwrite=True)
    assert over.written == first.written
    assert _digest(store_dir) == files, "an overwrite of the same data changed bytes"


def test_incremental_runs_only_new_intervals(small_example: Path) -> None:
    c = compiled(small_example)
    view = "user_last_txn"
    part = materialize(small_example, c.manifest, views=[view], end="2024-01-06",
                       config=c.config)
    assert part.views[0].written == 5
    rest = materialize(small_example, c.manifest, views=[view], config=c.config)
    fp = c.manifest.view(view).stored_as
    done = MaterializationState(small_example).done("dev", view, fp)
    assert rest.views[0].written == len(done) - 5
    assert [d.start for d in done] == sorted({d.start for d in done})
    assert all(a.end == b.start for a, b in pairwise(done))
    scanned = OfflineStore(small_example, c.config, "dev", c.manifest).scan(view)
    raw = pq.read_table(small_example / "data" / "transactions", columns=["user_id", "event_ts"])
    distinct = raw.group_by(["user_id", "event_ts"]).aggregate([]).num_rows
    assert distinct < 8000  # the generator makes a few ties
    assert scanned.num_rows == distinct  # every (user, time) once, earlier ones too
    window = OfflineStore(small_example, c.config, "dev", c.manifest).scan(
        view, start="2024-01-03", end="2024-01-04", columns=["user_id", "event_ts"])
    assert window.column_names == ["user_id", "event_ts"]
    ts = window.column("event_ts").to_pylist()
    assert ts and min(ts) >= datetime(2024, 1, 3) and max(ts) < datetime(2024, 1, 4)


def test_training_set_from_store_equals_from_sources(small_example: Path) -> None:
    c = compiled(small_example)
    spine = small_example / "data" / "spine.parquet"
    fresh_report = TrainingReport()
    fresh = training_set(small_example, c.manifest, c.config, "fraud_detection", spine,
                         report=fresh_report)
    assert set(fresh_report.reads.values()) == {"sources"}
    materialize(small_example, c.manifest, config=c.config)
    report = TrainingReport()
    stored = training_set(small_example, c.manifest, c.config, "fraud_detection", spine,
                          report=report)
    assert report.reads["user_txn_aggs"] == "store" and report.reads["user_last_txn"] == "store"
    assert same_tables(fresh, stored) == []


def test_overwrite_killed_half_way_leaves_old_data(small_example: Path) -> None:
    c = compiled(small_example)
    view = "user_txn_aggs"
    materialize(small_example, c.manifest, views=[view], config=c.config)
    store = OfflineStore(small_example, c.config, "dev", c.manifest)
    before = store.scan(view)
    vdir = Path(store.view_dir(view, c.manifest.view(view).stored_as))
    live = {k: v for k, v in _digest(vdir).items() if not k.startswith("_")}
    def staged() -> None:
        assert any(p.name.startswith("_staging-") for p in vdir.iterdir())

    kill_overwrite_after(small_example, view, 10, staged)  # 10 files of ~330 staged
    assert store.scan(view).equals(before)
    assert {k: v for k, v in _digest(vdir).items() if not k.startswith("_")} == live
    materialize(small_example, c.manifest, views=[view], config=c.config,
                overwrite=True)  # the next run clears the staging and completes
    assert not [p for p in vdir.iterdir() if p.name.startswith("_staging-")]
    assert {k: v for k, v in _digest(vdir).items() if not k.startswith("_")} == live


def test_committed_swap_is_read_whole_and_finished_later(small_example: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A run dying between the journal (commit point) and the last rename: readers see all the
    new partitions, never a mix; the next writer finishes the swap."""
    import featql.offline.store as offline

    c = compiled(small_example)
    view = "user_last_txn"
    materialize(small_example, c.manifest, views=[view], config=c.config)
    store = OfflineStore(small_example, c.config, "dev", c.manifest)
    before = store.scan(view)
    lay = offline.ViewLayout.of(c.manifest.view(view))
    changed = before.set_column(before.column_names.index("last_amount"), "last_amount",
                                offline.pa.array([1.0] * before.num_rows))
    renames = {"n": 0}
    real_rename = os.rename

    def dying_rename(a: str, b: str) -> None:
        renames["n"] += 1
        if renames["n"] > 7:
            raise KeyboardInterrupt("killed")
        real_rename(a, b)

    monkeypatch.setattr(offline.os, "rename", dying_rename)
    first = datetime.fromisoformat(c.manifest.view(view).start)
    done = MaterializationState(small_example).done("dev", view, lay.fingerprint)
    with pytest.raises(KeyboardInterrupt):
        store.write(lay, changed, [(d.start, d.end) for d in done], open_below=first)
    monkeypatch.setattr(offline.os, "rename", real_rename)
    vdir = Path(store.view_dir(view, lay.fingerprint))
    assert list(vdir.glob("_swap-*.json")), "the swap should be half done"
    mid = store.scan(view)
    assert mid.num_rows == before.num_rows
    assert set(mid.column("last_amount").to_pylist()) == {1.0}
    store.recover(view, lay.fingerprint)
    assert not list(vdir.glob("_*-*"))
    assert store.scan(view).equals(mid)


def test_cli_materialize_and_training_set(small_example: Path, tmp_path: Path) -> None:
    featql = [str(Path(sys.executable).parent / "featql")]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    run = subprocess.run([*featql, "apply", "--project", str(small_example), "--yes"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr  # what runs is what was applied
    run = subprocess.run([*featql, "materialize", "--project", str(small_example), "--view",
                          "user_profile", "--online"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert "user_profile" in run.stdout and "Traceback" not in run.stderr
    assert "online store loaded: 1 view" in run.stdout
    assert (small_example / ".featql" / "online.db").exists()
    out = tmp_path / "ts.parquet"
    run = subprocess.run([*featql, "training-set", "merchant_risk", "--project",
                          str(small_example), "--spine",
                          str(small_example / "data" / "spine.parquet"), "--out", str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert table.num_rows == 500 and "merchant_txn_aggs__txn_count_7d" in table.column_names
    for args, message in [
        (["training-set", "fraud_detektion"], "did you mean 'fraud_detection'"),
        (["materialize", "--view", "user_profil"], "did you mean 'user_profile'"),
        (["materialize", "--start", "yesterday"], "is not a date"),
    ]:
        extra = ["--spine", str(small_example / "data" / "spine.parquet"), "--out",
                 str(out)] if args[0] == "training-set" else []
        run = subprocess.run([*featql, *args, "--project", str(small_example), *extra],
                             capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        assert message in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow
def test_spark_materializes_the_same_data(small_example: Path, spark_engine: Any) -> None:
    c = compiled(small_example)
    views = ["user_last_txn", "user_txn_aggs", "user_risk_flags"]
    materialize(small_example, c.manifest, "spark_ws", views, engine=spark_engine,
                config=c.config)
    materialize(small_example, c.manifest, "dev", views, config=c.config)
    for view in views:
        duck = OfflineStore(small_example, c.config, "dev", c.manifest).scan(view)
        spark = OfflineStore(small_example, c.config, "spark_ws", c.manifest).scan(view)
        assert duck.num_rows > 0
        assert same_tables(duck, spark, rel=1e-12) == [], view
