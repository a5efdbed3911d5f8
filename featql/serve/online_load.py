"""Online materialization: the latest value per entity and the recent tiles, into the online store.

`load_online(project_root, manifest, workspace, views=None, progress=True)`:
- row-level view → per entity the offline row with the greatest (event time, created, features)
  — the same order the training set uses — written as a cell versioned (event time, created).
- aggregate view → per entity the tiles of the longest window before `hi` (the end of the
  materialized data, floored to the slide), packed in one cell versioned by `hi`.

Incremental: the store remembers per view how far it was loaded (`get_state`); the next run reads
only rows at or after that event time (row-level) or skips an aggregate view whose `hi` did not
move. Idempotent: re-writing the same cell is a no-op (versions are not newer). Cells are named
`<view>@<fingerprint>`, so a redefined view never mixes with values of its old definition.

Rows come from the offline store when `featql.runtime.offline_store` exists, else they are
computed from the sources with the dialect SQL on DuckDB; callers may pass `scan` themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from featql.compiler.ir import FeatureView, Manifest
from featql.serve import codec
from featql.serve.codec import cell_name
from featql.serve.online.base import Cell, OnlineStore, version

if TYPE_CHECKING:
    import pyarrow as pa

    from featql.compiler.config import ProjectConfig

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
    from featql.dialects.lower import lower_view
    from featql.runtime.duckdb_engine import DuckDBEngine

    engine = DuckDBEngine()
    registered: set[str] = set()

    def register(name: str) -> None:
        if name in registered:
            return
        source = manifest.source(name)
        if source is not None:
            engine.register_source(source, root)
        else:
            view = manifest.view(name)
            assert view is not None, name
            for dep in view.depends_on:
                register(dep)
            engine.register_sql(name, lower_view(manifest, name, "duckdb"))
        registered.add(name)

    def scan(view: FeatureView, start: dt.datetime | None, end: dt.datetime | None) -> pa.Table:
        register(view.name)
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
    try:
        from featql.runtime.offline_store import OfflineStore
    except ImportError:
        return source_scan(manifest, root)
    store: Any = OfflineStore(root, config, workspace)  # pragma: no cover - offline engineer's

    def scan(view: FeatureView, start: dt.datetime | None, end: dt.datetime | None) -> pa.Table:
        return store.scan(view.name, start, end, None)

    return scan, (lambda: None)


# -- latest rows and tile sets -----------------------------------------------------------------
def _us(v: Any) -> int | None:
    return None if v is None else codec.to_micros(v)


def _order_key(row: dict[str, Any], ts: str, features: Sequence[str]) -> tuple[Any, ...]:
    """(event, created, features...) with NULL lowest: the training set's tie-break."""
    def k(v: Any) -> tuple[int, Any]:
        return (0, 0) if v is None else (1, v)
    return (row[ts], k(row.get(CREATED)), *(k(row[f]) for f in features))


def latest_rows(view: FeatureView, table: pa.Table) -> Iterator[Cell]:
    keys = [k.name for k in view.keys]
    feats = [f.name for f in view.features]
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    for batch in table.to_batches():
        for row in batch.to_pylist():
            if row[view.timestamp] is None or any(row[k] is None for k in keys):
                continue
            key = tuple(row[k] for k in keys)
            cur = best.get(key)
            try:
                newer = cur is None or _order_key(row, view.timestamp, feats) > _order_key(
                    cur, view.timestamp, feats)
            except TypeError:  # incomparable feature values (lists): keep the first seen
                newer = False
            if newer:
                best[key] = row
    name = cell_name(view)
    for key, row in best.items():
        event, created = codec.to_micros(row[view.timestamp]), _us(row.get(CREATED))
        payload = codec.encode_row(event, created, [row[f] for f in feats])
        yield Cell(codec.item_key(view.entity, key), name, version(event, created, payload),
                   payload)


def tile_cells(view: FeatureView, table: pa.Table, hi_us: int) -> Iterator[Cell]:
    keys = [k.name for k in view.keys]
    cols = codec.partial_columns(view)
    per_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for batch in table.to_batches():
        for row in batch.to_pylist():
            per_key.setdefault(tuple(row[k] for k in keys), []).append(row)
    name = cell_name(view)
    for key, rows in per_key.items():
        rows.sort(key=lambda r: r[TILE_START])
        starts = [codec.to_micros(r[TILE_START]) // 1_000_000 for r in rows]
        payload = codec.encode_tiles(starts, {c: [r.get(c) for r in rows] for c in cols})
        yield Cell(codec.item_key(view.entity, key), name, version(hi_us, None, payload),
                   payload)


# -- the load ------------------------------------------------------------------------------------
def load_online(project_root: Path | str, manifest: Manifest, workspace: str,
                views: Sequence[str] | None = None, progress: bool = True, *,
                end: dt.datetime | None = None, store: OnlineStore | None = None,
                scan: Scan | None = None, full: bool = False) -> LoadReport:
    """Load the online store of `workspace` from the offline data (see module doc).

    `end` (naive UTC) bounds the data loaded (rows before it, tiles ending by it); `full`
    ignores the incremental state.
    """
    from featql.compiler.project import compile_project
    from featql.serve.online import open_store

    root = Path(project_root)
    config = compile_project(root).config if store is None or scan is None else None
    own_store = store is None
    if store is None:
        assert config is not None
        store = open_store(config, root, workspace)
    close_scan: Callable[[], None] = lambda: None  # noqa: E731
    if scan is None:
        assert config is not None
        scan, close_scan = default_scan(manifest, root, config, workspace)
    chosen = [v for v in manifest.views if v.online and (views is None or v.name in views)]
    results = []
    try:
        with _Progress(progress) as bar:
            for view in chosen:
                results.append(_load_view(view, store, scan, end, full, bar))
    finally:
        close_scan()
        if own_store:
            store.close()
    return LoadReport(workspace, store.kind, tuple(results))


def _load_view(view: FeatureView, store: OnlineStore, scan: Scan, end: dt.datetime | None,
               full: bool, bar: _Progress) -> ViewLoad:
    state_key = "loaded:" + cell_name(view)
    raw = None if full else store.get_state(state_key)
    state = orjson.loads(raw) if raw else {}
    if view.kind == "aggregate":
        slide = view.slide_seconds or 1
        longest = max(view.windows) if view.windows else slide
        if end is not None:
            hi_s = codec.to_micros(end) // 1_000_000
            hi_s -= hi_s % slide
        else:
            probe = scan(view, None, None)
            if probe.num_rows == 0:
                return ViewLoad(view.name, "aggregate", 0, 0, 0, None, "no tiles")
            import pyarrow.compute as pc

            last = pc.max(probe.column(TILE_START)).as_py()
            hi_s = codec.to_micros(last) // 1_000_000 + slide
        if state.get("hi") == hi_s:
            return ViewLoad(view.name, "aggregate", 0, 0, 0,
                            codec.from_micros(hi_s * 1_000_000).isoformat(), "up to date")
        lo = codec.from_micros((hi_s - longest) * 1_000_000)
        table = scan(view, lo, codec.from_micros(hi_s * 1_000_000))
        cells = list(tile_cells(view, table, hi_s * 1_000_000))
        rep = store.write(bar.track(cells, view.name))
        store.put_state(state_key, orjson.dumps({"hi": hi_s}))
        return ViewLoad(view.name, "aggregate", len(cells), rep.written, rep.skipped,
                        codec.from_micros(hi_s * 1_000_000).isoformat())
    start = codec.from_micros(state["through"]) if state.get("through") is not None else None
    table = scan(view, start, end)
    cells = list(latest_rows(view, table))
    rep = store.write(bar.track(cells, view.name))
    through = state.get("through")
    if table.num_rows:
        import pyarrow.compute as pc

        top = pc.max(table.column(view.timestamp)).as_py()
        through = max(through or -(1 << 62), codec.to_micros(top))
        store.put_state(state_key, orjson.dumps({"through": through}))
    return ViewLoad(view.name, "row", len(cells), rep.written, rep.skipped,
                    None if through is None else codec.from_micros(through).isoformat())


class _Progress:
    """A rich progress bar over the cells written (silent when disabled)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._bar: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            from featql.console import console

            self._bar = Progress(TextColumn("online ← {task.description}"), BarColumn(),
                                 MofNCompleteColumn(), console=console(stderr=True),
                                 transient=False)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def track(self, cells: list[Cell], label: str) -> Iterator[Cell]:
        if self._bar is None:
            yield from cells
            return
        task = self._bar.add_task(label, total=len(cells))
        for c in cells:
            yield c
            self._bar.advance(task)
