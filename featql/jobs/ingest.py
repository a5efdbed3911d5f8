"""Apply a batch of source events: the one write path of pushes, `featql ingest` and streams.

`ingest_events(root, manifest, workspace, source, records, now, batch_id)`:

1. checks the records against the source's schema (`ingest_records`: 4xx naming record and
   field);
2. drops events already ingested, by the source's `key` (within the batch, and against the
   ledger: across calls and restarts), and a whole batch whose `batch_id` was applied before;
3. records the batch in the ledger (the commit point), appends the new events to the source's
   offline log, computes the online cells and writes them (`ingest_log`: crash-safe, redone by
   the next call after a kill);
4. online, every view over the source (directly or through row-level views) runs its own SQL
   over the new events on DuckDB, the batch query's semantics: row-level views write each
   entity's newest row, last-writer-wins by (event time, created) like the online load;
   aggregate views add each event to the entity's stream cell (`featql.online.stream_cells`):
   exact events for the head, tiles for the tail, merged at lookup by the semantics core's
   `stream_merge` (stream views: `[floor(t,S) - W, t)`; views over batch-only sources keep the
   batch window `[floor(t,S) - W, floor(t,S))`, the event shows once its slide is over).

It returns once the online store holds the values (read-after-write). Events older than the
source's `lateness` before `now` are counted as late; they are applied all the same (they are
in the log, so the training set counts them too and online and offline agree).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featql.core.diagnostics import did_you_mean
from featql.core.ir import FeatureView, Manifest, Source
from featql.jobs.ingest_files import write_log
from featql.jobs.ingest_group import Call, Done, submit
from featql.jobs.ingest_log import Batch, Ledger, locked, record_keys, select, times_of
from featql.jobs.ingest_log import expired as past_retention
from featql.jobs.ingest_query import Rows, plain_projection, plain_rows, run_query
from featql.jobs.ingest_records import MAX_RECORDS, records_table
from featql.online import codec
from featql.online.base import Cell, OnlineStore
from featql.online.lookup import RequestError
from featql.online.stream_cells import (
    StreamCell,
    add_events,
    decode,
    encode,
    finite_reach,
    from_tiles,
)
from featql.online.stream_cells import plain_input as plain
from featql.semantics.aggregates import partial_columns
from featql.semantics.sql import US
from featql.semantics.time import floor

if TYPE_CHECKING:
    import pyarrow as pa

    from featql.core.config import ProjectConfig
    from featql.engines.duckdb import DuckDBEngine

CREATED = "_featql_created"
__all__ = ["MAX_RECORDS", "IngestReport", "find_source", "ingest_events", "views_over"]


@dataclass(frozen=True)
class IngestReport:
    source: str
    workspace: str
    received: int  # records in the call
    ingested: int  # events new to the online store of the workspace
    logged: int  # events appended to the source's offline log
    duplicates: int  # events already ingested (or repeated within the call)
    late: int  # events older than the source's lateness before `now` (applied all the same)
    views: dict[str, int] = field(default_factory=dict)  # online cells written per view
    batch_id: str | None = None
    replayed: bool = False  # the whole batch id was applied before: nothing changed
    seq: int | None = None
    # events older than the ledger's retention (`ingest_log`): set aside, not applied
    expired: int = 0
    expired_rows: Any = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "workspace": self.workspace, "received": self.received,
                "ingested": self.ingested, "logged": self.logged,
                "duplicates": self.duplicates, "late": self.late, "views": self.views,
                "batch_id": self.batch_id, "replayed": self.replayed,
                "expired": self.expired}


def find_source(manifest: Manifest, name: str) -> Source:
    source = manifest.source(name)
    if source is None:
        hint = did_you_mean(name, [s.name for s in manifest.sources])
        raise RequestError(404, "unknown_source", f"unknown source '{name}'"
                           + (f": {hint}" if hint else ""), "source")
    return source


def refuse_known_at_aggregates(manifest: Manifest, source: str) -> None:
    """Pushes cannot feed an aggregate view that counts events as of when they were created
    (`known_at`): its online cells keep partials per known time, which the push path does
    not write. Refused before anything is logged or written (422), never a wrong cell."""
    known = [v.name for v in views_over(manifest, source) if v.kind == "aggregate"
             and v.known_at]
    if known:
        raise RequestError(422, "known_at_aggregate",
                           f"source '{source}' feeds the known_at aggregate view(s) "
                           f"{', '.join(known)}, which pushes cannot update yet: load them with "
                           "`featql materialize --online` from the source's batch log", "source")


def views_over(manifest: Manifest, source: str) -> list[FeatureView]:
    """Online views that read `source`, directly or through row-level views, in DAG order."""
    reached = {source}
    out: list[FeatureView] = []
    changed = True
    while changed:
        changed = False
        for v in manifest.views:
            if v.name not in reached and any(d in reached for d in v.depends_on):
                reached.add(v.name)
                out.append(v)
                changed = True
    return [v for v in out if v.online]


def is_stream_view(manifest: Manifest, view: FeatureView) -> bool:
    """A view over a source with a stream: its windows follow the stream rule."""
    for dep in view.depends_on:
        src = manifest.source(dep)
        if src is not None and src.stream is not None:
            return True
        up = manifest.view(dep)
        if up is not None and is_stream_view(manifest, up):
            return True
    return False


def ingest_events(root: Path | str, manifest: Manifest, workspace: str, source_name: str,
                  records: Any, now: int | None = None, batch_id: str | None = None, *,
                  store: OnlineStore | None = None, config: ProjectConfig | None = None,
                  limit: int | None = MAX_RECORDS, view: str | None = None) -> IngestReport:
    """Apply a batch of events of `source_name` (see the module doc). `records`: JSON records
    (a list of objects) or a pyarrow Table; `now`: epoch microseconds (default: the clock),
    for the lateness count; `limit`: records per call (None: any number, for files);
    `view`: apply the events online to that one view only (a stream checkpoint's, see
    `ingest_log`: counted once per view), not to every view over the source.

    Calls made at the same time from several threads with the same store are applied together
    (`ingest_group`: one DuckDB pass, one ledger transaction, one log file, one online write),
    each answered once the online store holds the values of all of them."""
    root = Path(root)
    source = find_source(manifest, source_name)
    refuse_known_at_aggregates(manifest, source_name)
    rows = records_table(source, records, limit if limit is not None else 1 << 62)
    now_us = now if now is not None else time.time_ns() // 1000
    own_store = store is None
    if store is None:
        from featql.online.stores import open_store

        store = open_store(_config(root, config), root, workspace)
    try:
        call = Call(root, manifest, workspace, source, rows, batch_id, store, view=view)
        submit(call, _apply_group)
    finally:
        if own_store:
            store.close()
    done = call.done
    assert done is not None
    if done.replayed:
        return IngestReport(source.name, workspace, rows.num_rows, 0, 0, rows.num_rows,
                            0, {}, batch_id, replayed=True)
    late = _late(source, done.apply_rows, now_us)
    gone = 0 if done.expired_rows is None else done.expired_rows.num_rows
    return IngestReport(source.name, workspace, rows.num_rows, done.ingested, done.logged,
                        rows.num_rows - done.ingested - gone, late, done.views, batch_id,
                        seq=done.seq, expired=gone, expired_rows=done.expired_rows)


def _apply_group(ledger: Ledger, calls: list[Call]) -> None:
    """Apply calls of one store, workspace and source together (see `ingest_group`); a group
    whose view SQL fails on its records is applied call by call, so that only the calls whose
    records make it fail are refused."""
    first = calls[0]
    root, manifest, workspace, source, store = (first.root, first.manifest, first.workspace,
                                                first.source, first.store)
    _recover(root, manifest, workspace, ledger, store)
    ids: set[str] = set()
    in_group_log: set[str] = set()
    in_group_ws: set[str] = set()
    plans: list[tuple[Call, list[str], pa.Table, list[str], pa.Table]] = []
    horizon = ledger.horizon(source.name)
    for call in calls:
        if call.batch_id is not None and (call.batch_id in ids or ledger.replayed(
                source.name, workspace, call.batch_id)):
            call.done = Done(replayed=True)
            continue
        if call.batch_id is not None:
            ids.add(call.batch_id)
        old = past_retention(source, call.rows, horizon)  # past retention: set aside (ingest_log)
        if old:
            gone = set(old)
            call.expired_rows = select(call.rows, old)
            call.rows = select(call.rows, [i for i in range(call.rows.num_rows)
                                           if i not in gone])
        keys = record_keys(source, call.rows)
        firsts: dict[str, int] = {}
        for i, k in enumerate(keys):
            firsts.setdefault(k, i)
        uniq = list(firsts)
        in_log = ledger.known("logged", source.name, uniq) | (in_group_log & firsts.keys())
        in_ws = ledger.known("applied", source.name, uniq, workspace) | \
            (in_group_ws & firsts.keys())
        if first.view is not None:  # a stream checkpoint's: applied to its view before
            in_ws |= {k for k, vs in ledger.known_views(source.name, uniq, workspace).items()
                      if first.view in vs}
        log_keys = [k for k in uniq if k not in in_log]
        apply_keys = [k for k in uniq if k not in in_ws]
        in_group_log.update(log_keys)
        in_group_ws.update(apply_keys)
        logged = select(call.rows, [firsts[k] for k in log_keys])
        plans.append((call, log_keys, logged, apply_keys, logged if apply_keys == log_keys
                      else select(call.rows, [firsts[k] for k in apply_keys])))
    if not plans:
        return
    log_keys = [k for p in plans for k in p[1]]
    apply_keys = [k for p in plans for k in p[3]]
    log_rows = _concat([p[2] for p in plans])
    apply_rows = log_rows if all(p[2] is p[4] for p in plans) else _concat([p[4] for p in plans])
    # the cells first: a view whose SQL fails on these records refuses the push before
    # anything is recorded (never a batch that blocks every later push)
    try:
        cells = _view_cells(root, manifest, ledger, store, first, apply_keys, apply_rows) \
            if apply_keys else []
    except RequestError:
        if len(plans) == 1:
            raise
        for call, *_ in plans:  # alone, each in its turn (the later ones see the earlier)
            try:
                _apply_group(ledger, [call])
            except Exception as e:  # that call's answer
                call.error = e
        return
    lead = plans[0][0]
    view_keys: list[tuple[str, str, int | None]] = []
    if first.view is not None:  # applied to its view only (ingest_log: view_applied)
        view_keys = [(first.view, k, t) for k, t in zip(
            apply_keys, times_of(apply_rows, source, len(apply_keys)), strict=True)]
        apply_keys = []
    seq = ledger.record(source.name, workspace, lead.batch_id, lead.rows.num_rows, log_keys,
                        log_rows, apply_keys, apply_rows,
                        [(c.item, c.view, c.version, c.payload) for c in cells],
                        [(p[0].batch_id, p[0].rows.num_rows) for p in plans[1:]],
                        times=source, view_keys=view_keys)
    views = _finish(root, manifest, ledger, store,
                    Batch(seq, source.name, workspace, lead.batch_id, "applying",
                          log_rows if log_keys else None,
                          apply_rows if apply_keys or view_keys else None), cells)
    for call, logged, _, applied, rows in plans:
        call.done = Done(seq=seq, ingested=len(applied), logged=len(logged), views=views,
                         apply_rows=rows, expired_rows=call.expired_rows)


def _concat(tables: list[pa.Table]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    import pyarrow as pa

    return pa.concat_tables(tables)


def _config(root: Path, config: ProjectConfig | None) -> ProjectConfig:
    if config is not None:
        return config
    from featql.core.config import CONFIG_FILE, load_config
    from featql.core.diagnostics import Diagnostics

    return load_config(root, CONFIG_FILE, Diagnostics())


def _late(source: Source, rows: pa.Table, now_us: int) -> int:
    lateness = getattr(source, "lateness_seconds", None)
    if lateness is None or rows.num_rows == 0:
        return 0
    bound = now_us - lateness * US
    return sum(1 for t in times_of(rows, source, rows.num_rows) if t is not None and t < bound)


# -- the steps of a batch, redone after a crash --------------------------------------------------
def _recover(root: Path, manifest: Manifest, workspace: str, ledger: Ledger,
             store: OnlineStore) -> None:
    """Finish every batch a crashed call left: its log files always; its online cells when it
    is for this workspace (another workspace's are finished by its next call)."""
    for batch in ledger.unfinished():
        if batch.workspace == workspace:
            _finish(root, manifest, ledger, store, batch)
        elif batch.state == "new":
            _write_log(root, manifest, ledger, batch)


def _write_log(root: Path, manifest: Manifest, ledger: Ledger, batch: Batch) -> None:
    source = manifest.source(batch.source)
    if batch.log_rows is not None and source is not None:
        write_log(root, source, batch.seq, batch.log_rows)
    ledger.set_state(batch.seq, "logged")


def _view_cells(root: Path, manifest: Manifest, ledger: Ledger, store: OnlineStore,
                first: Call, keys: list[str], rows: pa.Table) -> list[Cell]:
    """The cells of the events `rows` (identities `keys`): for a stream checkpoint's call its
    view's; for a push every view's, except that an event a stream applied to some views
    already goes to the others only (`ingest_log`: per view, for streams)."""
    source = first.source.name
    if first.view is not None:
        return _checked_cells(root, manifest, store, source, rows, {first.view})
    partial = ledger.known_views(source, keys, first.workspace) \
        if ledger.streamed(first.workspace, source) else {}
    if not partial:
        return _checked_cells(root, manifest, store, source, rows)
    by_rows: dict[tuple[int, ...], set[str]] = {}
    for v in views_over(manifest, source):
        at = tuple(i for i, k in enumerate(keys) if v.name not in partial.get(k, ()))
        by_rows.setdefault(at, set()).add(v.name)
    cells: list[Cell] = []
    for at, names in by_rows.items():
        if at:
            cells += _checked_cells(root, manifest, store, source, select(rows, list(at)),
                                    names)
    return cells


def _checked_cells(root: Path, manifest: Manifest, store: OnlineStore, source: str,
                   rows: pa.Table, only: set[str] | None = None) -> list[Cell]:
    """`online_cells`, with an engine error on the records (a cast that fails on a value, a
    division by zero) as a 422 naming the view, instead of a featql error."""
    import duckdb

    try:
        return online_cells(root, manifest, store, source, rows, only)
    except duckdb.Error as e:
        view = getattr(e, "featql_view", "?")
        raise RequestError(422, "view_failed", f"the SQL of view '{view}' fails on these "
                           f"records: {str(e).splitlines()[0]}", "records") from None


def _finish(root: Path, manifest: Manifest, ledger: Ledger, store: OnlineStore,
            batch: Batch, cells: list[Cell] | None = None) -> dict[str, int]:
    """The steps left of a recorded batch (see `ingest_log`): its log files, its cells."""
    if batch.state == "done":
        return {}
    if batch.state in ("new", "applying"):  # files named by the batch: rewriting is harmless
        source = manifest.source(batch.source)
        if batch.log_rows is not None and source is not None:
            write_log(root, source, batch.seq, batch.log_rows)
    if batch.state in ("new", "logged"):  # save_redo moves the state on, in one transaction
        cells = []
        if batch.apply_rows is not None:
            cells = online_cells(root, manifest, store, batch.source, batch.apply_rows)
        ledger.save_redo(batch.seq, [(c.item, c.view, c.version, c.payload) for c in cells])
    elif cells is None:  # applying: the cells were computed before the crash
        cells = [Cell(*c) for c in ledger.redo_cells(batch.seq)]
    store.write(cells)
    ledger.set_state(batch.seq, "done")
    by_view: dict[str, int] = {}
    for c in cells:
        name = c.view.rsplit("@", 1)[0]
        by_view[name] = by_view.get(name, 0) + 1
    return by_view


# -- the online cells of new events ---------------------------------------------------------------
_ENGINES: dict[tuple[str, int], _Engine] = {}
_ENGINES_LOCK = threading.Lock()


@dataclass(eq=False)
class _Engine:
    manifest: Manifest
    engine: DuckDBEngine
    sql: dict[str, Any]  # the lowered SQL of views, their parsed statements, what is registered
    lock: threading.Lock = field(default_factory=threading.Lock)  # one call on it at a time


def _engine(root: Path, manifest: Manifest) -> _Engine:
    """A DuckDB engine kept per project and manifest (a server pushes many batches), with the
    lowered SQL of views and their parsed statements cached. Its connection runs one call at a
    time: the caller holds `lock` while it registers the events and reads the results (the
    ingest lock serializes pushes already; this keeps it so for any other caller)."""
    key = (os.path.abspath(root), id(manifest))
    with _ENGINES_LOCK:
        got = _ENGINES.get(key)
        if got is None or got.manifest is not manifest:
            from featql.engines.duckdb import DuckDBEngine

            if len(_ENGINES) > 8:
                for old in _ENGINES.values():
                    with old.lock:
                        old.engine.close()
                _ENGINES.clear()
            got = _ENGINES[key] = _Engine(manifest, DuckDBEngine(threads=1), {})
        return got


def online_cells(root: Path, manifest: Manifest, store: OnlineStore, source_name: str,
                 rows: pa.Table, only: set[str] | None = None) -> list[Cell]:
    """The cells the events `rows` of a source produce for every online view over it (or
    for the views named in `only`)."""
    kept = _engine(root, manifest)
    with kept.lock:
        return _cells(root, manifest, store, kept.engine, kept.sql, source_name, rows, only)


def _cells(root: Path, manifest: Manifest, store: OnlineStore, engine: DuckDBEngine,
           sql: dict[str, Any], source_name: str, rows: pa.Table, only: set[str] | None
           ) -> list[Cell]:
    from featql.dialects.events import EVENT_TS, input_column, lower_events
    from featql.dialects.lower import lower_view
    from featql.jobs.relations import register_upstream

    views = [v for v in views_over(manifest, source_name) if only is None or v.name in only]
    # views and other sources are registered once per engine; they read `source_name`, the
    # Arrow table of this batch's events, replaced on every call
    registered: set[str] = sql.setdefault("\0registered", set())
    fresh = [False]  # whether this batch's events are registered yet (only a query needs it)

    def query(view: FeatureView, text: str, needed: set[str] | None) -> Rows:
        got = _plain(sql, text, manifest.source(source_name), rows, needed)
        if got is not None:
            return got
        if not fresh[0]:
            registered.add(source_name)
            engine.register_arrow(source_name, rows)
            fresh[0] = True
        register_upstream(engine, manifest, root, view.depends_on, registered, sql)
        return run_query(engine, sql, view.name, text)

    cells: list[Cell] = []
    for view in views:
        if view.kind == "row":
            if view.name not in sql:
                sql[view.name] = lower_view(manifest, view.name, "duckdb")
            cells.extend(_row_cells(view, query(view, sql[view.name], None)))
            continue
        ev_key = "events:" + view.name
        if ev_key not in sql:
            sql[ev_key] = lower_events(manifest, view.name, "duckdb")
        needed = {*(k.name for k in view.keys), EVENT_TS,
                  *(input_column(a.name) for a in view.aggregations)}
        events = query(view, sql[ev_key], needed)
        if events.num_rows == 0:
            continue
        keys = [k.name for k in view.keys]
        key_cols = [events.column(k) for k in keys]
        times = [codec.to_micros(t) for t in events.column(EVENT_TS)]
        inputs = []
        for a in view.aggregations:
            col = input_column(a.name)
            inputs.append(events.column(col) if col in events.names else [1] * events.num_rows)
        per_item: dict[str, list[tuple[int, list[Any]]]] = {}
        for i in range(events.num_rows):
            key = [kc[i] for kc in key_cols]
            if any(k is None for k in key):
                continue
            per_item.setdefault(codec.item_key(view.entity, key), []).append(
                (times[i], [plain(col[i]) for col in inputs]))
        cells.extend(_aggregate_cells(manifest, view, store, per_item))
    return cells


def _plain(cache: dict[str, Any], text: str, source: Source | None, rows: pa.Table,
           needed: set[str] | None) -> Rows | None:
    """The query's rows read off the events when it is a plain projection of `source`
    (`ingest_query`); None: run it on DuckDB. `FEATQL_PUSH_PLAIN=0` turns this off."""
    key = "\0plain:" + text
    if key not in cache:
        cache[key] = None if os.environ.get("FEATQL_PUSH_PLAIN") == "0" or source is None \
            else plain_projection(text, source.name, {c.name: c.type for c in source.columns})
    projection = cache[key]
    if projection is None or source is None:
        return None
    from featql.semantics.types import arrow_type

    for c in source.columns:  # the types records_table gives (a CAST to them is no-op)
        i = rows.schema.get_field_index(c.name)
        if i < 0 or rows.schema.field(i).type != arrow_type(c.type):
            return None
    return plain_rows(projection, rows, needed)


def _row_cells(view: FeatureView, table: Rows) -> list[Cell]:
    """Per entity the newest of the batch's rows by the semantics core's order (event time,
    created, feature tuple, NULL smallest), as a cell versioned like the online load's: the
    store keeps it only if it is newer than the row it holds (last-writer-wins)."""
    from featql.online.base import version
    from featql.semantics.rows import known, order_key

    now_us = time.time_ns() // 1000
    keys = [k.name for k in view.keys]
    feats = [f.name for f in view.features]
    cols = {c: table.column(c) for c in [*keys, view.timestamp, *feats]}
    created = table.column(CREATED) if CREATED in table.names else [None] * table.num_rows
    best: dict[tuple[Any, ...], tuple[tuple[Any, ...], int]] = {}
    for i in range(table.num_rows):
        key = tuple(cols[k][i] for k in keys)
        ts = cols[view.timestamp][i]
        if ts is None or any(k is None for k in key):
            continue
        ts_us = codec.to_micros(ts)
        c_us = None if created[i] is None else codec.to_micros(created[i])
        if view.known_at and not known(c_us, now_us):
            continue  # as known at: a row not created yet (or never: NULL) is not served
        rank = order_key(ts_us, c_us, [cols[f][i] for f in feats])
        if key not in best or rank > best[key][0]:
            best[key] = (rank, i)
    name = codec.cell_name(view)
    out = []
    for key, (rank, i) in best.items():
        ts_us = rank[0]
        c_us = None if created[i] is None else codec.to_micros(created[i])
        payload = codec.encode_row(ts_us, c_us, [cols[f][i] for f in feats])
        out.append(Cell(codec.item_key(view.entity, key), name, version(ts_us, c_us, payload),
                        payload))
    return out


def _aggregate_cells(manifest: Manifest, view: FeatureView, store: OnlineStore,
                     per_item: dict[str, list[tuple[int, list[Any]]]]) -> list[Cell]:
    name = codec.cell_name(view)
    stream = is_stream_view(manifest, view)
    current = store.read(list(per_item), [name], [name])
    slide = view.slide_seconds or 1
    out = []
    for item, events in per_item.items():
        payload = current.get(item, {}).get(name)
        cell = add_events(view, _as_stream_cell(view, payload), events)
        cell.batch = not stream
        body = encode(cell)
        newest = max(t for t, _ in [*cell.events, *events]) // US
        ends = [floor(newest, slide) + slide, *(cell.starts[-1:] and [cell.starts[-1] + slide])]
        if cell.hi is not None:
            ends.append(cell.hi)
        out.append(Cell(item, name, bump(max(ends) * US, body), body))
    return out


def _as_stream_cell(view: FeatureView, payload: bytes | None) -> StreamCell:
    if payload is None:
        return StreamCell([], {c: [] for c in partial_columns(view)}, [], None)
    if payload[:4] == b"FQS1":
        return decode(payload)
    from featql.online.tiles import decode_tiles, merged_at

    hi = merged_at(payload)
    # (a lifetime view's load folded the tiles before its longest finite window into one)
    kept_from = None if hi is None else hi - finite_reach(view)
    coarse: Any = ()
    if payload[:4] == b"FQC1":  # compacted by the load: its coarse tiles carry over verbatim
        from featql.online.compacted import stream_parts

        starts, columns, coarse, coarse_columns = stream_parts(view, payload)
    else:
        tiles = decode_tiles(payload, partial_columns(view))
        starts, columns = tiles.starts, {c: list(v) for c, v in tiles.columns.items()}
        coarse_columns = None
    cell = from_tiles(view, starts, columns, kept_from, coarse, coarse_columns)
    cell.hi = hi
    return cell


_OFFSET = 1 << 63
_LAST = [0]


def bump(primary_us: int, payload: bytes) -> str:
    """The version of an aggregate cell written by a push: (the end of the newest slide it
    holds, the write time in µs, strictly increasing in the process, digest), the fixed-width
    hex layout of `featql.online.base.version`. The lock serializes pushes and a load's version
    is (end of its tiles, load time), so a push over a loaded cell (which it includes) wins,
    and a later load of tiles ending later wins over both."""
    import hashlib

    stamp = _LAST[0] = max(_LAST[0] + 1, time.time_ns() // 1000)
    digest = hashlib.blake2b(payload, digest_size=8).hexdigest()
    return f"{primary_us + _OFFSET:016x}{stamp + _OFFSET:016x}{digest}"


def ingested_count(root: Path, source: str) -> int:
    """Events of `source` in its offline log through ingest (the ledger's count)."""
    with locked(Path(root)) as ledger:
        return ledger.counts(source)

