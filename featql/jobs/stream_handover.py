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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featql.core.errors import UserError
from featql.core.ir import FeatureView, Manifest, Source
from featql.core.progress import Progress
from featql.jobs.online_load import LoadReport
from featql.online import codec
from featql.online.base import Cell
from featql.semantics.sql import US

if TYPE_CHECKING:
    import pyarrow as pa

    from featql.core.config import ProjectConfig

_NEWEST: dict[tuple[str, int, int, str], Any] = {}  # (file, mtime_ns, size, column) -> max


def batch_files(root: Path, source: Source) -> list[str]:
    """The batch log's own Parquet files (not featql's appended `ingest/` ones)."""
    from featql.engines.sources import is_s3, local_files
    from featql.jobs.ingest_files import LOG_FOLDER

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


# -- the online load of stream views: under the ingest lock, the still-running slide open --------
def load_online_locked(root: Path, manifest: Manifest, workspace: str,
                       views: Sequence[str] | None, progress: Progress, config: ProjectConfig,
                       lock_timeout: float | None) -> LoadReport:
    """`featql materialize --online`: `load_online` for every view but the stream aggregate
    views, whose cells are built from the sources under the project's ingest lock
    (`stream_view_cells`; pushes and `featql stream` wait meanwhile).

    A load racing pushes would roll back or double count a stream view's head: its tiles come
    from the offline store, which can miss what pushes logged while it was materialized, and a
    push may read the cell before the load and write after it. Under the lock, the batches a
    crashed push left are finished first (their events are in the log and must be in the
    cells once: `ingest._recover`), then every cell is rebuilt from the log as it is; a push
    that waited then adds its events to those cells. Every identity in the log is then marked
    applied to the view (`Ledger.loaded`): the view's query reading one of them from the
    stream later (a sibling's query logged it before the load), or a push of one, skips it
    instead of counting it a second time. Row-level views need no lock: their cells are
    versioned by (event time, created), the newest row wins in any order.
    `lock_timeout` (seconds, None: wait): a lock held longer is a clear error, the offline
    store and the other views loaded all the same."""
    from featql.jobs.ingest import _recover, is_stream_view
    from featql.jobs.ingest_log import IngestLockBusy, locked
    from featql.jobs.online_load import ViewLoad, load_online
    from featql.online.stores import open_store

    chosen = [v for v in manifest.views if v.online and (not views or v.name in views)]
    streams = [v for v in chosen if v.kind == "aggregate" and is_stream_view(manifest, v)]
    others = [v.name for v in chosen if v not in streams]
    if not streams:
        return load_online(root, manifest, workspace, list(views) if views else None,
                           progress, config=config)
    first = load_online(root, manifest, workspace, others, progress, config=config) \
        if others else None
    runs = []
    try:
        with locked(root, lock_timeout) as ledger:
            store = open_store(config, root, workspace)
            try:
                _recover(root, manifest, workspace, ledger, store)
                for view in streams:
                    with progress.task(f"online ← {view.name} (from the log)", 1) as advance:
                        cells, hi_s = stream_view_cells(root, manifest, view)
                        rep = store.write(cells)
                        src = manifest.stream_source(view)
                        if src is not None:  # what the cells hold is the view's now
                            ledger.loaded(workspace, src.name, view.name)
                        advance(1)
                    w, sk = rep.by_view.get(codec.cell_name(view), (0, 0))
                    through = None if hi_s is None else codec.from_micros(hi_s * US).isoformat()
                    runs.append(ViewLoad(view.name, view.kind, len(cells), w, sk, through,
                                         "" if cells else "no events"))
            finally:
                store.close()
    except IngestLockBusy as e:
        raise UserError(
            f"materialize --online: the stream views {', '.join(v.name for v in streams)} "
            f"were not loaded: {e}, held by a push, `featql ingest` or `featql stream` "
            "writing into this project; the offline store is materialized"
            + (" and the other views are loaded" if others else "")
            + "; rerun `featql materialize --online` when they are done (or raise "
            "--lock-timeout)") from None
    store_kind = first.store if first is not None else config.online_store.lower()
    return LoadReport(workspace, store_kind, (*(first.views if first else ()), *runs))


def stream_view_cells(root: Path, manifest: Manifest, view: FeatureView
                      ) -> tuple[list[Cell], int | None]:
    """The stream cells of an aggregate stream view, from the sources (the batch log and the
    events pushed or streamed into it, each once), and the end of their newest slide (epoch
    seconds; None: no event). Per entity: the tiles of the longest window before the newest
    slide, plus every event from that slide on as exact events, so that a lookup inside it
    (the slide the backfill ended in, which streamed events continue) is exact: the slide =
    the backfilled events + the streamed ones. Call it under the ingest lock."""
    from featql.dialects.events import EVENT_TS, lower_events

    engine = _engine(root, manifest, view)
    try:
        newest = engine.query(f'SELECT max("{EVENT_TS}") AS m FROM '
                              f"({lower_events(manifest, view.name, 'duckdb')}) e"
                              ).column(0)[0].as_py()
    finally:
        engine.close()
    if newest is None:
        return [], None
    slide = view.slide_seconds or 1
    hi_s = (codec.to_micros(newest) // US) // slide * slide + slide
    return head_cells(root, manifest, view, hi_s), hi_s


def head_cells(root: Path, manifest: Manifest, view: FeatureView, hi_s: int) -> list[Cell]:
    """The stream cells of `view` with the slide `[hi_s - S, hi_s)` open (see
    `stream_view_cells`); a view with a lifetime window gets its tiles from the start."""
    from featql.core.durations import LIFETIME_SECONDS
    from featql.jobs.ingest import bump
    from featql.jobs.online_load import TILE_START, source_scan
    from featql.online.stream_cells import StreamCell, add_events, encode, from_tiles
    from featql.semantics.aggregates import partial_columns

    slide = view.slide_seconds or 1
    longest = max(view.windows) if view.windows else slide
    open_at = hi_s - slide  # the newest slide: its events stay exact
    scan, close = source_scan(manifest, root)
    try:
        lo = None if LIFETIME_SECONDS in view.windows else codec.from_micros(
            (open_at - longest) * US)
        tiles = scan(view, lo, codec.from_micros(open_at * US))
    finally:
        close()
    keys = [k.name for k in view.keys]
    names = partial_columns(view)
    tiles = tiles.sort_by([(k, "ascending") for k in keys] + [(TILE_START, "ascending")])
    per_item: dict[str, tuple[list[int], dict[str, list[Any]]]] = {}
    key_cols = [tiles.column(k).to_pylist() for k in keys]
    starts = [codec.to_micros(t) // US for t in tiles.column(TILE_START).to_pylist()]
    data = {c: tiles.column(c).to_pylist() for c in names}
    for i in range(tiles.num_rows):
        key = [kc[i] for kc in key_cols]
        if any(k is None for k in key):
            continue
        got = per_item.setdefault(codec.item_key(view.entity, key), ([], {c: [] for c in names}))
        got[0].append(starts[i])
        for c in names:
            got[1][c].append(data[c][i])
    events = _head_events(root, manifest, view, open_at)
    name = codec.cell_name(view)
    kept_from = None if lo is None else open_at - longest
    out = []
    for item in dict.fromkeys([*per_item, *events]):
        t_starts, t_cols = per_item.get(item, ([], {c: [] for c in names}))
        cell = from_tiles(view, t_starts, t_cols, kept_from)
        cell = add_events(view, StreamCell(cell.starts, cell.columns, [], cell.kept_from, hi_s),
                          events.get(item, []))
        body = encode(cell)
        ends = [hi_s, *(cell.starts[-1:] and [cell.starts[-1] + slide])]
        if cell.events:
            ends.append((cell.events[-1][0] // US) // slide * slide + slide)
        out.append(Cell(item, name, bump(max(ends) * US, body), body))
    return out


def _engine(root: Path, manifest: Manifest, view: FeatureView) -> Any:
    """A DuckDB engine with the sources and views `view` reads registered."""
    from featql.engines.duckdb import DuckDBEngine
    from featql.jobs.relations import register_upstream

    engine = DuckDBEngine()
    register_upstream(engine, manifest, root, view.depends_on, set())
    return engine


def _head_events(root: Path, manifest: Manifest, view: FeatureView, from_s: int
                 ) -> dict[str, list[tuple[int, list[Any]]]]:
    """Per entity, the view's events (its WHERE, joins and inputs over the sources: the batch
    log and the events pushed or streamed into it) at or after `from_s`, as stream-cell
    events (µs, input per aggregation), in event-time order."""
    from featql.dialects.events import EVENT_TS, input_column, lower_events
    from featql.online.stream_cells import plain_input

    engine = _engine(root, manifest, view)
    try:
        since = codec.from_micros(from_s * US).isoformat(sep=" ")
        table = engine.query(f"SELECT * FROM ({lower_events(manifest, view.name, 'duckdb')}) "
                             f"e WHERE \"{EVENT_TS}\" >= TIMESTAMP '{since}' "
                             f"ORDER BY \"{EVENT_TS}\"")
    finally:
        engine.close()
    keys = [k.name for k in view.keys]
    key_cols = [table.column(k).to_pylist() for k in keys]
    times = [codec.to_micros(t) for t in table.column(EVENT_TS).to_pylist()]
    inputs = [table.column(input_column(a.name)).to_pylist()
              if input_column(a.name) in table.column_names else [1] * table.num_rows
              for a in view.aggregations]
    out: dict[str, list[tuple[int, list[Any]]]] = {}
    for i in range(table.num_rows):
        key = [kc[i] for kc in key_cols]
        if any(k is None for k in key):
            continue
        out.setdefault(codec.item_key(view.entity, key), []).append(
            (times[i], [plain_input(col[i]) for col in inputs]))
    return out
