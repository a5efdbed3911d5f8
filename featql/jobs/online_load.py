"""Online materialization: the latest value per entity and the recent tiles, into the online store.

`load_online(project_root, manifest, workspace, views=None, progress=SILENT)`:
- row-level view → per entity the offline row with the greatest (event time, created, features)
  — the same order the training set uses — written as a cell versioned (event time, created).
  A `known_at` view takes the newest row among those created by the load time (`now`).
- aggregate view → per entity the tiles of the longest window before `hi` (the end of the
  materialized data, floored to the slide), packed in one cell versioned by (hi, load time).
  A `known_at` view keeps only the partials known by the load time (`_featql_known <= now`),
  in (tile start, known) order, with their known times: a lookup at t merges those known by
  t, the same partials in the same order as the training set at t (never compacted).

Incremental: the store remembers per view how far it was loaded (`get_state`); the next run reads
only rows at or after that event time (row-level; a `known_at` view reads all: a row created
since may have any event time) or skips an aggregate view whose tiles did not change (same `hi`,
same content digest). Tiles re-materialized offline for the same `hi` (late
data) replace the online ones. Idempotent: a re-run writes nothing (row cells: versions are not
newer; tiles: same digest). Cells are named `<view>@<fingerprint>`, so a redefined view never
mixes with values of its old definition.

Rows come from the offline store when the view is materialized there, else they are computed
from the sources with the dialect SQL on DuckDB; callers may pass `scan` themselves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from featql.core.ir import FeatureView, Manifest
from featql.core.progress import SILENT, Advance, Progress
from featql.online import codec
from featql.online.base import Cell, OnlineStore, version
from featql.online.codec import cell_name
from featql.online.tiles import KNOWN, TileMerger, encode_tiles, unpack, with_known, with_prefix
from featql.semantics.aggregates import partial_columns
from featql.semantics.rows import known_sql, tiebreak_order_sql
from featql.semantics.time import floor

if TYPE_CHECKING:
    import pyarrow as pa

    from featql.core.config import ProjectConfig

CREATED = "_featql_created"
TILE_START = "_tile_start"
Scan = Callable[[FeatureView, "dt.datetime | None", "dt.datetime | None"], "pa.Table"]


@dataclass(frozen=True)
class ViewLoad:
    view: str
    kind: str
    entities: int
    written: int
    skipped: int
    through: str | None  # row-level: latest event time loaded; aggregate: end of the tiles
    note: str = ""


@dataclass(frozen=True)
class LoadReport:
    workspace: str
    store: str
    views: tuple[ViewLoad, ...]

    @property
    def written(self) -> int:
        return sum(v.written for v in self.views)


# -- where rows come from ----------------------------------------------------------------------
def source_scan(manifest: Manifest, root: Path) -> tuple[Scan, Callable[[], None]]:
    """Compute a view's offline rows from the sources (dialect SQL on an embedded DuckDB)."""
    from featql.engines.duckdb import DuckDBEngine
    from featql.jobs.relations import register_upstream

    engine = DuckDBEngine()
    registered: set[str] = set()

    def scan(view: FeatureView, start: dt.datetime | None, end: dt.datetime | None) -> pa.Table:
        register_upstream(engine, manifest, root, [view.name], registered)
        col = TILE_START if view.kind == "aggregate" else view.timestamp
        where = []
        if start is not None:
            where.append(f"\"{col}\" >= TIMESTAMP '{start.isoformat(sep=' ')}'")
        if end is not None:
            where.append(f"\"{col}\" < TIMESTAMP '{end.isoformat(sep=' ')}'")
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        return engine.query(f'SELECT * FROM "{view.name}"{cond}')

    return scan, engine.close


def default_scan(manifest: Manifest, root: Path, config: ProjectConfig, workspace: str,
                 ) -> tuple[Scan, Callable[[], None]]:
    """The offline store's rows of a view when it holds them, else rows computed from sources."""
    from featql.core.errors import UserError
    from featql.offline.store import OfflineStore

    offline = OfflineStore(root, config, workspace, manifest)
    fallback: list[tuple[Scan, Callable[[], None]]] = []

    def scan(view: FeatureView, start: dt.datetime | None, end: dt.datetime | None) -> pa.Table:
        try:
            offline.layout(view.name)  # raises when nothing is materialized
            if offline.files(view.name, view.stored_as):
                return offline.scan(view.name, start, end)
        except (UserError, FileNotFoundError, KeyError):
            pass
        if not fallback:
            fallback.append(source_scan(manifest, root))
        return fallback[0][0](view, start, end)

    def close() -> None:
        for _scan, closer in fallback:
            closer()

    return scan, close


# -- latest rows and tile sets -----------------------------------------------------------------
def _us(v: Any) -> int | None:
    return None if v is None else codec.to_micros(v)


def latest_rows(view: FeatureView, table: pa.Table,
                known_by: dt.datetime | None = None) -> Iterator[Cell]:
    """Per entity, the row the training set would pick last: greatest event time, then
    created, then feature tuple (NULL lowest), computed by DuckDB over the Arrow rows. A
    `known_at` view picks among the rows known by `known_by` (created <= it; NULL: never)."""
    import duckdb

    keys = [k.name for k in view.keys]
    feats = [f.name for f in view.features]
    q = _quote
    has_created = CREATED in table.column_names
    order = tiebreak_order_sql("duckdb", q(CREATED) if has_created else None, feats,
                               timestamp=view.timestamp)
    not_null = " AND ".join(f"{q(c)} IS NOT NULL" for c in [*keys, view.timestamp])
    if view.known_at and known_by is not None:
        cutoff = f"TIMESTAMP '{known_by.isoformat(sep=' ')}'"
        not_null += " AND " + known_sql(cutoff, q(CREATED))
    con = duckdb.connect()
    try:
        con.register("rows_in", table)
        created = q(CREATED) if has_created else "CAST(NULL AS TIMESTAMP)"
        cols = ", ".join([*(q(k) for k in keys), q(view.timestamp), created,
                          *(q(f) for f in feats)])
        best = con.execute(
            f"SELECT {cols} FROM rows_in WHERE {not_null} QUALIFY row_number() OVER "
            f"(PARTITION BY {', '.join(q(k) for k in keys)} ORDER BY {order}) = 1").fetchall()
    finally:
        con.close()
    name = cell_name(view)
    n = len(keys)
    for row in best:
        event, created_us = codec.to_micros(row[n]), _us(row[n + 1])
        payload = codec.encode_row(event, created_us, list(row[n + 2:]))
        yield Cell(codec.item_key(view.entity, row[:n]), name,
                   version(event, created_us, payload), payload)


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def tile_cells(view: FeatureView, table: pa.Table, hi_us: int,
               loaded_us: int | None = None, compact: bool = False) -> Iterator[Cell]:
    """Per entity, its tiles packed (FQT3) with the values merged for the slide at `hi_us`;
    `compact`: the tail of long windows at coarser tiles where the plan allows it (FQC1,
    `featql.online.compacted`), exactly equal at every slide up to the compaction horizon."""
    from featql.online import compacted

    keys = [k.name for k in view.keys]
    cols = partial_columns(view)
    # a known_at view: several partials per tile, kept in (start, known) order (the order the
    # training set merges them in), with when each was known as one more column
    order = [TILE_START, KNOWN] if view.known_at else [TILE_START]
    table = table.sort_by([(k, "ascending") for k in [*keys, *order]])
    key_cols = [table.column(k).to_pylist() for k in keys]
    starts_us = [codec.to_micros(t) // 1_000_000 for t in table.column(TILE_START).to_pylist()]
    data = {c: table.column(c).to_pylist() for c in cols}
    known = [codec.to_micros(t) for t in table.column(KNOWN).to_pylist()] \
        if view.known_at else []
    name = cell_name(view)
    merger = TileMerger(view)
    hi_s = hi_us // 1_000_000
    i, n = 0, table.num_rows
    while i < n:
        key = tuple(kc[i] for kc in key_cols)
        j = i + 1
        while j < n and tuple(kc[j] for kc in key_cols) == key:
            j += 1
        if not any(k is None for k in key):
            columns = {c: data[c][i:j] for c in cols}
            starts = starts_us[i:j]
            if view.known_at:
                knowns = known[i:j]
                if merger.prefixed:
                    knowns = with_known(view, starts, knowns, hi_s - merger.stored)
            if merger.prefixed:  # a lifetime window: the older tiles as one prefix tile
                starts, columns = with_prefix(view, starts, columns, hi_s - merger.stored)
            if view.known_at:
                columns[KNOWN] = knowns
                compact = False  # (compacted cells have no known column)
            packed = encode_tiles(starts, columns)
            # the features a lookup in the slide right after hi reads without merging
            merged = merger.merge(unpack(packed, merger.names, merger.layouts), hi_s)
            payload = None
            if compact:
                payload = compacted.encode(view, starts, columns, hi_s,
                                           merged=(hi_s, merged))
            if payload is None:
                payload = encode_tiles(starts, columns, merged=(hi_s, merged))
            yield Cell(codec.item_key(view.entity, key), name,
                       version(hi_us, loaded_us, payload), payload)
        i = j


# -- the load ------------------------------------------------------------------------------------
def load_online(project_root: Path | str, manifest: Manifest, workspace: str,
                views: Sequence[str] | None = None, progress: Progress = SILENT, *,
                end: dt.datetime | None = None, store: OnlineStore | None = None,
                scan: Scan | None = None, full: bool = False,
                config: ProjectConfig | None = None,
                now: dt.datetime | None = None, compact: bool | None = None) -> LoadReport:
    """Load the online store of `workspace` from the offline data (see module doc).

    `end` (naive UTC) bounds the data loaded (rows before it, tiles ending by it); `full`
    ignores the incremental state. `config` defaults to the project's featql.toml. `now`
    (naive UTC; the wall clock by default) is the load time: a `known_at` view loads, per
    entity, the newest row created by then (by `end` when that is earlier). `compact` stores
    the tail of long windows at coarser tiles (`featql.semantics.compaction`; never for stream
    views, nor views over a source events were pushed into in this workspace: pushes fold into
    fine tiles). When None: `[online] compact` in featql.toml (default true; a push onto a
    compacted cell keeps its coarse tiles, `featql.online.stream_cells`).
    """
    from featql.online.stores import open_store

    root = Path(project_root)
    if config is None and (store is None or scan is None):
        from featql.core.config import CONFIG_FILE, load_config
        from featql.core.diagnostics import Diagnostics

        config = load_config(root, CONFIG_FILE, Diagnostics())
    own_store = store is None
    if store is None:
        assert config is not None
        store = open_store(config, root, workspace)
    close_scan: Callable[[], None] = lambda: None  # noqa: E731
    if scan is None:
        assert config is not None
        scan, close_scan = default_scan(manifest, root, config, workspace)
    chosen = [v for v in manifest.views if v.online and (views is None or v.name in views)]
    if compact is None:
        compact = config.online_compact if config is not None else False
    try:
        now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        known_by = min(now, end) if end is not None else now
        pushed = _pushed_sources(root, workspace) if compact else set()
        loads = [_view_load(view, store, scan, end, full, known_by,
                            compact and manifest.stream_source(view) is None
                            and not _reads_any(manifest, view, pushed))
                 for view in chosen]
        cells = [c for p in loads for c in p.cells]
        with progress.task(f"online ← {len(chosen)} views", len(cells)) as advance:
            rep = store.write(_tracked(cells, advance))
        results = []
        for p in loads:
            if p.state is not None:
                store.put_state(p.state_key, orjson.dumps(p.state))
            w, sk = rep.by_view.get(cell_name(p.view), (0, 0))
            results.append(ViewLoad(p.view.name, p.view.kind, len(p.cells), w, sk, p.through,
                                    p.note))
    finally:
        close_scan()
        if own_store:
            store.close()
    return LoadReport(workspace, store.kind, tuple(results))


def _pushed_sources(root: Path, workspace: str) -> set[str]:
    """Sources events were pushed or streamed into in this workspace (the ingest ledger's
    `pushed_sources`): their views' cells are kept fine, since pushes fold events into fine
    tiles."""
    from featql.jobs.ingest_log import pushed_sources

    return pushed_sources(root, workspace)


def _reads_any(manifest: Manifest, view: FeatureView, sources: set[str]) -> bool:
    if not sources:
        return False
    for dep in view.depends_on:
        if dep in sources:
            return True
        up = manifest.view(dep)
        if up is not None and _reads_any(manifest, up, sources):
            return True
    return False


@dataclass(frozen=True)
class _ViewLoad:
    view: FeatureView
    cells: list[Cell]
    state_key: str
    state: dict[str, Any] | None  # recorded after the cells are written
    through: str | None
    note: str = ""


def _view_load(view: FeatureView, store: OnlineStore, scan: Scan, end: dt.datetime | None,
               full: bool, known_by: dt.datetime, compact: bool = False) -> _ViewLoad:
    import pyarrow.compute as pc

    state_key = "loaded:" + cell_name(view)
    raw = None if full else store.get_state(state_key)
    state = orjson.loads(raw) if raw else {}
    if view.kind == "aggregate":
        slide = view.slide_seconds or 1
        longest = max(view.windows) if view.windows else slide
        if end is not None:
            hi_s = floor(codec.to_micros(end) // 1_000_000, slide)
        else:
            probe = scan(view, None, None)
            if probe.num_rows == 0:
                return _ViewLoad(view, [], state_key, None, None, "no tiles")
            last = pc.max(probe.column(TILE_START)).as_py()
            hi_s = codec.to_micros(last) // 1_000_000 + slide
        hi_iso = codec.from_micros(hi_s * 1_000_000).isoformat()
        table = scan(view, codec.from_micros((hi_s - longest) * 1_000_000),
                     codec.from_micros(hi_s * 1_000_000))
        if view.known_at:  # as known at: only the partials known by the load time
            table = _known_by(table, known_by)
        # versions: (end of the tiles, load time): a later end always wins; for the same end
        # (late data re-materialized offline) the later load wins
        cells = list(tile_cells(view, table, hi_s * 1_000_000, time.time_ns() // 1000,
                                compact))
        digest = hashlib.blake2b(b"".join(c.item.encode() + c.payload for c in cells),
                                 digest_size=12).hexdigest()
        if state.get("hi") == hi_s and state.get("digest") == digest:
            return _ViewLoad(view, [], state_key, None, hi_iso, "up to date")
        return _ViewLoad(view, cells, state_key, {"hi": hi_s, "digest": digest}, hi_iso)
    since = state.get("through")
    # a known_at view reads every row each time: a row created since the last load may have
    # any event time (last-writer-wins keeps the newer cells)
    table = scan(view, None if since is None or view.known_at else codec.from_micros(since),
                 end)
    cells = list(latest_rows(view, table, known_by))
    new_state = None
    if table.num_rows:
        top = codec.to_micros(pc.max(table.column(view.timestamp)).as_py())
        since = top if since is None else max(since, top)
        new_state = {"through": since}
    return _ViewLoad(view, cells, state_key, new_state,
                     None if since is None else codec.from_micros(since).isoformat())


def _known_by(table: pa.Table, known_by: dt.datetime) -> pa.Table:
    """A known_at view's tiles whose partial was known by `known_by` (`_featql_known <= it`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cutoff = pa.scalar(known_by, table.schema.field(KNOWN).type)
    return table.filter(pc.less_equal(table.column(KNOWN), cutoff))


def _tracked(cells: list[Cell], advance: Advance) -> Iterator[Cell]:
    for c in cells:
        yield c
        advance(1)
