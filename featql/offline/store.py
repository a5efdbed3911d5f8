"""The offline store: Parquet per workspace, view and view fingerprint, by event date (and hour).

Layout of a view folder `<path>/<workspace>/<view>/<fingerprint>/`, where `<fingerprint>` is the
view's storage fingerprint (`FeatureView.stored_as`: its fingerprint without the TTL and an
aggregate's windows, which apply when reading):

    _featql_view.json                        the stored columns, keys, time column, and the
                                             identity of each stored column group
    date=YYYY-MM-DD/[hour=HH/]<file>.parquet    the data, partitioned by event time
    _snapshot.json                           s3:// only: the live files (the commit point)

`hour=` appears for views scheduled more often than daily; the time column is the view's
timestamp (row-level views) or `_tile_start` (aggregate views, which store tiles). A changed
definition has a new fingerprint, so its data never mixes with the old. `<file>` is
`part-<interval>` locally and `part-<interval>-<content hash>` on S3, where `<interval>` is the
start of the materialization interval that wrote it (`20240101T000000`).

Files are deterministic: rows sorted by (time, keys, every other column), fixed Parquet writer
options, names derived from the data's intervals (and, on S3, bytes), so rewriting the same data
gives the same bytes under the same names.

Every write is one transaction (`begin` / `add` / `commit`): a failure at any point leaves the
previous data readable and whole, never a mix. A transaction holds its view's writer lock
(`featql.offline.locks`: an flock locally, a conditional-PUT lease on S3) from `begin` until
its commit is finished, so concurrent writers of a view run one after the other: a second
writer waits for the first, never removes or overwrites what the first is staging. Two
protocols, one per kind of storage:

- Local folders: new partitions are built in `_staging-<token>/`, then a journal
  `_swap-<token>.json` is written (the commit point) and partitions are swapped by renames. A
  run killed before the journal leaves the old data untouched (its staging folder is removed by
  the next writer); after it, readers already see the new partitions and the next writer
  finishes the swap. A staging folder holds `_writer.json`, its writer's pid, host and start
  time: `recover` removes a staging folder only when its writer is dead (its pid is gone, or
  the view's lock is free), never one a live writer is filling. Every `.parquet` file under
  `date=` is live once no swap is pending, so the folder stays a plain partitioned Parquet
  dataset any tool can read.
- `s3://` (no rename): content-named files that never overwrite a live one, and the snapshot
  object written last in one PUT; readers list files from the snapshot, and files it does not
  list are garbage deleted by the next writer after its own commit (see `offline_s3`).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featql.core.config import ProjectConfig
from featql.core.errors import UserError
from featql.core.ir import FeatureView, Manifest
from featql.engines.sources import is_s3, s3_filesystem, s3_key
from featql.offline.locks import Writer, WriterLock, view_lock
from featql.semantics.arrow_types import arrow_type

if TYPE_CHECKING:
    from featql.offline.s3 import S3WriteTxn

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd", "compression_level": 3, "row_group_size": 131_072,
    "use_dictionary": True, "write_statistics": True, "version": "2.6",
    "data_page_version": "1.0",
}
META = "_featql_view.json"
TILE_START = "_tile_start"
WRITER = "_writer.json"  # in a staging folder: its writer (`locks.Writer`)
_OPEN_STAGES: dict[str, WriterLock] = {}  # this process's open transactions: stage -> lock


@dataclass(frozen=True)
class ViewLayout:
    view: str
    fingerprint: str
    kind: str
    time_column: str
    keys: tuple[str, ...]
    hourly: bool
    columns: tuple[tuple[str, str], ...]  # (name, featql type) in lowered order
    # (column group, identity of its stored values): FeatureView.stored, so a later definition
    # can reuse the groups it shares (featql.jobs.reuse)
    stored: tuple[tuple[str, str], ...] = ()
    start: str = ""  # the view's start: its first interval also holds every earlier row

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(n, arrow_type(t)) for n, t in self.columns])

    @staticmethod
    def of(view: FeatureView) -> ViewLayout:
        from featql.dialects.contract import lowered_columns

        return ViewLayout(view.name, view.stored_as, view.kind,
                          TILE_START if view.kind == "aggregate" else view.timestamp,
                          tuple(k.name for k in view.keys), view.schedule_seconds < 86400,
                          tuple((c.name, c.type) for c in lowered_columns(view)), view.stored,
                          str(view.start) if view.stored else "")


def interval_token(t: datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%S")


def partition_of(t: datetime, hourly: bool) -> str:
    return f"date={t:%Y-%m-%d}" + (f"/hour={t:%H}" if hourly else "")


class OfflineStore:
    """The offline store of a project's workspace.

    `OfflineStore(project_root, config, workspace="dev", manifest=None)`: the folder comes from
    `[offline] path` (relative to the project, or s3://). With a manifest, `scan` reads each view's
    current fingerprint; without one, the most recently written fingerprint of the view.
    `OfflineStore.at(path, workspace, manifest)` opens a store folder directly.
    """

    def __init__(self, project_root: str | Path, config: ProjectConfig | None = None,
                 workspace: str = "dev", manifest: Manifest | None = None) -> None:
        path = (config or ProjectConfig()).offline_path
        if not is_s3(path) and not Path(path).is_absolute():
            path = str((Path(project_root) / path).resolve())
        self.path = path.rstrip("/")
        self.project_root: str | None = str(Path(project_root).resolve())
        self.workspace = workspace
        self.manifest = manifest
        self._swept: set[str] = set()  # S3 view folders this store's writers swept

    @staticmethod
    def at(path: str | Path, workspace: str = "dev",
           manifest: Manifest | None = None) -> OfflineStore:
        store = OfflineStore(".", None, workspace, manifest)
        store.project_root = None
        store.path = str(path).rstrip("/") if is_s3(str(path)) else str(Path(path).resolve())
        return store

    # -- locations ---------------------------------------------------------------------------
    def view_dir(self, view: str, fingerprint: str) -> str:
        return f"{self.path}/{self.workspace}/{view}/{fingerprint}"

    def layout(self, view: str, fingerprint: str | None = None) -> ViewLayout:
        if self.manifest is not None:
            fv = self.manifest.view(view)
            if fv is not None and fingerprint in (None, fv.stored_as):
                return ViewLayout.of(fv)
        fp = fingerprint or self._latest_fingerprint(view)
        meta = json.loads(self._read_text(f"{self.view_dir(view, fp)}/{META}"))
        return ViewLayout(meta["view"], meta["fingerprint"], meta["kind"], meta["time_column"],
                          tuple(meta["keys"]), meta["hourly"],
                          tuple((n, t) for n, t in meta["columns"]),
                          tuple((g, i) for g, i in meta.get("stored", ())),
                          meta.get("start", ""))

    def stored_fingerprints(self, view: str) -> list[str]:
        """The storage fingerprints the view has data folders for in this workspace."""
        base = f"{self.path}/{self.workspace}/{view}"
        return [d for d in self._listdir(base) if self._exists(f"{base}/{d}/{META}")]

    def _latest_fingerprint(self, view: str) -> str:
        base = f"{self.path}/{self.workspace}/{view}"
        metas = [(self._mtime(f"{base}/{d}/{META}"), d) for d in self._listdir(base)]
        metas = [m for m in metas if m[0] is not None]
        if not metas:
            raise UserError(f"nothing materialized for view '{view}' in workspace "
                            f"'{self.workspace}' under {self.path}")
        return max(metas)[1]

    # -- reading -----------------------------------------------------------------------------
    def files(self, view: str, fingerprint: str | None = None, start: datetime | None = None,
              end: datetime | None = None) -> list[str]:
        """The Parquet files holding [start, end) of a view, after partition pruning."""
        lay = self.layout(view, fingerprint)
        vdir = self.view_dir(view, lay.fingerprint)
        if is_s3(vdir):  # the committed snapshot, never a listing
            from featql.offline.s3 import live_files

            snap = live_files(self, vdir, lay.hourly)
            return [f"{vdir}/{p}/{f}" for p in sorted(snap)
                    if _partition_overlaps(p, start, end) for f in snap[p]]
        live = {p: f"{vdir}/{p}" for p in self._partitions(vdir, lay.hourly)}
        for journal in self._journals(vdir):  # a swap in progress: read its new partitions
            for p in journal["replace"]:
                staged = f"{vdir}/{journal['stage']}/{p}"
                if self._exists(staged):
                    live[p] = staged
            for p in journal["delete"]:
                if not self._exists(f"{vdir}/{journal['trash']}/{p}"):
                    live.pop(p, None)
        out: list[str] = []
        for p in sorted(live):
            if not _partition_overlaps(p, start, end):
                continue
            out.extend(f"{live[p]}/{f}" for f in sorted(self._listdir(live[p]))
                       if f.endswith(".parquet") and not f.startswith(("_", ".")))
        return out

    def scan(self, view: str, start: datetime | str | None = None,
             end: datetime | str | None = None, columns: list[str] | None = None,
             fingerprint: str | None = None) -> pa.Table:
        """Rows (or tiles) of a view with start <= time < end; only `columns` are read."""
        import pyarrow.dataset as ds

        lo, hi = _time(start), _time(end)
        lay = self.layout(view, fingerprint)
        schema = lay.schema
        cols = columns or list(schema.names)
        unknown = [c for c in cols if c not in schema.names]
        if unknown:
            raise UserError(f"view '{view}' has no stored column '{unknown[0]}'")
        for attempt in range(3):
            files = self.files(view, lay.fingerprint, lo, hi)
            if not files:
                return schema.empty_table().select(cols)
            filt = None
            t = ds.field(lay.time_column)
            if lo is not None:
                filt = t >= pa.scalar(lo, pa.timestamp("us"))
            if hi is not None:
                cond = t < pa.scalar(hi, pa.timestamp("us"))
                filt = cond if filt is None else (filt & cond)
            paths = [s3_key(f) for f in files] if is_s3(self.path) else files
            try:
                dataset = ds.dataset(paths, schema=schema, format="parquet",
                                     filesystem=self._fs())
                return dataset.to_table(columns=cols, filter=filt)
            except OSError as e:
                # a writer committed meanwhile and removed a file we listed: list again (S3
                # reports a key gone between HEAD and GET as a plain OSError)
                gone = isinstance(e, FileNotFoundError) or (
                    self.files(view, lay.fingerprint, lo, hi) != files)
                if attempt == 2 or not gone:
                    raise
        raise AssertionError("unreachable")

    def read(self, view: str, fingerprint: str, files: list[str], start: datetime | None,
             end: datetime | None, columns: list[str]) -> pa.Table:
        """`scan` over files listed before (`files`), for a caller holding the view's writer
        lock, so that none of them can go meanwhile: rows with start <= time < end."""
        import pyarrow.dataset as ds

        lay = self.layout(view, fingerprint)
        files = [f for f in files if _partition_overlaps(_partition(f), start, end)]
        if not files:
            return lay.schema.empty_table().select(columns)
        t = ds.field(lay.time_column)
        filt = t < pa.scalar(end, pa.timestamp("us")) if end is not None else None
        if start is not None:
            low = t >= pa.scalar(start, pa.timestamp("us"))
            filt = low if filt is None else (low & filt)
        paths = [s3_key(f) for f in files] if is_s3(self.path) else files
        dataset = ds.dataset(paths, schema=lay.schema, format="parquet", filesystem=self._fs())
        return dataset.to_table(columns=columns, filter=filt)

    # -- writing -----------------------------------------------------------------------------
    def writer_lock(self, view: str) -> WriterLock:
        """The writer lock of a view (not yet acquired): `lock.acquire(on_wait)` waits for
        other writers (up to FEATQL_LOCK_TIMEOUT seconds), `lock.release()`."""
        return view_lock(self.path, self.project_root, self.workspace, view)

    def begin(self, lay: ViewLayout, lock: WriterLock | None = None,
              on_wait: Callable[[Writer | None], None] | None = None,
              ) -> WriteTxn | S3WriteTxn:
        """Start replacing intervals of a view; nothing is visible before `commit()`.

        The transaction holds the view's writer lock until `commit()` or `close()`: `lock`, one
        the caller acquired and keeps (released by the caller, for several transactions in a
        row), or else its own, acquired here (waiting for other writers, `on_wait` told once)."""
        own = lock is None
        held = self.writer_lock(lay.view).acquire(on_wait) if lock is None else lock
        held.check()
        try:
            if is_s3(self.path):
                from featql.offline.s3 import S3WriteTxn

                return S3WriteTxn(self, lay, held, own)
            return WriteTxn(self, lay, held, own)
        except BaseException:
            if own:
                held.release()
            raise

    def write(self, lay: ViewLayout, table: pa.Table,
              intervals: list[tuple[datetime, datetime]], *, open_below: datetime | None = None,
              ) -> dict[datetime, tuple[int, int]]:
        """Replace the data of `intervals` by `table`'s rows in one transaction."""
        txn = self.begin(lay)
        try:
            stats = txn.add(table, intervals, open_below)
            txn.commit()
        finally:
            txn.close()  # the lock is free again; what a failure staged is left for recover
        return stats

    def recover(self, view: str, fingerprint: str) -> None:
        """Clean up after dead writers: finish swaps that were committed and drop the staging
        of killed runs; on S3, delete the files the committed snapshot does not list.

        Only what dead writers left is touched. When the view's writer lock is free (taken
        here for the clean-up), every writer is dead and all of it goes. When another process
        holds it, only staging folders whose writer's pid is gone (on this host) are removed;
        swaps and, on S3, uncommitted files are left to the holder."""
        vdir = self.view_dir(view, fingerprint)
        if is_s3(self.path):
            if not self._exists(f"{vdir}/{META}"):
                return
        elif not os.path.isdir(vdir):
            return
        lock = self.writer_lock(view)
        if lock.try_acquire():
            try:
                self._recover(view, fingerprint, locked=True)
            finally:
                lock.release()
        else:
            self._recover(view, fingerprint, locked=False)

    def _recover(self, view: str, fingerprint: str, locked: bool) -> None:
        """`recover`; `locked`: this process holds the view's writer lock."""
        vdir = self.view_dir(view, fingerprint)
        if is_s3(self.path):
            from featql.offline.s3 import live_files, sweep

            if locked and self._exists(f"{vdir}/{META}"):
                sweep(s3_filesystem(), vdir,
                      live_files(self, vdir, self.layout(view, fingerprint).hourly))
            return
        if not os.path.isdir(vdir):
            return
        if locked:
            for name in sorted(os.listdir(vdir)):
                if name.startswith("_swap-") and name.endswith(".json"):
                    journal = json.loads(Path(vdir, name).read_text())
                    _finish_swap(vdir, journal, name[len("_swap-"):-len(".json")])
        for name in sorted(os.listdir(vdir)):
            if not name.startswith(("_staging-", "_trash-")):
                continue
            stage = f"{vdir}/_staging-{name.split('-', 1)[1]}"
            owner = _OPEN_STAGES.get(stage)
            if owner is not None and owner.held:  # an open transaction of this process
                continue
            if locked or (name.startswith("_staging-") and _writer_gone(stage)):
                shutil.rmtree(f"{vdir}/{name}", ignore_errors=True)

    # -- file system helpers (local paths or s3://) -----------------------------------------
    def _fs(self) -> object | None:
        return s3_filesystem() if is_s3(self.path) else None

    def _listdir(self, path: str) -> list[str]:
        if is_s3(path):
            import pyarrow.fs as pafs

            sel = pafs.FileSelector(s3_key(path), allow_not_found=True)
            return sorted(i.base_name for i in s3_filesystem().get_file_info(sel))
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def _exists(self, path: str) -> bool:
        if is_s3(path):
            import pyarrow.fs as pafs

            info = s3_filesystem().get_file_info(s3_key(path))
            return info.type != pafs.FileType.NotFound
        return os.path.exists(path)

    def _mtime(self, path: str) -> float | None:
        if is_s3(path):
            import pyarrow.fs as pafs

            info = s3_filesystem().get_file_info(s3_key(path))
            if info.type == pafs.FileType.NotFound:
                return None
            return info.mtime.timestamp() if info.mtime else 0.0
        return os.path.getmtime(path) if os.path.exists(path) else None

    def _read_text(self, path: str) -> str:
        if is_s3(path):
            with s3_filesystem().open_input_stream(s3_key(path)) as f:
                return bytes(f.read()).decode()
        return Path(path).read_text()

    def _partitions(self, vdir: str, hourly: bool) -> list[str]:
        dates = [d for d in self._listdir(vdir) if d.startswith("date=")]
        if not hourly:
            return dates
        return [f"{d}/{h}" for d in dates for h in self._listdir(f"{vdir}/{d}")
                if h.startswith("hour=")]

    def _journals(self, vdir: str) -> list[dict[str, list[str] | str]]:
        return [json.loads(self._read_text(f"{vdir}/{n}")) for n in self._listdir(vdir)
                if n.startswith("_swap-") and n.endswith(".json")]


class WriteTxn:
    """Local folders: new files go to `_staging-<token>/`; `commit()` swaps the touched
    partitions in (S3: `offline_s3.S3WriteTxn`, same methods)."""

    def __init__(self, store: OfflineStore, lay: ViewLayout, lock: WriterLock,
                 own_lock: bool = True) -> None:
        self.store, self.lay = store, lay
        self.lock, self.own_lock = lock, own_lock
        self.vdir = store.view_dir(lay.view, lay.fingerprint)
        self.token = uuid.uuid4().hex[:12]
        self.stage = f"_staging-{self.token}"
        self.new_parts: set[str] = set()
        self.tokens: set[str] = set()
        store._recover(lay.view, lay.fingerprint, locked=True)
        os.makedirs(f"{self.vdir}/{self.stage}", exist_ok=True)
        _OPEN_STAGES[f"{self.vdir}/{self.stage}"] = lock
        _write_text(f"{self.vdir}/{self.stage}/{WRITER}", lock.me.to_json())

    def add(self, table: pa.Table, intervals: list[tuple[datetime, datetime]],
            open_below: datetime | None = None) -> dict[datetime, tuple[int, int]]:
        """Stage `table`'s rows as the data of `intervals` (the interval starting at
        `open_below`, a view's first, also takes every earlier row); {start: (rows, files)}."""
        files, stats = split_rows(self.lay, table, intervals, open_below)
        self.tokens |= {interval_token(a) for a, _ in intervals}
        for p, parts in sorted(files.items()):
            os.makedirs(f"{self.vdir}/{self.stage}/{p}", exist_ok=True)
            self.new_parts.add(p)
            for name, part in parts.items():
                pq.write_table(part, f"{self.vdir}/{self.stage}/{p}/{name}", **PARQUET_OPTIONS)
        return stats

    def commit(self) -> None:
        vdir, store = self.vdir, self.store
        self.lock.check()
        _write_text(f"{vdir}/{META}", meta_json(self.lay))
        touched = set(self.new_parts)
        for p in store._partitions(vdir, self.lay.hourly):
            if any(file_interval(f) in self.tokens for f in store._listdir(f"{vdir}/{p}")):
                touched.add(p)
        replace, delete = [], []
        for p in sorted(touched):
            staged = f"{vdir}/{self.stage}/{p}"
            kept = [f for f in store._listdir(f"{vdir}/{p}")
                    if f.endswith(".parquet") and file_interval(f) not in self.tokens]
            if not kept and p not in self.new_parts:
                delete.append(p)
                continue
            os.makedirs(staged, exist_ok=True)
            for f in kept:
                _link_or_copy(f"{vdir}/{p}/{f}", f"{staged}/{f}")
            replace.append(p)
        journal: dict[str, list[str] | str] = {"stage": self.stage,
                                               "trash": f"_trash-{self.token}",
                                               "replace": replace, "delete": delete}
        _write_text(f"{vdir}/_swap-{self.token}.json", json.dumps(journal, sort_keys=True))
        _finish_swap(vdir, journal, self.token)
        self.close()

    def abort(self) -> None:
        shutil.rmtree(f"{self.vdir}/{self.stage}", ignore_errors=True)
        self.close()

    def close(self) -> None:
        """Release the lock (if this transaction took it); what is staged stays for `recover`
        (idempotent; `commit` and `abort` close)."""
        _OPEN_STAGES.pop(f"{self.vdir}/{self.stage}", None)
        if self.own_lock:
            self.lock.release()


def _writer_gone(stage: str) -> bool:
    """Whether the writer recorded in a staging folder is known to be dead."""
    try:
        writer = Writer.parse(Path(stage, WRITER).read_text())
    except OSError:
        return False  # no record (or not yet written): it may be alive
    return writer is not None and writer.gone()


def _finish_swap(vdir: str, journal: dict[str, list[str] | str], token: str) -> None:
    stage, trash = str(journal["stage"]), str(journal["trash"])
    for p in journal["replace"]:
        staged, live, old = f"{vdir}/{stage}/{p}", f"{vdir}/{p}", f"{vdir}/{trash}/{p}"
        if os.path.isdir(staged):
            if os.path.isdir(live):
                os.makedirs(os.path.dirname(old), exist_ok=True)
                os.rename(live, old)
            os.makedirs(os.path.dirname(live), exist_ok=True)
            os.rename(staged, live)
    for p in journal["delete"]:
        live, old = f"{vdir}/{p}", f"{vdir}/{trash}/{p}"
        if os.path.isdir(live) and not os.path.isdir(old):
            os.makedirs(os.path.dirname(old), exist_ok=True)
            os.rename(live, old)
    os.remove(f"{vdir}/_swap-{token}.json")
    shutil.rmtree(f"{vdir}/{trash}", ignore_errors=True)
    shutil.rmtree(f"{vdir}/{stage}", ignore_errors=True)
    for p in list(journal["replace"]) + list(journal["delete"]):
        parent = os.path.dirname(f"{vdir}/{p}")
        if parent != vdir and os.path.isdir(parent) and not os.listdir(parent):
            os.rmdir(parent)


def split_rows(lay: ViewLayout, table: pa.Table, intervals: list[tuple[datetime, datetime]],
           open_below: datetime | None = None,
           ) -> tuple[dict[str, dict[str, pa.Table]], dict[datetime, tuple[int, int]]]:
    """Sort the rows; cut them per (partition, interval): files to write, and stats."""
    from featql.semantics.arrow_types import conform

    table = conform(table, dict(lay.columns)).select([n for n, _ in lay.columns])
    sortable = [n for n in [lay.time_column, *lay.keys,
                            *(c for c, _ in lay.columns if c not in lay.keys
                              and c != lay.time_column)]
                if not pa.types.is_nested(table.schema.field(n).type)]
    table = table.sort_by([(n, "ascending", "at_start") for n in sortable])
    times = table.column(lay.time_column)
    files: dict[str, dict[str, pa.Table]] = {}
    stats: dict[datetime, tuple[int, int]] = {}
    for a, b in intervals:
        mask = pc.less(times, pa.scalar(b, pa.timestamp("us")))
        if a != open_below:
            mask = pc.and_(pc.greater_equal(times, pa.scalar(a, pa.timestamp("us"))), mask)
        part = table.filter(mask)
        n_files = 0
        if part.num_rows:
            hours = pc.floor_temporal(part.column(lay.time_column), 1,
                                      "hour" if lay.hourly else "day")
            for bucket in pc.unique(hours).to_pylist():
                rows = part.filter(pc.equal(hours, pa.scalar(bucket, pa.timestamp("us"))))
                files.setdefault(partition_of(bucket, lay.hourly), {})[
                    f"part-{interval_token(a)}.parquet"] = rows
                n_files += 1
        stats[a] = (part.num_rows, n_files)
    return files, stats


def file_interval(name: str) -> str:
    """The interval token of a data file's name (`part-<interval>[-<hash>].parquet`)."""
    ok = name.startswith("part-") and name.endswith(".parquet")
    return name[len("part-"):len("part-") + len("20240101T000000")] if ok else ""


def _partition(path: str) -> str:
    """`date=.../[hour=...]` of a data file's path."""
    parts = path.split("/")
    at = max(i for i, p in enumerate(parts) if p.startswith("date="))
    return "/".join(p for p in parts[at:-1] if p.startswith(("date=", "hour=")))


def _partition_overlaps(p: str, lo: datetime | None, hi: datetime | None) -> bool:
    bits = dict(kv.split("=", 1) for kv in p.split("/"))
    start = datetime.fromisoformat(bits["date"])
    length = timedelta(days=1)
    if "hour" in bits:
        start += timedelta(hours=int(bits["hour"]))
        length = timedelta(hours=1)
    return (hi is None or start < hi) and (lo is None or start + length > lo)


def _time(t: datetime | str | None) -> datetime | None:
    if t is None or isinstance(t, datetime):
        return t
    return datetime.fromisoformat(t)


def meta_json(lay: ViewLayout) -> str:
    return json.dumps({"view": lay.view, "fingerprint": lay.fingerprint, "kind": lay.kind,
                       "time_column": lay.time_column, "keys": list(lay.keys),
                       "hourly": lay.hourly, "columns": [list(c) for c in lay.columns]}
                      | ({"stored": [list(g) for g in lay.stored], "start": lay.start}
                         if lay.stored else {}),
                      sort_keys=True, indent=1) + "\n"


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    Path(tmp).write_text(text)
    os.replace(tmp, path)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
