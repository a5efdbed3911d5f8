"""Late rows (issue 15 item 3): a source file added, changed or deleted after its intervals were
materialized makes exactly those intervals stale; an incremental run recomputes them, says why,
and leaves the offline store equal to a full `--overwrite` run and the training set equal to
the brute-force oracle. Also: nothing changed is "up to date", `lookback`, the CLI's message."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from featql.jobs.materialize import MaterializeReport, ViewRun, materialize
from featql.jobs.training import TrainingReport, training_set
from runtime.conftest import compiled
from runtime.moto_s3 import moto_bucket
from runtime.test_project_harness import assert_matches, expected

HERE = Path(__file__).parent / "harness_project"
EVENTS = pa.schema([("user_id", pa.int64()), ("merchant", pa.string()), ("x", pa.int64()),
                    ("s", pa.string()), ("ts", pa.timestamp("us")),
                    ("created_at", pa.timestamp("us"))])
SPINE = pa.schema([("user_id", pa.int64()), ("merchant", pa.string()), ("t", pa.timestamp("us"))])
DOWNSTREAM = """\
-- @feature_view(name = last_sign, entity = user, timestamp = ts, ttl = '2h',
--               schedule = '1d', start = '2024-01-01'{extra})
SELECT user_id, ts, x > 0 AS positive FROM last_event
"""
NOW = datetime(2024, 2, 1)  # the runs' "now": after the data, so no interval is cut off


def _events(rng: random.Random, n: int, lo: datetime, hi: datetime) -> list[dict[str, Any]]:
    span = int((hi - lo).total_seconds() // 60)
    out = []
    for _ in range(n):
        ts = lo + timedelta(minutes=rng.randrange(span))
        out.append({"user_id": rng.choice([1, 2, 3]), "merchant": rng.choice(["a", "b"]),
                    "x": rng.choice([-3, 1, 2, 5, None]), "s": rng.choice(["k", "l", None]),
                    "ts": ts, "created_at": ts + timedelta(minutes=rng.randrange(30))})
    return out


def _write_events(path: Path, rows: list[dict[str, Any]]) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=EVENTS), path)


def _project(tmp_path: Path, lookback: str | None = None) -> tuple[Path, dict[str, Any]]:
    """The runtime harness project with a view on a view (last_sign reads last_event) and
    deterministic data from 2024-01-01 to 2024-01-06."""
    root = tmp_path / "project"
    shutil.copytree(HERE, root)
    extra = f", lookback = '{lookback}'" if lookback else ""
    (root / "views" / "last_sign.sql").write_text(DOWNSTREAM.format(extra=extra))
    rng = random.Random(15)
    base = _events(rng, 300, datetime(2024, 1, 1), datetime(2024, 1, 6))
    for name in ("events", "profiles", "tags"):
        (root / "data" / name).mkdir(parents=True)
    _write_events(root / "data" / "events" / "base.parquet", base)
    profiles = [{"user_id": u, "merchant": m, "score": rng.choice([0.5, -2.0, None]),
                 "updated_at": datetime(2024, 1, 1) + timedelta(hours=rng.randrange(120))}
                for u in (1, 2, 3) for m in ("a", "b")]
    profiles[0]["updated_at"] = datetime(2024, 1, 5, 23)  # every source reaches 2024-01-05
    with (root / "data" / "profiles" / "p.json").open("w") as f:
        for r in profiles:
            f.write(json.dumps({**r, "updated_at": r["updated_at"].isoformat(" ")}) + "\n")
    tags = [{"user_id": u, "tag": rng.choice(["p", "q"]),
             "tagged_at": datetime(2024, 1, 1) + timedelta(hours=rng.randrange(120))}
            for u in (1, 2, 3, 1, 2)]
    tags[0]["tagged_at"] = datetime(2024, 1, 5, 22)
    pcsv.write_csv(pa.Table.from_pylist(tags, schema=pa.schema(
        [("user_id", pa.int64()), ("tag", pa.string()), ("tagged_at", pa.timestamp("us"))])),
        root / "data" / "tags" / "p.csv")
    spine = [{"user_id": rng.choice([1, 2, 3, None]), "merchant": rng.choice(["a", "b"]),
              "t": datetime(2024, 1, 1) + timedelta(minutes=rng.randrange(5 * 1440))}
             for _ in range(120)]
    return root, {"events": base, "profiles": profiles, "tags": tags, "spine": spine}


def _run(root: Path, c: Any, **kw: Any) -> MaterializeReport:
    return materialize(root, c.manifest, config=c.config, now=NOW, **kw)


def _by_view(report: MaterializeReport) -> dict[str, ViewRun]:
    return {v.view: v for v in report.views}


def _store_digest(root: Path) -> dict[str, str]:
    base = root / "data" / "offline"
    return {str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(base.rglob("*.parquet"))}


def _intervals(run: ViewRun) -> str:
    return f"{run.recomputed} ({run.recomputed_span})" if run.recomputed else run.note


def _hours(a: datetime, b: datetime) -> int:
    return int((b - a).total_seconds() // 3600)


def _store_training(root: Path, c: Any, case: dict[str, Any], engine: Any = None
                    ) -> tuple[pa.Table, dict[str, str]]:
    """The training set of the case's spine and where each view was read from."""
    report = TrainingReport()
    got = training_set(root, c.manifest, c.config, "svc",
                       pa.Table.from_pylist(case["spine"], schema=SPINE), engine=engine,
                       report=report)
    return got, report.reads


def _assert_store_is_right(root: Path, c: Any, case: dict[str, Any], engine: Any = None
                           ) -> None:
    """The training set read from the store equals the oracle over every row (the harness
    test's oracle and comparison: the project is the harness project); the store equals what
    a full `--overwrite` writes (byte for byte)."""
    got, reads = _store_training(root, c, case, engine)
    assert set(reads.values()) == {"store"}, reads
    assert_matches(got, expected(case))
    before = _store_digest(root)
    _run(root, c, overwrite=True, engine=engine)
    assert _store_digest(root) == before, "the incremental result differs from a full overwrite"


def _assert_last_event_from_store(root: Path, c: Any, case: dict[str, Any]) -> None:
    """last_event read from the store, its x equal to the oracle's on every spine row."""
    got, reads = _store_training(root, c, case)
    assert reads["last_event"] == "store"
    assert [r["last_event__x"] for r in got.to_pylist()] == [
        w["last_event__x"] for w in expected(case)]


def test_new_changed_and_deleted_files_recompute_exactly_their_intervals(tmp_path: Path) -> None:
    root, case = _project(tmp_path)
    c = compiled(root)
    first = _by_view(_run(root, c))
    assert first["last_event"].written == 5 and first["merchant_aggs"].written == 120
    assert _store_digest(root)

    # nothing changed: up to date, nothing recomputed
    again = _by_view(_run(root, c))
    assert {v: r.note for v, r in again.items()} == dict.fromkeys(again, "up to date")
    assert all(r.written == 0 and r.recomputed == 0 for r in again.values())

    # a new file with late rows from 2024-01-02 10:00 to 2024-01-03 05:59
    late_file = root / "data" / "events" / "late.parquet"
    late = _events(random.Random(1), 40, datetime(2024, 1, 2, 10), datetime(2024, 1, 3, 6))
    late[0]["ts"], late[-1]["ts"] = datetime(2024, 1, 2, 10), datetime(2024, 1, 3, 5, 59)
    _write_events(late_file, late)
    kept = {p: os.stat(p).st_mtime_ns for p in (root / "data" / "offline").rglob("*.parquet")}
    run = _by_view(_run(root, c))
    reason = "1 new file in source events (data/events/late.parquet)"
    assert _intervals(run["last_event"]) == "2 (2024-01-02..2024-01-04)"
    assert run["last_event"].reason == reason
    assert run["last_event"].written == 2  # no interval beyond the recomputed ones
    # the view on the view is recomputed too (through last_event, from the same file)
    assert _intervals(run["last_sign"]) == "2 (2024-01-02..2024-01-04)"
    assert run["last_sign"].reason == reason
    # aggregate view: the hourly tiles 10:00 .. 05:00 the next day
    assert _intervals(run["merchant_aggs"]) == "20 (2024-01-02 10:00..2024-01-03 06:00)"
    assert run["merchant_aggs"].recomputed == _hours(datetime(2024, 1, 2, 10),
                                                     datetime(2024, 1, 3, 6))
    assert run["pair_profile"].note == run["user_tag"].note == "up to date"
    # files of the other intervals were left alone
    touched = {p for p, ns in kept.items() if not p.exists() or os.stat(p).st_mtime_ns != ns}
    tokens = {p.name.split("-")[1].split(".")[0] for p in touched}
    days = {t[:8] for t in tokens}
    assert days <= {"20240102", "20240103"}, sorted(tokens)
    case["events"] = case["events"] + late
    _assert_store_is_right(root, c, case)
    assert all(r.note == "up to date" for r in _run(root, c).views)

    # the late file changed: its rows move to 2024-01-04 (old and new ranges are stale)
    moved = [{**r, "ts": r["ts"] + timedelta(days=2), "created_at": r["created_at"]
              + timedelta(days=2)} for r in [*late[:19], late[-1]]]
    _write_events(late_file, moved)
    run = _by_view(_run(root, c))
    assert _intervals(run["last_event"]) == "4 (2024-01-02..2024-01-06)"
    assert run["last_event"].reason == "1 changed file in source events " \
        "(data/events/late.parquet)"
    case["events"] = case["events"][:-len(late)] + moved
    _assert_store_is_right(root, c, case)

    # the late file deleted: the range recorded with it is stale
    late_file.unlink()
    run = _by_view(_run(root, c))
    assert _intervals(run["last_event"]) == "2 (2024-01-04..2024-01-06)"
    assert run["last_event"].reason == "1 deleted file in source events " \
        "(data/events/late.parquet)"
    case["events"] = case["events"][:-len(moved)]
    _assert_store_is_right(root, c, case)
    assert all(r.recomputed == 0 for r in _run(root, c).views)


def test_csv_and_json_files_are_located_by_their_time_column(tmp_path: Path) -> None:
    root, case = _project(tmp_path)
    c = compiled(root)
    _run(root, c)
    tag = {"user_id": 3, "tag": "q", "tagged_at": datetime(2024, 1, 3, 12)}
    pcsv.write_csv(pa.Table.from_pylist([tag], schema=pa.schema(
        [("user_id", pa.int64()), ("tag", pa.string()), ("tagged_at", pa.timestamp("us"))])),
        root / "data" / "tags" / "late.csv")
    profile = {"user_id": 2, "merchant": "b", "score": 3.25,
               "updated_at": datetime(2024, 1, 2, 6)}
    (root / "data" / "profiles" / "late.json").write_text(
        json.dumps({**profile, "updated_at": "2024-01-02 06:00:00"}) + "\n")
    run = _by_view(_run(root, c))
    assert _intervals(run["user_tag"]) == "1 (2024-01-03..2024-01-04)"
    assert run["user_tag"].reason == "1 new file in source tags (data/tags/late.csv)"
    assert _intervals(run["pair_profile"]) == "1 (2024-01-02..2024-01-03)"
    assert run["pair_profile"].reason == "1 new file in source profiles (data/profiles/late.json)"
    assert run["last_event"].note == run["merchant_aggs"].note == "up to date"
    case["tags"] = [*case["tags"], tag]
    case["profiles"] = [*case["profiles"], profile]
    _assert_store_is_right(root, c, case)


def test_a_run_limited_to_a_range_keeps_the_rest_stale(tmp_path: Path) -> None:
    root, case = _project(tmp_path)
    c = compiled(root)
    _run(root, c, views=["last_event"])
    late = _events(random.Random(2), 30, datetime(2024, 1, 2), datetime(2024, 1, 5))
    late[0]["ts"], late[-1]["ts"] = datetime(2024, 1, 2, 1), datetime(2024, 1, 4, 23)
    _write_events(root / "data" / "events" / "late.parquet", late)
    part = _by_view(_run(root, c, views=["last_event"], start="2024-01-04"))
    assert _intervals(part["last_event"]) == "1 (2024-01-04..2024-01-05)"
    rest = _by_view(_run(root, c, views=["last_event"]))  # 01-02 and 01-03 are still stale
    assert _intervals(rest["last_event"]) == "3 (2024-01-02..2024-01-05)"
    assert _by_view(_run(root, c, views=["last_event"]))["last_event"].note == "up to date"
    case["events"] = case["events"] + late
    _assert_last_event_from_store(root, c, case)


def test_lookback_recomputes_the_last_done_intervals(tmp_path: Path) -> None:
    root, case = _project(tmp_path, lookback="2d")
    c = compiled(root)
    assert c.manifest.view("last_sign").lookback_seconds == 2 * 86400
    assert c.manifest.view("last_event").lookback_seconds is None
    _run(root, c)
    run = _by_view(_run(root, c))  # nothing changed: the lookback still recomputes 2 days
    assert _intervals(run["last_sign"]) == "2 (2024-01-04..2024-01-06)"
    assert run["last_sign"].reason == "lookback 2d"
    assert run["last_event"].note == "up to date"
    _assert_store_is_right(root, c, case)


@pytest.mark.parametrize(("value", "headline"), [
    ("2", "views/last_sign.sql:2:68: error[E105]: expected a duration string such as '1d', "
          "found a number (2)"),
    ("'2x'", "views/last_sign.sql:2:68: error[E106]: invalid duration '2x'"),
    ("'0d'", "views/last_sign.sql:2:68: error[E106]: invalid duration '0d'"),
])
def test_a_bad_lookback_is_one_positioned_error(tmp_path: Path, value: str, headline: str
                                                ) -> None:
    from featql.compiler.project import compile_project

    root, _ = _project(tmp_path)
    (root / "views" / "last_sign.sql").write_text(
        DOWNSTREAM.format(extra=f", lookback = {value}"))
    result = compile_project(root)
    assert [d.headline().replace(f"{root}/", "") for d in result.diagnostics] == [headline]


def test_time_source_follows_bare_timestamps_only(tmp_path: Path) -> None:
    """Intervals are located only through a source timestamp passed on unchanged; a computed
    time, or a change in a joined source, makes every done interval stale."""
    from featql.jobs.stale import view_time_source

    root, _ = _project(tmp_path)
    (root / "views" / "shifted.sql").write_text(
        "-- @feature_view(name = shifted, entity = user, timestamp = ts, schedule = '1d',\n"
        "--               start = '2024-01-01')\n"
        "SELECT user_id, ts + INTERVAL 1 DAY AS ts, x FROM events\n")
    (root / "views" / "tagged.sql").write_text(
        "-- @feature_view(name = tagged, entity = user, timestamp = ts, schedule = '1d',\n"
        "--               start = '2024-01-01')\n"
        "SELECT e.user_id, e.ts, t.tag FROM events AS e JOIN tags AS t ON e.user_id = t.user_id\n")
    c = compiled(root)
    m = c.manifest
    assert view_time_source(m, m.view("tagged")) == "events"
    assert view_time_source(m, m.view("last_sign")) == "events"  # through last_event
    assert view_time_source(m, m.view("merchant_aggs")) == "events"
    assert view_time_source(m, m.view("shifted")) is None
    _run(root, c, views=["shifted"])
    _write_events(root / "data" / "events" / "late.parquet",
                  _events(random.Random(3), 5, datetime(2024, 1, 2), datetime(2024, 1, 2, 2)))
    run = _by_view(_run(root, c, views=["shifted"]))["shifted"]
    # its time is computed: every done interval is stale (never a silently missed one)
    assert _intervals(run) == "6 (2024-01-01..2024-01-07)"
    # a file of the joined source (not the one giving the event time): every done interval
    _run(root, c, views=["tagged"])
    (root / "data" / "tags" / "late.csv").write_text("user_id,tag,tagged_at\n1,p,2024-01-02\n")
    run = _by_view(_run(root, c, views=["tagged"]))["tagged"]
    assert _intervals(run) == "5 (2024-01-01..2024-01-06)"
    assert run.reason == "1 new file in source tags (data/tags/late.csv)"


FEATQL = Path(sys.executable).with_name("featql")


def _featql(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FEATQL_DEBUG", "FORCE_COLOR")}
    env["COLUMNS"] = "200"
    return subprocess.run([str(FEATQL), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_cli_says_what_it_recomputed_and_why(tmp_path: Path) -> None:
    root, _ = _project(tmp_path)
    applied = _featql("apply", "--yes", cwd=root)
    assert applied.returncode == 0, applied.stderr
    late = _events(random.Random(4), 10, datetime(2024, 1, 3), datetime(2024, 1, 4))
    late[0]["ts"] = datetime(2024, 1, 3, 0, 30)
    _write_events(root / "data" / "events" / "part-7.parquet", late)
    done = _featql("materialize", "--view", "last_event", "--view", "user_tag", cwd=root)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "↻ last_event: recomputed 1 interval (2024-01-03..2024-01-04): 1 new file in " \
        "source events (data/events/part-7.parquet)" in lines, done.stdout
    assert "· user_tag: up to date (5 interval(s))" in lines, done.stdout
    assert any(line.startswith("materialized 1 interval(s) (1 recomputed) into workspace "
                               "'dev' with duckdb") for line in lines), done.stdout
    again = _featql("materialize", "--view", "last_event", cwd=root)
    assert again.returncode == 0, again.stderr
    assert "· last_event: up to date (5 interval(s))" in again.stdout.splitlines(), again.stdout
    assert "recomputed" not in again.stdout


@pytest.mark.slow
def test_spark_recomputes_late_intervals_like_duckdb(tmp_path: Path, spark_engine: Any) -> None:
    root, _ = _project(tmp_path)
    c = compiled(root)
    _run(root, c, views=["last_event", "merchant_aggs"], engine=spark_engine)
    late = _events(random.Random(5), 20, datetime(2024, 1, 4, 2), datetime(2024, 1, 4, 3, 30))
    late[0]["ts"] = datetime(2024, 1, 4, 2)
    _write_events(root / "data" / "events" / "late.parquet", late)
    run = _by_view(_run(root, c, views=["last_event", "merchant_aggs"], engine=spark_engine))
    assert _intervals(run["last_event"]) == "1 (2024-01-04..2024-01-05)"
    assert _intervals(run["merchant_aggs"]) == "2 (2024-01-04 02:00..2024-01-04 04:00)"
    before = _store_digest(root)
    _run(root, c, views=["last_event", "merchant_aggs"], overwrite=True, engine=spark_engine)
    assert _store_digest(root) == before


@pytest.fixture()
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A bucket on moto's server on 127.0.0.1; AWS_* point at it."""
    with moto_bucket(monkeypatch, "late"):
        yield "late"


def test_s3_source_files_are_signed_by_etag(tmp_path: Path, s3_bucket: str) -> None:
    import boto3

    root, case = _project(tmp_path)
    src = root / "sources" / "events.sql"
    src.write_text(src.read_text().replace("parquet('data/events/')",
                                           f"parquet('s3://{s3_bucket}/events/')"))
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    s3.upload_file(str(root / "data" / "events" / "base.parquet"), s3_bucket,
                   "events/base.parquet")
    (root / "data" / "events" / "base.parquet").unlink()
    c = compiled(root)
    _run(root, c, views=["last_event"])
    late = _events(random.Random(6), 10, datetime(2024, 1, 3, 1), datetime(2024, 1, 3, 2))
    _write_events(tmp_path / "late.parquet", late)
    s3.upload_file(str(tmp_path / "late.parquet"), s3_bucket, "events/late.parquet")
    run = _by_view(_run(root, c, views=["last_event"]))["last_event"]
    assert _intervals(run) == "1 (2024-01-03..2024-01-04)"
    assert run.reason == f"1 new file in source events (s3://{s3_bucket}/events/late.parquet)"
    assert _by_view(_run(root, c, views=["last_event"]))["last_event"].note == "up to date"
    moved = [{**r, "ts": r["ts"] + timedelta(days=1)} for r in late]  # same size, new bytes
    _write_events(tmp_path / "late.parquet", moved)
    s3.upload_file(str(tmp_path / "late.parquet"), s3_bucket, "events/late.parquet")
    run = _by_view(_run(root, c, views=["last_event"]))["last_event"]
    assert _intervals(run) == "2 (2024-01-03..2024-01-05)"
    assert run.reason.startswith("1 changed file in source events")
    case["events"] = case["events"] + moved
    _assert_last_event_from_store(root, c, case)


def test_a_parquet_file_without_statistics_is_located_by_reading_its_time_column(
        tmp_path: Path) -> None:
    from featql.offline.signatures import sign_files, time_range

    root, _ = _project(tmp_path)
    rows = _events(random.Random(7), 50, datetime(2024, 1, 2, 3), datetime(2024, 1, 4, 8))
    pq.write_table(pa.Table.from_pylist(rows, schema=EVENTS),
                   root / "data" / "events" / "nostats.parquet", write_statistics=False,
                   row_group_size=7)
    c = compiled(root)
    source = c.manifest.source("events")
    (sig,) = [s for s in sign_files(source, root) if s.path.endswith("nostats.parquet")]
    meta = pq.ParquetFile(root / sig.path).metadata
    assert meta.num_row_groups > 1 and not meta.row_group(0).column(4).is_stats_set
    times = [r["ts"] for r in rows]
    assert time_range(source, sig, root) == (min(times), max(times))
    assert sig.size == os.stat(root / sig.path).st_size
    assert sig.mtime_ns == os.stat(root / sig.path).st_mtime_ns
