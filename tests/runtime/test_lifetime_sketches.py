"""A lifetime window over the sketch functions, loaded online (`materialize --online`).

The load folds a lifetime view's older tiles into one prefix tile (`tiles.with_prefix`). A
sketch's merge is the window's union, not a partial, so the fold used to put a union object
in the cell and the load failed with an internal error. The prefix is now the one sketch the
semantics core combines the tiles into (`compaction.combine`): lookups after the load equal the
training set at the same times (the same sketch bytes on both sides, so equal, not merely
within the bound), compacted or not."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import featql
from featql.cli.main import main

VIEW = (
    "-- @feature_view(name = life, entity = user, timestamp = ts,\n"
    "--               windows = ['1h', '3h', 'lifetime'], slide = '1h', start = '2024-01-01')\n"
    "SELECT user_id, COUNT(*) AS n, APPROX_COUNT_DISTINCT(s) AS ds,\n"
    "       APPROX_PERCENTILE(x, 0.5) AS px\n"
    "FROM events GROUP BY user_id\n")
START = dt.datetime(2024, 1, 1)
END = START + dt.timedelta(days=5)


def _project(root: Path, compact: bool) -> Path:
    files = {
        "featql.toml": f'[project]\nname = "lp"\n[online]\ncompact = {str(compact).lower()}\n',
        "entities/user.sql": "-- @entity(name = user, keys = [user_id BIGINT])\n",
        "sources/events.sql": (
            "-- @source(name = events, timestamp = ts, batch = parquet('data/events/'))\n"
            "CREATE TABLE events (user_id BIGINT, x BIGINT, s STRING, ts TIMESTAMP);\n"),
        "views/life.sql": VIEW,
        "services/svc.sql": "-- @feature_service(name = svc, features = [life.*])\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    rng = random.Random(7)
    n = 3000  # ~600 events per user: more than a KLL tile keeps exactly, over 120 hours
    rows = [(rng.randint(1, 5), rng.randint(-50, 100), f"s{rng.randint(0, 400)}",
             START + dt.timedelta(seconds=rng.randrange(int((END - START).total_seconds()))))
            for _ in range(n)]
    (root / "data/events").mkdir(parents=True)
    pq.write_table(pa.table({
        "user_id": [r[0] for r in rows], "x": [r[1] for r in rows], "s": [r[2] for r in rows],
        "ts": pa.array([r[3] for r in rows], pa.timestamp("us"))}), root / "data/events/e.parquet")
    return root


@pytest.mark.parametrize("compact", [True, False])
def test_a_lifetime_sketch_view_loads_and_answers_the_training_set(
        tmp_path: Path, compact: bool) -> None:
    root = _project(tmp_path, compact)
    assert main(["apply", "--project", str(root), "--yes"]) == 0
    assert main(["materialize", "--project", str(root), "--online"]) == 0
    project = featql.Project(root)
    times = [END + dt.timedelta(minutes=m) for m in (0, 1, 59, 60, 61, 179, 180, 600)]
    users = [1, 2, 3, 4, 5, 6]  # 6 has no events
    spine = pa.table({"user_id": [u for _ in times for u in users],
                      "t": pa.array([t for t in times for _ in users], pa.timestamp("us"))})
    want = project.training_set("svc", spine).to_pylist()
    got = [row for t in times for row in project.online("svc", [{"user_id": u} for u in users],
                                                        at=t.isoformat())]
    assert len(got) == len(want) == len(spine)
    compared = 0
    for w, g in zip(want, got, strict=True):
        for feature, value in g.items():
            assert w[feature.replace(".", "__")] == value, (w["t"], w["user_id"], feature)
            compared += 1
    lifetime = [g["life.ds_lifetime"] for g in got]
    assert max(lifetime) > 100 and min(lifetime) == 0, lifetime  # real sketches, and the empty user
    assert compared == len(got) * 9
