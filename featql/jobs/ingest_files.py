"""The source's offline log as pushes and streams append to it: one Parquet file per batch and
event day, `<batch folder>/ingest/<YYYY-MM-DD>/ingest-<seq>.parquet` (`featql.jobs.ingest_log`
says when it is written and how a crashed batch's files are written again: the name depends only
on the batch, so rewriting changes nothing). Written under a hidden name and renamed, so a
reader never sees half a file; every reader of the source (training sets, backfills,
materialization) sees the files, since they are inside its batch location."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featql.core.errors import UserError
from featql.core.ir import Source

if TYPE_CHECKING:
    import pyarrow as pa

LOG_FOLDER = "ingest"

def log_folder(root: Path, source: Source) -> Path:
    """Where pushed events of `source` go: a folder inside its batch location, so every reader
    of the source (training sets, backfills, materialization) sees them."""
    path = source.batch.path
    if path.startswith(("s3://", "s3a://")):
        raise UserError(f"source '{source.name}': pushing events to an S3 batch log "
                        f"({path}) is not supported; ingest needs a local folder")
    if source.batch.format != "parquet":
        raise UserError(f"source '{source.name}': its batch log is {source.batch.format}; "
                        "ingest appends Parquet files and needs a parquet(...) batch location")
    full = Path(path) if Path(path).is_absolute() else root / path
    if any(ch in path for ch in "*?[") or (full.exists() and not full.is_dir()):
        raise UserError(f"source '{source.name}': its batch location {path} is not a folder; "
                        "ingest appends files to a folder")
    return full / LOG_FOLDER


_LOCAL_FS: list[Any] = [None]


def write_log(root: Path, source: Source, seq: int, rows: pa.Table) -> list[Path]:
    """The batch's events as Parquet, one file per event day (see the module doc)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if _LOCAL_FS[0] is None:  # (naming it saves resolving the path's filesystem per file)
        from pyarrow import fs

        _LOCAL_FS[0] = fs.LocalFileSystem()
    folder = log_folder(root, source)
    days = pc.strftime(rows.column(source.timestamp), format="%Y-%m-%d")
    each = sorted(set(days.to_pylist()))
    written = []
    for day in each:
        part = rows if len(each) == 1 else rows.filter(pc.equal(days, day))
        target = folder / day / f"ingest-{seq:012d}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
        pq.write_table(part, tmp, compression="zstd", filesystem=_LOCAL_FS[0])
        os.replace(tmp, target)
        written.append(target)
    return written
