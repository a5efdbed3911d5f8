"""The offline store on s3:// (moto's server on 127.0.0.1): content-named files and a snapshot
as the commit point. Re-runs are byte-identical, an overwrite killed half-way leaves the old
data readable and whole, the next run removes the garbage, and an overwrite replaces exactly
its range."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from featql.jobs.materialize import materialize
from featql.jobs.training import TrainingReport, training_set
from featql.offline.locks import LEASE_SECONDS
from featql.offline.store import OfflineStore, ViewLayout
from runtime.conftest import compiled, same_tables
from runtime.killed_run import kill_overwrite_after

_BUCKETS = itertools.count()
_EMPTY = hashlib.sha256(b"").hexdigest()


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture()
def bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the module's moto server; AWS_* point at it (children inherit)."""
    for key, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"
                       }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    import boto3

    name = f"featql-{next(_BUCKETS)}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name


def _on_s3(root: Path, bucket: str) -> Any:
    toml = root / "featql.toml"
    toml.write_text(toml.read_text().replace('path = "data/offline"',
                                             f'path = "s3://{bucket}/offline"'))
    c = compiled(root)
    assert c.config.offline_path == f"s3://{bucket}/offline"
    return c


def _client() -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def _objects(bucket: str) -> dict[str, str]:
    """Every object of the bucket: key -> sha256 of its bytes."""
    s3 = _client()
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"]] = hashlib.sha256(body).hexdigest()
    return out


def _committed(bucket: str, objects: dict[str, str]) -> set[str]:
    """The keys the view folders' snapshots list, plus the snapshots and descriptions."""
    s3 = _client()
    keys = set()
    for key in objects:
        if key.endswith("/_snapshot.json"):
            vdir = key[:-len("_snapshot.json")]
            doc = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            keys |= {f"{vdir}{p}/{f}" for p, names in doc["partitions"].items() for f in names}
            keys |= {key, f"{vdir}_featql_view.json"}
    return keys


def _double_amounts(root: Path) -> None:
    """Change the source data: every transaction's amount doubled."""
    for f in sorted((root / "data" / "transactions").glob("*.parquet")):
        t = pq.read_table(f)
        i = t.column_names.index("amount")
        pq.write_table(t.set_column(i, "amount", pc.multiply(t.column(i), 2.0)), f)


def test_s3_rematerialize_is_byte_identical(small_example: Path, bucket: str,
                                            tmp_path: Path) -> None:
    c = _on_s3(small_example, bucket)
    views = ["user_last_txn", "user_txn_aggs"]  # daily and hourly partitions
    first = materialize(small_example, c.manifest, views=views, config=c.config)
    assert all(v.written == v.intervals > 0 for v in first.views)
    objects = _objects(bucket)
    assert any("/hour=" in k for k in objects)
    assert set(objects) == _committed(bucket, objects), "only committed files are stored"
    assert sum(k.endswith(".parquet") for k in objects) == sum(v.files for v in first.views)
    again = materialize(small_example, c.manifest, views=views, config=c.config)
    assert again.written == 0
    assert _objects(bucket) == objects
    over = materialize(small_example, c.manifest, views=views, config=c.config,
                       overwrite=True)
    assert over.written == first.written
    assert _objects(bucket) == objects, "an overwrite of the same data changed keys or bytes"
    # the S3 store holds what a local store holds
    local = replace(c.config, offline_path=str(tmp_path / "local"))
    materialize(small_example, c.manifest, "local", views, config=local)
    for view in views:
        remote = OfflineStore(small_example, c.config, "dev", c.manifest).scan(view)
        here = OfflineStore(small_example, local, "local", c.manifest).scan(view)
        assert remote.num_rows > 0 and remote.equals(here), view


def test_s3_overwrite_killed_half_way_leaves_old_data(small_example: Path, bucket: str) -> None:
    c = _on_s3(small_example, bucket)
    view = "user_txn_aggs"
    spine = small_example / "data" / "spine.parquet"
    materialize(small_example, c.manifest, views=[view], config=c.config)
    store = OfflineStore(small_example, c.config, "dev", c.manifest)
    before = store.scan(view)
    report = TrainingReport()
    trained = training_set(small_example, c.manifest, c.config, "fraud_detection", spine,
                           report=report)
    assert report.reads[view] == "store"
    ours = [n for n in trained.column_names if n.startswith(f"{view}__")]
    trained = trained.select(ours)  # the other views of the service read the sources
    old = _objects(bucket)
    _double_amounts(small_example)  # so the overwrite writes new files
    kill_overwrite_after(small_example, view, 10)  # killed after 10 of ~330 files
    mid = _objects(bucket)
    garbage = set(mid) - set(old)
    lease = f"offline/dev/{view}/_writer.lease"
    assert lease in garbage, "the killed writer held the view's lease"
    garbage.discard(lease)
    assert len(garbage) >= 9 and all(k.endswith(".parquet") for k in garbage)
    assert {k: mid[k] for k in old} == old, "a live object was changed or deleted"
    assert store.scan(view).equals(before)
    from featql.jobs.online_load import default_scan

    online_scan, close = default_scan(c.manifest, small_example, c.config, "dev")
    try:  # online loading reads the store (the old tiles), not the changed sources
        assert online_scan(c.manifest.view(view), None, None).equals(before)
    finally:
        close()
    report = TrainingReport()
    assert same_tables(training_set(small_example, c.manifest, c.config, "fraud_detection",
                                    spine, report=report).select(ours), trained) == []
    assert report.reads[view] == "store"
    # the next run takes over the dead writer's lease at once (its pid is gone), completes the
    # overwrite, removes the garbage and releases the lease
    started = time.monotonic()
    materialize(small_example, c.manifest, views=[view], config=c.config,
                overwrite=True)
    assert time.monotonic() - started < LEASE_SECONDS
    done = _objects(bucket)
    assert lease not in done
    assert set(done) == _committed(bucket, done)
    assert not {k for k in old if k.endswith(".parquet")} & set(done)  # all replaced
    after = store.scan(view)
    assert after.num_rows == before.num_rows and not after.equals(before)
    fresh = training_set(small_example, c.manifest, c.config, "fraud_detection", spine,
                         use_store=False)
    report = TrainingReport()
    stored = training_set(small_example, c.manifest, c.config, "fraud_detection", spine,
                          report=report)
    assert report.reads[view] == "store"
    assert same_tables(fresh, stored) == []
    assert same_tables(stored.select(ours), trained) != []  # the amounts did change


@pytest.mark.parametrize("deletes", ["boto3", "pyarrow"])
def test_s3_failure_before_commit_then_recover(small_example: Path, bucket: str, deletes: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A run failing after its files are uploaded but before the snapshot: readers see the old
    data; `recover` (any later writer) deletes the uploaded files. Deletes go through boto3's
    batches, or pyarrow when boto3 is not installed."""
    import featql.offline.s3 as offline_s3

    if deletes == "pyarrow":
        monkeypatch.setattr(offline_s3, "_client", lambda: None)

    c = _on_s3(small_example, bucket)
    view = "user_last_txn"
    materialize(small_example, c.manifest, views=[view], config=c.config)
    store = OfflineStore(small_example, c.config, "dev", c.manifest)
    before = store.scan(view)
    old = _objects(bucket)
    lay = ViewLayout.of(c.manifest.view(view))
    changed = before.set_column(before.column_names.index("last_amount"), "last_amount",
                                pa.array([1.0] * before.num_rows))
    real_put = offline_s3._put

    def dying_put(fs: Any, path: str, text: str) -> None:
        if path.endswith(offline_s3.SNAPSHOT):
            raise KeyboardInterrupt("killed")
        real_put(fs, path, text)

    monkeypatch.setattr(offline_s3, "_put", dying_put)
    first = datetime.fromisoformat(c.manifest.view(view).start)
    intervals = [(datetime(2024, 1, d), datetime(2024, 1, d + 1)) for d in range(1, 15)]
    with pytest.raises(KeyboardInterrupt):
        store.write(lay, changed, intervals, open_below=first)
    monkeypatch.setattr(offline_s3, "_put", real_put)
    mid = _objects(bucket)
    assert len(set(mid) - set(old)) == 14 and {k: mid[k] for k in old} == old
    assert store.scan(view).equals(before)
    store.recover(view, lay.fingerprint)
    left = _objects(bucket)
    markers = {k for k in left if k.endswith("/")}  # pyarrow's empty folder objects
    assert {k: v for k, v in left.items() if k not in markers} == old
    assert not markers if deletes == "boto3" else all(left[k] == _EMPTY for k in markers)
    store.write(lay, changed, intervals, open_below=first)
    assert set(store.scan(view).column("last_amount").to_pylist()) == {1.0}
    objects = _objects(bucket)
    markers = {k for k in objects if k.endswith("/")}  # pyarrow's empty folder objects
    assert set(objects) - markers == _committed(bucket, objects)
    assert not markers if deletes == "boto3" else all(objects[k] == _EMPTY for k in markers)


def test_s3_overwrite_replaces_exactly_the_range(small_example: Path, bucket: str,
                                                 tmp_path: Path) -> None:
    c = _on_s3(small_example, bucket)
    views = ["user_last_txn", "user_txn_aggs"]
    materialize(small_example, c.manifest, views=views, config=c.config)
    store = OfflineStore(small_example, c.config, "dev", c.manifest)
    old = {v: store.scan(v) for v in views}
    _double_amounts(small_example)
    lo, hi = datetime(2024, 1, 5), datetime(2024, 1, 8)
    run = materialize(small_example, c.manifest, views=views, start=lo, end=hi,
                      config=c.config, overwrite=True)
    assert [v.written for v in run.views] == [3, 72]  # 3 days; 72 hours
    local = replace(c.config, offline_path=str(tmp_path / "local"))
    materialize(small_example, c.manifest, "fresh", views, config=local)
    fresh = OfflineStore(small_example, local, "fresh", c.manifest)
    for view in views:
        inside = store.scan(view, lo, hi)
        assert inside.num_rows > 0 and inside.equals(fresh.scan(view, lo, hi)), view
        assert not inside.equals(old[view].filter(_between(old[view], view, store, lo, hi)))
        for a, b in ((None, lo), (hi, None)):
            kept = store.scan(view, a, b)
            assert kept.num_rows > 0
            assert kept.equals(old[view].filter(_between(old[view], view, store, a, b))), view
    objects = _objects(bucket)
    assert set(objects) == _committed(bucket, objects), "replaced files were not deleted"
    assert not any(k.endswith("/") for k in objects)


def _between(table: pa.Table, view: str, store: OfflineStore, lo: datetime | None,
             hi: datetime | None) -> Any:
    t = table.column(store.layout(view).time_column)
    mask = pc.greater_equal(t, pa.scalar(lo or datetime.min, pa.timestamp("us")))
    return pc.and_(mask, pc.less(t, pa.scalar(hi or datetime.max, pa.timestamp("us"))))


def test_s3_store_without_snapshot_is_read_and_adopted(small_example: Path,
                                                       bucket: str) -> None:
    """A view folder written before the snapshot protocol (files `part-<interval>.parquet`,
    no `_snapshot.json`) reads as before; the first commit adopts its files."""
    from featql.engines.sources import s3_filesystem
    from featql.offline.s3 import SNAPSHOT

    c = _on_s3(small_example, bucket)
    view = "user_last_txn"
    materialize(small_example, c.manifest, views=[view], config=c.config)
    store = OfflineStore(small_example, c.config, "dev", c.manifest)
    before = store.scan(view)
    lay = ViewLayout.of(c.manifest.view(view))
    fs = s3_filesystem()
    vdir = store.view_dir(view, lay.fingerprint).split("://", 1)[1]
    s3 = _client()
    for path in store.files(view):  # rename to the old names, drop the snapshot
        key = path.split("://", 1)[1].split("/", 1)[1]
        s3.copy_object(Bucket=bucket, Key=key.rsplit("-", 1)[0] + ".parquet",
                       CopySource={"Bucket": bucket, "Key": key})
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_object(Bucket=bucket, Key=f"{vdir.split('/', 1)[1]}/{SNAPSHOT}")
    assert all(f.endswith("000.parquet") for f in store.files(view))
    assert store.scan(view).equals(before)
    day = (datetime(2024, 1, 9), datetime(2024, 1, 10))
    t = before.column(lay.time_column)
    one = before.filter(pc.and_(pc.greater_equal(t, pa.scalar(day[0], pa.timestamp("us"))),
                                pc.less(t, pa.scalar(day[1], pa.timestamp("us")))))
    store.write(lay, one.slice(0, 1), [day])
    after = store.scan(view)
    assert after.num_rows == before.num_rows - one.num_rows + 1
    assert fs.get_file_info(f"{vdir}/{SNAPSHOT}").size > 0
    objects = _objects(bucket)
    assert set(objects) == _committed(bucket, objects)
    assert sum(k.endswith("000.parquet") for k in objects) == len(store.files(view)) - 1


def test_s3_readers_see_one_commit_or_the_next_never_a_mix(small_example: Path,
                                                           bucket: str) -> None:
    """Scans running while a writer commits and sweeps over and over: each scan returns the
    whole data of one commit (a scan that loses a swept file lists the snapshot again)."""
    import threading

    c = _on_s3(small_example, bucket)
    view = "user_last_txn"
    materialize(small_example, c.manifest, views=[view], config=c.config)
    reader = OfflineStore(small_example, c.config, "dev", c.manifest)
    a = reader.scan(view)
    b = a.set_column(a.column_names.index("last_amount"), "last_amount",
                     pa.array([1.0] * a.num_rows))
    lay = ViewLayout.of(c.manifest.view(view))
    first = datetime.fromisoformat(c.manifest.view(view).start)
    intervals = [(datetime(2024, 1, d), datetime(2024, 1, d + 1)) for d in range(1, 15)]
    finished = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(6):
                OfflineStore(small_example, c.config, "dev", c.manifest).write(
                    lay, b if i % 2 == 0 else a, intervals, open_below=first)
        except BaseException as e:
            failures.append(e)
        finally:
            finished.set()

    writer = threading.Thread(target=write)
    writer.start()
    seen: list[str] = []
    while not finished.is_set() and len(seen) < 200:
        got = reader.scan(view)
        seen.append("a" if got.equals(a) else "b" if got.equals(b) else "mix")
    writer.join(timeout=120)
    assert not failures and seen and "mix" not in seen
    assert reader.scan(view).equals(a)  # the last commit wrote a
