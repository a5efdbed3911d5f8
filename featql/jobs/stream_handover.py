"""The hand-over from the backfill to the stream: no gap, no double count (issue 13 item 5).

`featql apply` backfills a stream view from its source's batch log, and `materialize --online`
loads those tiles; `featql stream` then reads the topic from its earliest offset, so nothing
between the end of the backfill and the stream is missed. A topic usually also still holds
events the batch log has (the log was exported from it): those must not count twice. The write
path (`featql.jobs.ingest`) drops events whose `key` it ingested before; `drop_logged` drops,
before it, the events whose key is in the batch log's own files (everything under the batch
location except the events featql appended itself, in `ingest/`, which the ledger knows).

Only events not newer than the batch log's newest event time can be in it, so once the stream
is past the hand-over the check costs one comparison per event; the log's newest time is read
from the Parquet footers (cached per file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featql.core.ir import Source

if TYPE_CHECKING:
    import pyarrow as pa

_NEWEST: dict[tuple[str, int, int, str], Any] = {}  # (file, mtime_ns, size, column) -> max


def batch_files(root: Path, source: Source) -> list[str]:
    """The batch log's own Parquet files (not featql's appended `ingest/` ones)."""
    from featql.engines.sources import is_s3, local_files
    from featql.jobs.ingest_log import LOG_FOLDER

    if source.batch.format != "parquet" or is_s3(source.batch.path):
        return []
    try:
        files = local_files(source, root)
    except Exception:  # featql.core.errors.UserError: no data at the batch location yet
        return []
    marker = f"{os.sep}{LOG_FOLDER}{os.sep}"
    return [f for f in files if marker not in f]


def _newest(path: str, column: str) -> Any:
    import pyarrow.parquet as pq

    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size, column)
    if key not in _NEWEST:
        meta = pq.ParquetFile(path).metadata
        names = meta.schema.names
        newest = None
        if column in names:
            i = names.index(column)
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(i).statistics
                if stats is None or not stats.has_min_max:
                    newest = None  # no statistics: assume anything may be in it
                    break
                newest = stats.max if newest is None else max(newest, stats.max)
            else:
                _NEWEST[key] = newest
                return newest
        _NEWEST[key] = "unknown"
    return _NEWEST[key]


def drop_logged(root: Path, source: Source, events: pa.Table) -> tuple[pa.Table, int]:
    """`events` without those whose key is in the batch log's own files; and how many."""
    if source.key is None or events.num_rows == 0:
        return events, 0
    files = batch_files(root, source)
    if not files:
        return events, 0
    import pyarrow as pa
    import pyarrow.compute as pc

    newest = [_newest(f, source.timestamp) for f in files]
    times = events.column(source.timestamp)
    if all(n is not None and n != "unknown" for n in newest):
        bound = max(newest)
        maybe = pc.fill_null(pc.less_equal(times, pa.scalar(bound, times.type)), False)
        if not pc.any(maybe).as_py():
            return events, 0
    else:
        maybe = pa.array([True] * events.num_rows)
    candidates = pc.filter(events.column(source.key), maybe)
    known = _keys_in(files, source.key, candidates)
    if not known:
        return events, 0
    drop = pc.is_in(events.column(source.key), value_set=pa.array(list(known),
                                                                  candidates.type))
    kept = events.filter(pc.invert(pc.fill_null(drop, False)))
    return kept, events.num_rows - kept.num_rows


def _keys_in(files: list[str], key: str, candidates: Any) -> set[Any]:
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        con.register("candidates", pa.table({"k": candidates}))
        rows = con.execute(
            f'SELECT DISTINCT "{key}" FROM read_parquet(?, union_by_name = true) '
            f'WHERE "{key}" IN (SELECT k FROM candidates)', [files]).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}
