"""Signatures of a batch source's files, and the event-time range of each file's rows.

Incremental materialization records, per view, the signatures of the files of every source the
view reads, and compares them on the next run (`featql.jobs.stale`): a new, changed or deleted
file makes the intervals its rows fall in stale. A signature is what identifies a file's
content without reading it:

- local files: the path (relative to the project when under it), size and `st_mtime_ns`;
- `s3://`: the key, size and ETag (listed through boto3 when installed; else pyarrow's
  S3FileSystem, which gives size and last-modified time but no ETag).

`time_range` gives the [min, max] of the source's timestamp column in one file: from the
Parquet footer statistics when every row group has them, else by reading that column only
(Parquet, CSV, JSON); None when it cannot be read as a time (the caller then treats every
interval as possibly touched).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from featql.core.errors import UserError
from featql.core.ir import Source
from featql.engines.sources import is_s3, local_files, s3_filesystem, s3_key


@dataclass(frozen=True)
class FileSignature:
    path: str  # relative to the project root when under it; absolute; or s3://bucket/key
    size: int
    mtime_ns: int  # local; S3: last modified (ns), 0 when unknown
    etag: str = ""  # S3 only
    # the rows' event-time range (naive UTC): known when has_range; (None, None) with
    # has_range is a file without a timed row
    min_ts: datetime | None = None
    max_ts: datetime | None = None
    has_range: bool = False

    def same_content(self, other: FileSignature) -> bool:
        """Whether two signatures name the same bytes (ETag wins over mtime on S3)."""
        if self.path != other.path or self.size != other.size:
            return False
        if self.etag or other.etag:
            return self.etag == other.etag
        return self.mtime_ns == other.mtime_ns

    def with_range(self, lo: datetime | None, hi: datetime | None) -> FileSignature:
        return replace(self, min_ts=lo, max_ts=hi, has_range=True)


def sign_files(source: Source, root: Path) -> list[FileSignature]:
    """The signatures (without time ranges) of the source's files, sorted by path."""
    if is_s3(source.batch.path):
        return _sign_s3(source)
    out = []
    base = Path(os.path.abspath(root))
    for f in local_files(source, root):
        try:
            st = os.stat(f)
        except OSError as e:
            raise UserError(f"source '{source.name}': cannot read {f}: {e}") from e
        out.append(FileSignature(_relative(f, base), st.st_size, st.st_mtime_ns))
    return sorted(out, key=lambda s: s.path)


def _relative(f: str, base: Path) -> str:
    full = os.path.abspath(f)
    rel = os.path.relpath(full, base)
    return full if rel.startswith("..") else Path(rel).as_posix()


def _sign_s3(source: Source) -> list[FileSignature]:
    from featql.offline.locks import s3_client

    scheme = source.batch.path.split("://", 1)[0]
    prefix = s3_key(source.batch.path).rstrip("/")
    client = s3_client()
    out: list[FileSignature] = []
    if client is not None:
        bucket, _, key = prefix.partition("/")
        token: dict[str, Any] = {}
        while True:  # one page per 1000 keys, bounded by the listing itself
            page = client.list_objects_v2(Bucket=bucket, Prefix=f"{key}/" if key else "",
                                          **token)
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                if name.startswith((".", "_")) or obj["Key"].endswith("/"):
                    continue
                modified = obj.get("LastModified")
                ns = int(modified.timestamp() * 1e9) if modified else 0
                out.append(FileSignature(f"{scheme}://{bucket}/{obj['Key']}", int(obj["Size"]),
                                         ns, str(obj.get("ETag", "")).strip('"')))
            if not page.get("IsTruncated"):
                break
            token = {"ContinuationToken": page["NextContinuationToken"]}
        return sorted(out, key=lambda s: s.path)
    import pyarrow.fs as pafs

    sel = pafs.FileSelector(prefix, recursive=True, allow_not_found=True)
    for info in s3_filesystem().get_file_info(sel):
        if info.type != pafs.FileType.File or info.base_name.startswith((".", "_")):
            continue
        out.append(FileSignature(f"{scheme}://{info.path}", int(info.size or 0),
                                 int(info.mtime_ns or 0)))
    return sorted(out, key=lambda s: s.path)


def time_range(source: Source, sig: FileSignature, root: Path
               ) -> tuple[datetime | None, datetime | None] | None:
    """[min, max] of the source's timestamp column in one file ((None, None): no rows with a
    time); None when the file cannot be read as that source."""
    import pyarrow as pa

    try:
        if source.batch.format == "parquet":
            return _parquet_range(source, sig, root)
        table = _read_column(source, sig, root)
    except (OSError, pa.ArrowException, KeyError, ValueError):
        return None
    return _column_range(table)


def _open(sig: FileSignature, root: Path) -> Any:
    if is_s3(sig.path):
        return s3_filesystem().open_input_file(s3_key(sig.path))
    p = Path(sig.path)
    return open(p if p.is_absolute() else Path(root) / p, "rb")  # the caller closes it


def _parquet_range(source: Source, sig: FileSignature, root: Path
                   ) -> tuple[datetime | None, datetime | None] | None:
    import pyarrow.parquet as pq

    with _open(sig, root) as f:
        pf = pq.ParquetFile(f)
        names = [n.lower() for n in pf.schema_arrow.names]
        if source.timestamp not in names:
            return None
        col = pf.schema_arrow.names[names.index(source.timestamp)]
        idx = pf.schema_arrow.get_field_index(col)
        meta = pf.metadata
        lo: datetime | None = None
        hi: datetime | None = None
        complete = True
        for g in range(meta.num_row_groups):
            chunk = meta.row_group(g).column(idx)
            st = chunk.statistics
            if meta.row_group(g).num_rows == 0:
                continue
            if st is None or not st.has_min_max:
                if st is not None and st.null_count == meta.row_group(g).num_rows:
                    continue  # only NULL times: no interval
                complete = False
                break
            a, b = _naive(st.min), _naive(st.max)
            if a is None or b is None:
                complete = False
                break
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
        if complete:
            return lo, hi
        return _column_range(pf.read(columns=[col]))


def _read_column(source: Source, sig: FileSignature, root: Path) -> Any:
    import pyarrow as pa

    with _open(sig, root) as f:
        if source.batch.format == "csv":
            import pyarrow.csv as pcsv

            table = pcsv.read_csv(f, convert_options=pcsv.ConvertOptions(
                include_columns=[source.timestamp],
                column_types={source.timestamp: pa.timestamp("us")}))
        else:
            import pyarrow.json as pjson

            table = pjson.read_json(f)
    names = [n.lower() for n in table.column_names]
    col = table.column(names.index(source.timestamp))
    if not pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("us"))
    return pa.table({"t": col})


def _column_range(table: Any) -> tuple[datetime | None, datetime | None] | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(0)
    if not (pa.types.is_timestamp(col.type) or pa.types.is_date(col.type)):
        return None
    mm = pc.min_max(col).as_py()
    return _naive(mm["min"]), _naive(mm["max"])


def _naive(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo else v
    if v is not None and hasattr(v, "year"):  # a date
        return datetime(v.year, v.month, v.day)
    return None


def with_ranges(source: Source, sigs: list[FileSignature], root: Path,
                known: Callable[[FileSignature], FileSignature | None],
                advance: Callable[[int], None] = lambda n: None) -> list[FileSignature]:
    """`sigs` with their time ranges: taken from `known` (a signature recorded earlier for the
    same content) when there is one, else read from the file (`advance(1)` after each)."""
    out = []
    for s in sigs:
        k = known(s)
        if k is not None and k.has_range:
            out.append(s.with_range(k.min_ts, k.max_ts))
            continue
        r = time_range(source, s, root)
        out.append(s.with_range(*r) if r is not None else s)
        advance(1)
    return out
