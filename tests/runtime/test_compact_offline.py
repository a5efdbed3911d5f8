"""Offline compaction (issue 14 item 3): `materialize` stores the complete 1-day periods of
user_txn_aggs' 30-day window (1-hour slide) as coarse tiles next to the fine ones; merging whole
days from the coarse tiles gives exactly what merging their fine tiles gives, for every
aggregation of the view, and the counts equal the raw transactions (a brute-force oracle); a
re-run rewrites nothing; `--compact` alone through the CLI."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import duckdb

from featql.jobs.compact import compact_offline, complete_periods, read_compacted
from featql.jobs.materialize import materialize
from featql.offline.store import OfflineStore
from featql.semantics import compaction
from featql.semantics.aggregates import for_aggregation, partial_columns

from .conftest import compiled

D = 86400


class _Window:
    """A window over plain columns whose additive columns may hold coarse expansions."""

    def __init__(self, columns: dict[str, list[Any]]) -> None:
        self.columns = columns

    def total(self, column: str) -> int | float:
        return compaction.total(self.columns[column])

    def present(self, column: str) -> list[Any]:
        return [v for v in self.columns[column] if v is not None]

    def column(self, column: str) -> list[Any]:
        return self.columns[column]


def _values(view: Any, rows: list[dict[str, Any]]) -> list[Any]:
    cols = {c: [r[c] for r in rows] for c in partial_columns(view)}
    window = _Window(cols)
    return [for_aggregation(a).finalize(for_aggregation(a).merge(window, a.name), a.type)
            for a in view.aggregations]


def test_coarse_days_merge_like_their_hours(small_example: Path) -> None:
    c = compiled(small_example)
    m = c.manifest
    report = materialize(small_example, m, "dev", views=["user_txn_aggs"], config=c.config,
                         engine="duckdb")
    [level] = report.compacted
    view = m.view("user_txn_aggs")
    assert level.resolution == D and level.written and level.periods >= 12
    assert level.coarse_tiles < level.fine_tiles
    store = OfflineStore(small_example, c.config, "dev", m)
    coarse = read_compacted(store, view, D)
    assert coarse is not None and coarse.num_rows == level.coarse_tiles
    fine = store.scan("user_txn_aggs").to_pylist()
    crow = coarse.to_pylist()
    rng = random.Random(3)
    users = sorted({r["user_id"] for r in crow})
    first = min(r["_tile_start"] for r in crow)
    last = max(r["_tile_start"] for r in crow)
    txns = duckdb.sql(f"SELECT user_id, event_ts FROM read_parquet('{small_example}/data/"
                      "transactions/**/*.parquet') WHERE amount > 0").fetchall()
    checked = 0
    for _ in range(40):
        user = rng.choice(users)
        a = first + dt.timedelta(days=rng.randrange(0, (last - first).days + 1))
        b = min(a + dt.timedelta(days=rng.randrange(1, 8)), last + dt.timedelta(days=1))
        got = _values(view, [r for r in crow
                             if r["user_id"] == user and a <= r["_tile_start"] < b])
        want = _values(view, [r for r in fine
                              if r["user_id"] == user and a <= r["_tile_start"] < b])
        assert len(got) == len(want)
        for agg, x, y in zip(view.aggregations, got, want, strict=True):
            assert x == y and type(x) is type(y), (user, a, b, agg.name, x, y)
        n = sum(1 for u, t in txns if u == user and a <= t < b)
        count = next(i for i, ag in enumerate(view.aggregations) if ag.function == "count")
        assert got[count] == n, (user, a, b)
        checked += 1
    assert checked == 40
    again = compact_offline(small_example, m, "dev", ["user_txn_aggs"], c.config)
    assert [lv.written for lv in again] == [False]


def test_complete_periods_need_every_interval_done(small_example: Path) -> None:
    view = compiled(small_example).manifest.view("user_txn_aggs")
    h = dt.timedelta(hours=1)
    day = dt.datetime(2024, 1, 3)
    done = [(day + k * h, day + (k + 1) * h) for k in range(24) if k != 5]
    done += [(day + dt.timedelta(days=1) + k * h, day + dt.timedelta(days=1) + (k + 1) * h)
             for k in range(24)]
    assert complete_periods(view, done, D) == [day + dt.timedelta(days=1)]


def test_cli_compact_alone(small_example: Path) -> None:
    """`apply` backfills (and compacts); `materialize --compact` then finds nothing to write,
    and after the compacted file is removed writes it again, saying what it wrote."""
    import os
    import subprocess
    import sys

    featql = Path(sys.executable).with_name("featql")
    env = {k: v for k, v in os.environ.items() if k not in ("FEATQL_DEBUG", "FORCE_COLOR")}
    env["COLUMNS"] = "200"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(featql), *args], cwd=small_example, env=env, text=True,
                              capture_output=True, timeout=300, check=False)

    assert run("apply", "--yes").returncode == 0
    done = run("materialize", "--view", "user_txn_aggs")
    assert done.returncode == 0, done.stderr
    assert "· user_txn_aggs: 1d tiles up to date" in done.stdout, done.stdout
    c = compiled(small_example)
    view = c.manifest.view("user_txn_aggs")
    store = OfflineStore(small_example, c.config, "dev", c.manifest)
    Path(compact_path := f"{store.view_dir(view.name, view.stored_as)}/_compact/86400s.parquet"
         ).unlink()
    again = run("materialize", "--compact", "--view", "user_txn_aggs")
    assert again.returncode == 0, again.stderr
    [line] = [x for x in again.stdout.splitlines() if x.startswith("⊞")]
    assert line.startswith("⊞ user_txn_aggs: ") and " × 1d tiles (" in line, line
    assert Path(compact_path).exists()
    assert "compacted 1 level(s) in workspace 'dev'" in again.stdout
