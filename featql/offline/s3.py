"""The offline store's commit protocol on `s3://`: content-named files and one snapshot object.

S3 has no rename, so a view folder there is never changed in place:

- a data file is named after its interval and its bytes,
  `part-<interval>-<first 16 hex of sha256(bytes)>.parquet`: new content is a new key, so a
  write never replaces a file a reader may be reading, and writing the same data again writes
  the same key with the same bytes (an upload is skipped when the snapshot already lists it);
- `_snapshot.json` lists the live files of every partition,
  `{"format": 1, "partitions": {"date=2024-01-01[/hour=05]": ["part-...parquet", ...]}}`.
  It is written last, in one PUT (atomic on S3: readers see the old object or the new one,
  never a part), and is the commit point. Readers take their file list from it, never from a
  listing;
- objects under `date=` that the snapshot does not list are garbage: the files of a run killed
  before its snapshot, or the files a commit replaced. A writer deletes them after its own
  snapshot is committed, never before (the first commit of a run sweeps the whole view; later
  commits in the same run delete what they replaced), in DeleteObjects batches of 1000 through
  boto3 when it is installed, else one pyarrow delete per file. A reader still holding the previous
  snapshot meets a missing file and re-reads the snapshot (`OfflineStore.scan` retries).
- `_featql_view.json` is written after the snapshot, so a new fingerprint becomes the "latest"
  (for readers without a manifest) only once it has committed data.

The snapshot is deterministic (partitions and names sorted, no times, no run ids), so a re-run
over the same data leaves every key and byte unchanged. One writer per view at a time: a
transaction holds the view's writer lock (`featql.offline.locks`: a lease object taken with a
conditional PUT, through boto3) from before it reads the snapshot until its sweep is done, so
a sweep never deletes the uploads of a writer that has not committed yet, and a snapshot never
drops what another writer committed meanwhile. The lease is checked right before the snapshot
PUT; a writer that lost it commits nothing.
A view folder without a snapshot (written before this protocol) is read by listing its
`part-<interval>.parquet` files, and the first commit adopts them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import warnings
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from featql.engines.sources import s3_filesystem, s3_key
from featql.offline.locks import WriterLock, s3_client
from featql.offline.store import (
    META,
    PARQUET_OPTIONS,
    ViewLayout,
    file_interval,
    interval_token,
    meta_json,
    split_rows,
)

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from featql.offline.store import OfflineStore

SNAPSHOT = "_snapshot.json"
FORMAT = 1
_LEGACY = re.compile(r"^part-\d{8}T\d{6}\.parquet$")

Live = dict[str, tuple[str, ...]]
"""partition (`date=2024-01-01[/hour=05]`) -> live file names, sorted."""


def live_files(store: OfflineStore, vdir: str, hourly: bool) -> Live:
    """The committed files of a view folder: its snapshot, or the legacy layout's files."""
    snap = read_snapshot(vdir)
    if snap is not None:
        return snap
    out: Live = {}
    for p in store._partitions(vdir, hourly):
        names = tuple(f for f in store._listdir(f"{vdir}/{p}") if _LEGACY.match(f))
        if names:
            out[p] = names
    return out


def read_snapshot(vdir: str) -> Live | None:
    try:
        with s3_filesystem().open_input_stream(s3_key(f"{vdir}/{SNAPSHOT}")) as f:
            doc = json.loads(bytes(f.read()).decode())
    except FileNotFoundError:
        return None
    if doc.get("format") != FORMAT:
        from featql.core.errors import UserError

        raise UserError(f"{vdir}/{SNAPSHOT} has format {doc.get('format')!r}; this featql "
                        f"reads format {FORMAT}")
    return {p: tuple(names) for p, names in doc["partitions"].items()}


def snapshot_json(live: Live) -> str:
    parts = {p: sorted(names) for p, names in sorted(live.items()) if names}
    return json.dumps({"format": FORMAT, "partitions": parts}, sort_keys=True, indent=1) + "\n"


class S3WriteTxn:
    """Upload new files under content names; `commit()` PUTs the snapshot, then sweeps."""

    def __init__(self, store: OfflineStore, lay: ViewLayout, lock: WriterLock,
                 own_lock: bool = True) -> None:
        self.store, self.lay = store, lay
        self.lock, self.own_lock = lock, own_lock
        self.vdir = store.view_dir(lay.view, lay.fingerprint)
        self.fs = s3_filesystem()
        self.base = live_files(store, self.vdir, lay.hourly)
        self.tokens: set[str] = set()
        self.new: dict[tuple[str, str], str] = {}  # (partition, interval token) -> file name
        self.uploaded: set[str] = set()  # "<partition>/<name>" put by this transaction

    def add(self, table: pa.Table, intervals: list[tuple[datetime, datetime]],
            open_below: datetime | None = None) -> dict[datetime, tuple[int, int]]:
        """Upload `table`'s rows as the data of `intervals` (see `WriteTxn.add`)."""
        files, stats = split_rows(self.lay, table, intervals, open_below)
        tokens = {interval_token(a) for a, _ in intervals}
        self.tokens |= tokens
        self.new = {k: v for k, v in self.new.items() if k[1] not in tokens}
        live = {f"{p}/{f}" for p, names in self.base.items() for f in names}
        for p, parts in sorted(files.items()):
            for name, part in parts.items():
                body = parquet_bytes(part)
                token = file_interval(name)
                final = f"part-{token}-{hashlib.sha256(body).hexdigest()[:16]}.parquet"
                self.new[(p, token)] = final
                rel = f"{p}/{final}"
                if rel not in live and rel not in self.uploaded:
                    with self.fs.open_output_stream(s3_key(f"{self.vdir}/{rel}")) as out:
                        out.write(body)
                    self.uploaded.add(rel)
        return stats

    def commit(self) -> None:
        snap: dict[str, list[str]] = {}
        for p, names in self.base.items():
            snap[p] = [f for f in names if file_interval(f) not in self.tokens]
        for (p, _), name in self.new.items():
            snap.setdefault(p, []).append(name)
        live: Live = {p: tuple(sorted(v)) for p, v in snap.items() if v}
        self.lock.check()  # a writer that lost its lease must not commit
        _put(self.fs, f"{self.vdir}/{SNAPSHOT}", snapshot_json(live))  # the commit point
        _put(self.fs, f"{self.vdir}/{META}", meta_json(self.lay))
        if self.vdir in self.store._swept:
            keep = {f"{p}/{f}" for p, names in live.items() for f in names}
            delete(self.fs, self.vdir, sorted({f"{p}/{f}" for p, names in self.base.items()
                                               for f in names} - keep))
        else:
            sweep(self.fs, self.vdir, live)
            self.store._swept.add(self.vdir)
        self.base, self.tokens, self.new, self.uploaded = live, set(), {}, set()
        self.close()

    def abort(self) -> None:
        """Delete what this transaction uploaded (nothing committed lists it)."""
        delete(self.fs, self.vdir, sorted(self.uploaded))
        self.uploaded = set()
        self.close()

    def close(self) -> None:
        """Release the lock if this transaction took it (idempotent; uploads not committed are
        left for the next writer's sweep)."""
        if self.own_lock:
            self.lock.release()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    return bytes(sink.getvalue())


def sweep(fs: pafs.S3FileSystem, vdir: str, live: Live) -> int:
    """Delete every data file under the view folder that `live` does not list; their count."""
    import pyarrow.fs as pafs

    root = s3_key(vdir)
    keep = {f"{p}/{f}" for p, names in live.items() for f in names}
    sel = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    garbage = sorted(rel for info in fs.get_file_info(sel)
                     if info.type == pafs.FileType.File
                     and (rel := info.path[len(root) + 1:]).startswith("date=")
                     and rel.endswith(".parquet") and rel not in keep)
    delete(fs, vdir, garbage)
    return len(garbage)


def delete(fs: pafs.S3FileSystem, vdir: str, rels: list[str]) -> None:
    """Delete files (paths relative to the view folder): batched DeleteObjects through boto3
    when it is installed (1 request per 1000 keys), else one pyarrow delete per file. A delete
    that fails leaves garbage for the next sweep, never a problem for readers."""
    if not rels:
        return
    bucket, _, prefix = s3_key(vdir).partition("/")
    client = _client()
    if client is None:
        _delete_with_pyarrow(fs, s3_key(vdir), rels)
        return
    keys = [f"{prefix}/{rel}" if prefix else rel for rel in rels]
    for i in range(0, len(keys), 1000):
        batch = {"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True}
        errors = client.delete_objects(Bucket=bucket, Delete=batch).get("Errors", [])
        if errors:
            warnings.warn(f"could not delete {len(errors)} unused files under {vdir} (left for "
                          f"the next run): {errors[0].get('Message', errors[0])}",
                          stacklevel=2)


def _client() -> Any:
    return s3_client()


def _delete_with_pyarrow(fs: pafs.S3FileSystem, root: str, rels: list[str]) -> None:
    """pyarrow leaves an empty `dir/` marker object where it deleted a file; the markers of
    folders left without files go too (those of folders still holding files stay: harmless)."""
    import pyarrow.fs as pafs

    for rel in rels:
        with contextlib.suppress(FileNotFoundError):
            fs.delete_file(f"{root}/{rel}")
    dirs = {rel.rsplit("/", 1)[0] for rel in rels if "/" in rel}
    dirs |= {d.split("/", 1)[0] for d in dirs}
    for d in sorted(dirs, key=lambda d: (-d.count("/"), d)):  # hour folders before dates
        sel = pafs.FileSelector(f"{root}/{d}", recursive=True, allow_not_found=True)
        infos = fs.get_file_info(sel)
        if not any(i.type == pafs.FileType.File for i in infos) and (
                infos or fs.get_file_info(f"{root}/{d}").type != pafs.FileType.NotFound):
            fs.delete_dir(f"{root}/{d}")


def _put(fs: pafs.S3FileSystem, path: str, text: str) -> None:
    with fs.open_output_stream(s3_key(path)) as out:
        out.write(text.encode())
