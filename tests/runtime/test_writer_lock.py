"""One writer per view at a time: two real `featql materialize --overwrite` processes on one view
(the second a sub-range started 0.25 s into the first's transaction, or the same range) lose no
row, both exit 0, and the registry's intervals match the data; `recover` removes the staging of
dead writers only; a second writer waits (and says so), then gives up with a clear error.
Local folders and s3:// (moto's server)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from featql.core.errors import UserError
from featql.jobs.materialize import materialize
from featql.offline import locks
from featql.offline.store import OfflineStore, ViewLayout
from featql.registry.materializations import MaterializationState
from runtime.conftest import compiled
from runtime.test_offline_s3 import (  # noqa: F401  (fixtures)
    _committed,
    _double_amounts,
    _objects,
    _on_s3,
    bucket,
    moto_endpoint,
)

VIEW = "user_txn_aggs"  # hourly: ~330 files, a transaction of a few seconds when slowed

_SLOW_CLI = textwrap.dedent("""
    import sys, time
    import pyarrow.parquet as pq

    real = pq.write_table
    def slow(*args, **kwargs):
        real(*args, **kwargs)
        print("wrote", flush=True)
        time.sleep(float(sys.argv[1]))
    pq.write_table = slow
    from featql.cli.main import main
    sys.exit(main(sys.argv[2:]))
""")

_HOLDER = textwrap.dedent("""
    import sys
    from datetime import datetime
    from featql.compiler.project import compile_project
    from featql.offline.store import OfflineStore, ViewLayout

    c = compile_project(sys.argv[1])
    view = c.manifest.view(sys.argv[2])
    store = OfflineStore(sys.argv[1], c.config, "dev", c.manifest)
    hour = (datetime(2024, 1, 2), datetime(2024, 1, 2, 1))
    table = store.scan(view.name, *hour).slice(0, 1)  # new data for one interval: one tile
    txn = store.begin(ViewLayout.of(view))
    txn.add(table, [hour])
    print("staged", getattr(txn, "stage", ""), flush=True)
    sys.stdin.readline()
    txn.commit()
    print("committed", flush=True)
""")


def _env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "FEATQL_LOCK_TIMEOUT": "300"}


def _cli(root: Path, *args: str, delay: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _SLOW_CLI, str(delay), *args, "--project",
                             str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(), start_new_session=True)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def _per_interval(store: OfflineStore, state: MaterializationState, fp: str
                  ) -> dict[datetime, tuple[int, int, pa.Table]]:
    """start -> (recorded rows, rows stored in the interval, stored tiles) over the registry's
    intervals for the view (the first interval also holds every earlier row)."""
    import pyarrow.compute as pc

    done = state.done("dev", VIEW, fp)
    table = store.scan(VIEW)
    t = table.column(store.layout(VIEW).time_column)
    out = {}
    for i, d in enumerate(done):
        mask = pc.less(t, pa.scalar(d.end, pa.timestamp("us")))
        if i:
            mask = pc.and_(mask, pc.greater_equal(t, pa.scalar(d.start, pa.timestamp("us"))))
        part = table.filter(mask)
        out[d.start] = (d.rows, part.num_rows, part)
    return out


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def project(small_example: Path, where: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The small example, on local folders or on a fresh moto bucket, applied to `dev`."""
    if where == "s3":
        c = _on_s3(small_example, request.getfixturevalue("bucket"))
    else:
        c = compiled(small_example)
    code, _, err = _finish(_cli(small_example, "apply", "--yes"))
    assert code == 0, err
    yield c


def _data_files(c: Any, root: Path) -> dict[str, str]:
    """The data files of the view's folder (local: path -> sha256; s3: key -> sha256)."""
    import hashlib

    store = OfflineStore(root, c.config, "dev", c.manifest)
    vdir = store.view_dir(VIEW, c.manifest.view(VIEW).stored_as)
    if vdir.startswith("s3://"):
        bucket_name = vdir[len("s3://"):].split("/", 1)[0]
        prefix = vdir[len("s3://") + len(bucket_name) + 1:]
        return {k: v for k, v in _objects(bucket_name).items()
                if k.startswith(prefix) and k.endswith(".parquet")}
    return {str(p.relative_to(vdir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(vdir).rglob("*.parquet"))}


def _reference(root: Path) -> dict[datetime, tuple[int, int, pa.Table]]:
    """One clean run over the project's current sources, in a copy of it with a local store
    and a registry of its own: the rows every interval must hold."""
    ref = root.parent / "reference"
    shutil.copytree(root, ref, ignore=shutil.ignore_patterns(".featql", "offline", "target"))
    toml = ref / "featql.toml"
    toml.write_text(re.sub(r'path = "s3://[^"]+"', 'path = "data/offline"', toml.read_text()))
    for args in (["apply", "--yes"], ["materialize", "--view", VIEW]):
        code, _, err = _finish(_cli(ref, *args))
        assert code == 0, err
    c = compiled(ref)
    return _per_interval(OfflineStore(ref, c.config, "dev", c.manifest),
                         MaterializationState(ref), c.manifest.view(VIEW).stored_as)


@pytest.mark.parametrize("second", [["--start", "2024-01-05", "--end", "2024-01-06"], []],
                         ids=["staggered-subrange", "same-range"])
def test_overlapping_overwrites_lose_no_row(project: Any, small_example: Path,
                                            second: list[str]) -> None:
    c, root = project, small_example
    fp = c.manifest.view(VIEW).stored_as
    code, _, err = _finish(_cli(root, "materialize", "--view", VIEW))  # data to replace
    assert code == 0, err
    _double_amounts(root)  # new source data, so the overwrites write new files
    reference = _reference(root)
    assert len(reference) > 300 and all(r == n for r, n, _ in reference.values())
    # two overwrites at once: the second starts 0.25 s after the first has begun writing
    first = _cli(root, "materialize", "--view", VIEW, "--overwrite", delay=0.02)
    assert first.stdout is not None
    assert first.stdout.readline().startswith("wrote")  # its transaction is open
    time.sleep(0.25)
    other = _cli(root, "materialize", "--view", VIEW, "--overwrite", *second, delay=0.02)
    results = [_finish(first), _finish(other)]
    for code, _out, err in results:
        assert code == 0, err
        assert "internal error" not in err and "Traceback" not in err, err
    store = OfflineStore(root, c.config, "dev", c.manifest)
    after = _per_interval(store, MaterializationState(root), fp)
    assert sorted(after) == sorted(reference)
    lost = {s: (reference[s][1], after[s][1]) for s in reference
            if reference[s][1] != after[s][1]}
    assert not lost, (f"{sum(a - b for a, b in lost.values())} of "
                      f"{sum(r[1] for r in reference.values())} rows lost in {len(lost)} "
                      f"intervals, from {min(lost)}")
    for s, (recorded, stored, tiles) in after.items():
        assert recorded == stored, s  # the registry's intervals match the data
        assert tiles.equals(reference[s][2]), s  # and the data is the clean run's
    vdir = store.view_dir(VIEW, fp)
    if vdir.startswith("s3://"):  # every data object is committed: nothing dangles
        bucket_name = vdir[len("s3://"):].split("/", 1)[0]
        objects = _objects(bucket_name)
        assert {k for k in objects if k.endswith(".parquet")} == {
            k for k in _committed(bucket_name, objects) if k.endswith(".parquet")}
    else:
        assert not [p for p in Path(vdir).iterdir() if p.name.startswith("_staging-")]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


class _Recorder:
    """A `Progress` remembering every description it was given."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def task(self, description: str, total: int) -> Any:
        import contextlib

        recorder = self

        @contextlib.contextmanager
        def ctx() -> Iterator[Any]:
            def advance(n: int = 1, description: str | None = None) -> None:
                if description is not None:
                    recorder.seen.append(description)
            recorder.seen.append(description)
            yield advance

        return ctx()


def test_recover_spares_a_live_writer_and_removes_a_dead_ones(
        project: Any, small_example: Path, where: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    c, root = project, small_example
    materialize(root, c.manifest, views=[VIEW], config=c.config)
    store = OfflineStore(root, c.config, "dev", c.manifest)
    before = store.scan(VIEW)
    lay = ViewLayout.of(c.manifest.view(VIEW))
    vdir = store.view_dir(VIEW, lay.fingerprint)
    files = _data_files(c, root)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(root), VIEW],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=_env(), start_new_session=True)
    try:
        assert holder.stdin is not None and holder.stdout is not None
        line = holder.stdout.readline().split()
        assert line[0] == "staged", line
        uploaded = set(_data_files(c, root)) - set(files)
        dead = live = None
        if where == "local":
            live = Path(vdir) / line[1]
            record = json.loads((live / "_writer.json").read_text())
            assert record["pid"] == holder.pid and record["host"] == socket.gethostname()
            dead = Path(vdir) / "_staging-0000deadbeef"
            (dead / "date=2024-01-03").mkdir(parents=True)
            (dead / "date=2024-01-03" / "part-20240103T000000.parquet").write_bytes(b"x")
            (dead / "_writer.json").write_text(json.dumps(
                {"pid": _dead_pid(), "host": socket.gethostname(), "started": None,
                 "owner": "x"}))
        if where == "s3":
            assert uploaded, "the holder has uploaded files it has not committed yet"
        store.recover(VIEW, lay.fingerprint)  # the lock is held by the live holder
        if dead is not None and live is not None:
            assert not dead.exists(), "a dead writer's staging must go"
            assert (live / "_writer.json").exists(), "a live writer's staging must stay"
        assert uploaded <= set(_data_files(c, root)), "a live writer's uploads must stay"
        assert store.scan(VIEW).equals(before)
        # a second writer waits, says so, then gives up with a clear error
        monkeypatch.setenv("FEATQL_LOCK_TIMEOUT", "0.5")
        progress = _Recorder()
        with pytest.raises(UserError, match=r"timed out after 0.5s waiting for another writer "
                                            rf"of view '{VIEW}' in workspace 'dev' \(held by "
                                            rf"pid {holder.pid} on "):
            materialize(root, c.manifest, views=[VIEW], config=c.config, overwrite=True,
                        progress=progress)
        assert f"waiting for another materialize of {VIEW}..." in progress.seen
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "committed"
        assert holder.wait(timeout=60) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    after = store.scan(VIEW)
    assert after.num_rows < before.num_rows  # the holder's commit replaced Jan 2 00:00-01:00
    if where == "local":
        assert not [p for p in Path(vdir).iterdir() if p.name.startswith(("_staging-",
                                                                           "_trash-"))]
    # once the lock is free, a writer that waits gets it and completes
    monkeypatch.setenv("FEATQL_LOCK_TIMEOUT", "30")
    materialize(root, c.manifest, views=[VIEW], config=c.config, overwrite=True)
    assert store.scan(VIEW).equals(before)
    assert _data_files(c, root) == files


def test_s3_lease_takes_over_only_a_stale_lease(bucket: str) -> None:  # noqa: F811
    import boto3

    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    key = "offline/dev/v/_writer.lease"

    def other(expires: float) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=json.dumps(
            {"pid": 1, "host": "elsewhere", "started": None, "owner": "o",
             "expires": expires}).encode())

    lock = locks.view_lock(f"s3://{bucket}/offline", None, "dev", "v")
    assert isinstance(lock, locks.S3Lease)
    other(time.time() + 60)  # a live lease of another machine
    with pytest.raises(UserError, match="held by pid 1 on elsewhere"):
        lock.acquire(timeout=0.3)
    other(time.time() - 1)  # expired: taken over
    lock.acquire(timeout=5)
    try:
        doc = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert doc["pid"] == os.getpid() and doc["owner"] == lock.me.owner
        second = locks.view_lock(f"s3://{bucket}/offline", None, "dev", "v")
        assert not second.try_acquire()  # one holder at a time
    finally:
        lock.release()
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=key)
    # a held lease is renewed, so a long transaction keeps it
    short = locks.S3Lease(client, bucket, key, "v", lease_seconds=0.6)
    assert short.try_acquire()
    try:
        time.sleep(1.5)
        short.check()
        doc = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert doc["owner"] == short.me.owner and doc["expires"] > time.time()
    finally:
        short.release()


def test_s3_without_boto3_locks_beside_the_project(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locks, "s3_client", lambda: None)
    lock = locks.view_lock("s3://b/offline", str(tmp_path), "dev", "v")
    assert isinstance(lock, locks.FileLock)
    assert lock.path.parent == tmp_path / ".featql" / "locks"
    with lock.acquire():
        again = locks.view_lock("s3://b/offline", str(tmp_path), "dev", "v")
        assert not again.try_acquire()
    assert again.try_acquire()
    again.release()
