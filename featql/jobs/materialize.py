"""Batch materialization: view rows (or tiles) per schedule interval into the offline store.

Intervals follow each view's schedule from its `start` (the first one also holds every earlier
row). A run covers `start` (or `--start`, aligned down) up to `--end`, or else up to the end of
the interval holding the view's latest event, never past now. Incremental by default: intervals
recorded as done for the view's current storage fingerprint are skipped (an aggregate view's
new definition takes its unchanged columns from an older one's tiles: `featql.jobs.reuse`).
`overwrite=True` recomputes the whole range and swaps it in as one transaction per view. Runs
are idempotent: the files of an interval are a pure function of its data (see `offline_store`).
Row-level views store one row per (keys, event time): the tie winner of PRODUCT §3 (greatest
created, then feature tuple); a `known_at` view stores every (keys, event time, created)
version, since which one wins at (keys, event time) depends on the time asked about (only rows
created by then are seen). A `known_at` aggregate view's tiles hold a partial per (keys, tile,
time known) (`_featql_known`), and are never rebuilt from an older definition's tiles.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from featql.core.config import ProjectConfig
from featql.core.diagnostics import did_you_mean
from featql.core.errors import UserError
from featql.core.ir import FeatureView, Manifest
from featql.core.progress import SILENT, Advance, Progress
from featql.dialects.pit_sql import dedup_rows_sql
from featql.engines.engine import Engine, open_engine
from featql.jobs.relations import ProjectData, time_column, view_start
from featql.jobs.reuse import ViewReuse, find_reuse, reused_tiles
from featql.jobs.stale import LateRows, StaleIntervals, interval_range
from featql.offline.locks import WriterLock
from featql.offline.store import OfflineStore, ViewLayout
from featql.registry.materializations import Done, MaterializationState

CHUNK_SECONDS = 7 * 86400
"""Intervals are computed by one query per chunk of about this much event time."""


@dataclass(frozen=True)
class ViewRun:
    view: str
    fingerprint: str
    intervals: int  # in the requested range
    written: int  # intervals computed by this run
    rows: int
    files: int
    note: str = ""
    recomputed: int = 0  # of `written`: intervals already done, computed again (late rows)
    recomputed_span: str = ""  # their event-time span, `2024-01-05..2024-01-08`
    reason: str = ""  # why (`featql.jobs.stale.StaleIntervals.reason`)
    reused: int = 0  # of `written`: built from an older definition's tiles (reuse.py)


@dataclass(frozen=True)
class MaterializeReport:
    workspace: str
    engine: str
    views: tuple[ViewRun, ...]
    online: Any = None
    compacted: tuple[Any, ...] = ()  # featql.jobs.compact.LevelRun per view and coarse level

    @property
    def written(self) -> int:
        return sum(v.written for v in self.views)

    @property
    def recomputed(self) -> int:
        return sum(v.recomputed for v in self.views)


def parse_time(text: str | datetime | None, what: str) -> datetime | None:
    if text is None or isinstance(text, datetime):
        return text
    try:
        t = datetime.fromisoformat(text)
    except ValueError as e:
        raise UserError(f"{what} '{text}' is not a date or timestamp (e.g. 2024-01-31 or "
                        "2024-01-31T12:00)") from e
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def select_views(manifest: Manifest, names: Sequence[str] | None) -> list[FeatureView]:
    if not names:
        return [v for v in manifest.views if v.offline]
    out = []
    for name in names:
        view = manifest.view(name)
        if view is None:
            hint = did_you_mean(name, [v.name for v in manifest.views])
            raise UserError(f"no feature view named '{name}'" + (f" ({hint})" if hint else ""))
        out.append(view)
    return out


def schedule_intervals(view: FeatureView, data_end: datetime | None, start: datetime | None,
                   end: datetime | None, now: datetime) -> list[tuple[datetime, datetime]]:
    """The view's schedule intervals in the requested range (see module doc)."""
    first = view_start(view)
    step = timedelta(seconds=view.schedule_seconds)
    if end is not None:
        k_hi = (end - first) // step
    elif data_end is None:
        return []
    else:
        k_hi = max(0, (data_end - first) // step) + 1
    k_hi = min(k_hi, (now - first) // step)
    k_lo = max(0, (start - first) // step) if start is not None else 0
    return [(first + k * step, first + (k + 1) * step) for k in range(k_lo, k_hi)]


def _chunks(intervals: list[tuple[datetime, datetime]], step_seconds: int
            ) -> Iterator[list[tuple[datetime, datetime]]]:
    per = max(1, CHUNK_SECONDS // max(1, step_seconds))
    run: list[tuple[datetime, datetime]] = []
    for iv in intervals:
        if run and (len(run) >= per or run[-1][1] != iv[0]):
            yield run
            run = []
        run.append(iv)
    if run:
        yield run


def materialize(project_root: str | Path, manifest: Manifest, workspace: str = "dev",
                views: Sequence[str] | None = None, start: str | datetime | None = None,
                end: str | datetime | None = None, overwrite: bool = False,
                engine: str | Engine | None = None, progress: Progress = SILENT, *,
                config: ProjectConfig | None = None, online: bool = False,
                now: datetime | None = None, compact: bool = True,
                lock_timeout: float | None = 60.0) -> MaterializeReport:
    """Materialize views into the offline store of `workspace` (see module doc); `compact`:
    then store the complete coarse periods of long windows (`featql.jobs.compact`). `online`
    then loads the online store; stream views under the ingest lock, waited for at most
    `lock_timeout` seconds (`featql.jobs.stream_handover.load_online_locked`)."""
    root = Path(project_root)
    if config is None:
        from featql.core.config import load_config
        from featql.core.diagnostics import Diagnostics

        config = load_config(root, "featql.toml", Diagnostics())
    lo, hi = parse_time(start, "--start"), parse_time(end, "--end")
    if lo and hi and hi <= lo:
        raise UserError("--end must be after --start")
    chosen = select_views(manifest, views)
    now = now or datetime.now(UTC).replace(tzinfo=None)
    eng = engine if engine is not None and not isinstance(engine, str) else open_engine(
        engine, config, deterministic=True)
    runs: list[ViewRun] = []
    try:
        state = MaterializationState(root)
        # late rows (stale.py): the sources' files listed before any query reads them, so a
        # file logged while this run reads is new to the next run
        late = LateRows(root, manifest, workspace, state, progress)
        late.snapshot(chosen)
        data = ProjectData(eng, manifest, root)
        store = OfflineStore(root, config, workspace, manifest)
        reuses: dict[str, ViewReuse] = {}
        work: list[tuple[FeatureView, list[tuple[datetime, datetime]], int,
                         StaleIntervals]] = []
        for view in chosen:
            data_end = None
            if hi is None:
                col = time_column(view)
                q = '"' if eng.name == "duckdb" else "`"
                res = eng.query(f"SELECT max({q}{col}{q}) AS m FROM ({data.fresh_sql(view)}) x")
                data_end = res.column(0)[0].as_py()
                if data_end is not None and getattr(data_end, "tzinfo", None):
                    data_end = data_end.replace(tzinfo=None)
            planned = schedule_intervals(view, data_end, lo, hi, now)
            done_ivs = state.done(workspace, view.name, view.stored_as)
            done = {d.start for d in done_ivs}
            todo = planned if overwrite else [iv for iv in planned if iv[0] not in done]
            stale = late.check(view, done_ivs, view_start(view), lo, hi, now)
            todo = sorted(set(todo) | set(stale.recompute))
            work.append((view, todo, len(planned), stale))
            # (a known_at view's tiles are keyed by when they were known too: never reused)
            found = None if overwrite or view.known_at else find_reuse(
                store, state, late, workspace, view, todo, lo, hi, now)
            if found is not None:  # compute only the new columns (reuse.py)
                reuses[view.name] = found
        total = sum(len(list(_view_chunks(v, t, reuses.get(v.name)))) for v, t, _, _ in work)
        with progress.task("materializing", total) as advance:
            for view, todo, n_planned, stale in work:
                run = _run_view(view, todo, n_planned, data, store, state, workspace,
                                overwrite, advance, reuses.get(view.name))
                late.record(stale)  # the files as listed at the start: what was read
                if stale.recompute and not overwrite:
                    run = replace(run, recomputed=len(stale.recompute), reason=stale.reason,
                                  recomputed_span=interval_range(stale.recompute))
                runs.append(run)
    finally:
        if engine is None or isinstance(engine, str):
            eng.close()
    compacted: tuple[Any, ...] = ()
    if compact:
        from featql.jobs.compact import compact_offline

        compacted = tuple(compact_offline(root, manifest, workspace,
                                          [v.name for v in chosen], config))
    report = MaterializeReport(workspace, eng.name, tuple(runs), compacted=compacted)
    if online:
        from featql.jobs.stream_handover import load_online_locked

        report = MaterializeReport(workspace, eng.name, tuple(runs), load_online_locked(
            root, manifest, workspace, views, progress, config, lock_timeout), compacted)
    return report


def _run_view(view: FeatureView, todo: list[tuple[datetime, datetime]], n_planned: int,
              data: ProjectData, store: OfflineStore, state: MaterializationState,
              workspace: str, overwrite: bool, advance: Advance,
              reuse: ViewReuse | None = None) -> ViewRun:
    if not todo:
        return ViewRun(view.name, view.stored_as, n_planned, 0, 0, 0,
                       "up to date" if n_planned else "no data in range")
    lay = ViewLayout.of(view)
    # one writer per view at a time: wait for another run's lock, hold it until the last commit
    lock = store.writer_lock(view.name).acquire(
        lambda holder: advance(0, f"waiting for another materialize of {view.name}..."))
    try:
        return _write_view(view, todo, n_planned, lay, lock, data, store, state, workspace,
                           overwrite, advance, reuse)
    finally:
        lock.release()


def _write_view(view: FeatureView, todo: list[tuple[datetime, datetime]], n_planned: int,
                lay: ViewLayout, lock: WriterLock, data: ProjectData, store: OfflineStore,
                state: MaterializationState, workspace: str, overwrite: bool,
                advance: Advance, reuse: ViewReuse | None = None) -> ViewRun:
    first = view_start(view)
    rows = files = reused = 0
    txn = store.begin(lay, lock) if overwrite else None
    recorded: list[Done] = []
    for chunk in _view_chunks(view, todo, reuse):
        a, b = chunk[0][0], chunk[-1][1]
        table = None
        if reuse is not None and a in reuse.covered:  # older tiles + only the new partials
            table = reused_tiles(reuse, chunk, data, store, data.manifest)
            reused += len(chunk) if table is not None else 0
        if table is None:
            sql = data.fresh_sql(view, None if a == first else a, b)
            if view.kind == "row" and not view.known_at:  # known_at: every version (doc)
                sql = dedup_rows_sql(data.engine.name, sql, [n for n, _ in lay.columns],
                                     [k.name for k in view.keys], view.timestamp,
                                     [f.name for f in view.features])
            table = data.engine.query(sql)
        current = txn or store.begin(lay, lock)
        stats = current.add(table, chunk, open_below=first)
        done = [Done(s, e, *stats[s]) for s, e in chunk]
        if txn is None:
            current.commit()
            state.record(workspace, view.name, view.stored_as, done)
        else:
            recorded.extend(done)
        rows += sum(d.rows for d in done)
        files += sum(d.files for d in done)
        advance(1, f"materializing {view.name}")
    if txn is not None:
        txn.commit()
        state.record(workspace, view.name, view.stored_as, recorded)
    return ViewRun(view.name, view.stored_as, n_planned, len(todo), rows, files,
                   reuse.note(reused) if reuse is not None and reused else "", reused=reused)


def _view_chunks(view: FeatureView, todo: list[tuple[datetime, datetime]],
                 reuse: ViewReuse | None) -> Iterator[list[tuple[datetime, datetime]]]:
    def cut(ivs: list[tuple[datetime, datetime]]) -> Iterator[list[tuple[datetime, datetime]]]:
        return _chunks(ivs, view.schedule_seconds)

    return reuse.chunks(todo, cut) if reuse is not None else cut(todo)
