"""Offline compaction: the coarse tiles of an aggregate view's complete coarse periods.

`compact_offline(root, manifest, workspace, views=None)` runs after `materialize` (and alone as
`featql materialize --compact`). For every aggregate view materialized offline whose windows
have coarse levels (`featql.semantics.compaction.levels`: 1 day for the example's 30-day
window on a 1-hour slide), each level's *complete* periods (`[c, c + R)`, c a multiple of R,
every schedule interval it overlaps recorded as done) are combined from the stored fine tiles,
per entity, with `compaction.combine` (the partials of the union: exact for exact functions, a
DOUBLE sum as its exact expansion of doubles, stored as BINARY; sketches unioned: the HLL
registers, the KLL items, both deterministic, so the same fine tiles give the same bytes), and
written next to the fine tiles:

    <view folder>/_compact/<R>s.parquet     keys, _tile_start (the period), the partials

written to a temporary file and renamed over the old one (a reader sees the old or the new
file, never half of one); rows sorted and fixed writer options, so a re-run over the same fine
tiles writes the same bytes and is skipped (`unchanged`). The whole level is recomputed from
the fine tiles each run (simple and always consistent with them; incremental compaction is not
done). Local offline stores only: an `s3://` store is reported as skipped.

Who reads them: nothing yet, and the point-in-time join keeps reading fine tiles (its windows
end at any slide, so it would need the same fine edges; exact either way). The online load
computes its cells' coarse tiles itself from the fine tiles it reads (each load plans its
coarse tiles around its own window edges, `featql.online.compacted`). They are the stored
form a reader of long windows (a training set over 90-day windows, a future online load
reading fewer rows) can use exactly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featql.core.ir import FeatureView, Manifest
from featql.jobs.relations import view_start
from featql.offline.store import OfflineStore
from featql.registry.materializations import MaterializationState
from featql.semantics import compaction
from featql.semantics.aggregates import (
    FUNCTIONS,
    ListWindow,
    for_aggregation,
    partial_column,
    partial_columns,
    tile_columns,
)
from featql.semantics.types import arrow_type

if TYPE_CHECKING:
    import pyarrow as pa

    from featql.core.config import ProjectConfig

TILE_START = "_tile_start"
FOLDER = "_compact"


@dataclass(frozen=True)
class LevelRun:
    view: str
    resolution: int  # seconds
    periods: int  # complete coarse periods
    fine_tiles: int  # read
    coarse_tiles: int  # written
    written: bool  # False: the file already held these bytes
    note: str = ""


def compacted_path(store: OfflineStore, view: FeatureView, resolution: int) -> str:
    return f"{store.view_dir(view.name, view.stored_as)}/{FOLDER}/{resolution}s.parquet"


def complete_periods(view: FeatureView, done: Sequence[tuple[datetime, datetime]],
                     resolution: int) -> list[datetime]:
    """Starts of the periods of `resolution` seconds wholly covered by done intervals, from
    the period holding the view's start on (rows before it stay fine tiles only)."""
    if not done:
        return []
    epoch = datetime(1970, 1, 1)
    step = timedelta(seconds=resolution)
    first = view_start(view)
    first = epoch + (first - epoch) // step * step  # the period holding the start
    covered: list[list[datetime]] = []
    for a, b in sorted(done):
        a = min(a, first) if a <= view_start(view) else a  # the first interval: all before
        if covered and a <= covered[-1][1]:
            covered[-1][1] = max(covered[-1][1], b)
        else:
            covered.append([a, b])
    out: list[datetime] = []
    for a, b in covered:
        c = epoch + -((epoch - a) // step) * step  # ceil to the period
        while c + step <= b:
            out.append(c)
            c += step
    return out


def compact_view(store: OfflineStore, state: MaterializationState, workspace: str,
                 view: FeatureView) -> list[LevelRun]:
    levels = compaction.levels(view)
    if view.kind != "aggregate" or not levels:
        return []
    vdir = store.view_dir(view.name, view.stored_as)
    if vdir.startswith("s3://"):
        return [LevelRun(view.name, r, 0, 0, 0, False, "skipped: s3:// stores are not "
                         "compacted yet") for r in levels]
    done = [(d.start, d.end) for d in state.done(workspace, view.name, view.stored_as)]
    out = []
    for r in levels:
        periods = complete_periods(view, done, r)
        if not periods:
            out.append(LevelRun(view.name, r, 0, 0, 0, False, "no complete period"))
            continue
        step = timedelta(seconds=r)
        fine = store.scan(view.name, periods[0], periods[-1] + step)
        table, n_coarse = _combine(view, fine, r, set(periods))
        written = _write(table, compacted_path(store, view, r))
        out.append(LevelRun(view.name, r, len(periods), fine.num_rows, n_coarse, written))
    return out


def _combine(view: FeatureView, fine: pa.Table, resolution: int, periods: set[datetime]
             ) -> tuple[pa.Table, int]:
    import pyarrow as pa

    keys = [k.name for k in view.keys]
    names = partial_columns(view)
    types = dict(tile_columns(view))
    fine = fine.sort_by([*((k, "ascending") for k in keys), (TILE_START, "ascending")])
    key_cols = [fine.column(k).to_pylist() for k in keys]
    starts = fine.column(TILE_START).to_pylist()
    data = {c: fine.column(c).to_pylist() for c in names}
    specs = [(for_aggregation(a), a.name,
              {p.name: p.type for p in FUNCTIONS[a.function].partials(a.type)})
             for a in view.aggregations]
    epoch = datetime(1970, 1, 1)
    step = timedelta(seconds=resolution)
    rows: dict[str, list[Any]] = {**{k: [] for k in keys}, TILE_START: [],
                                  **{c: [] for c in names}}
    i, n = 0, fine.num_rows
    while i < n:
        key = tuple(kc[i] for kc in key_cols)
        c = epoch + (starts[i] - epoch) // step * step
        j = i + 1
        while j < n and tuple(kc[j] for kc in key_cols) == key and starts[j] < c + step:
            j += 1
        if c in periods and not any(k is None for k in key):
            window = ListWindow({name: data[name][i:j] for name in names}, 0, j - i)
            for k, v in zip(keys, key, strict=True):
                rows[k].append(v)
            rows[TILE_START].append(c)
            for fn, agg, ptypes in specs:
                for p, v in compaction.combine(fn, agg, window, ptypes).items():
                    rows[partial_column(agg, p)].append(v)
        i = j
    fields = [*(fine.schema.field(k) for k in keys), pa.field(TILE_START, pa.timestamp("us"))]
    for c in names:
        binary = any(isinstance(v, bytes) for v in rows[c])
        fields.append(pa.field(c, pa.binary() if binary else arrow_type(types[c])))
    return pa.table(rows, schema=pa.schema(fields)), len(rows[TILE_START])


def _write(table: pa.Table, path: str) -> bool:
    """Write `table` to `path` atomically; False when the file already holds these rows."""
    import pyarrow.parquet as pq

    target = Path(path)
    if target.exists():
        try:
            if pq.read_table(target).equals(table):
                return False
        except OSError:
            pass
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd", use_dictionary=False,
                   write_statistics=True)
    os.replace(tmp, target)
    return True


def read_compacted(store: OfflineStore, view: FeatureView, resolution: int) -> pa.Table | None:
    """The coarse tiles of one level, or None when the view was not compacted at it."""
    import pyarrow.parquet as pq

    path = Path(compacted_path(store, view, resolution))
    return pq.read_table(path) if path.exists() else None


def compact_offline(project_root: str | Path, manifest: Manifest, workspace: str,
                    views: Sequence[str] | None = None,
                    config: ProjectConfig | None = None) -> list[LevelRun]:
    """Compact every chosen aggregate view's complete coarse periods (see module doc)."""
    root = Path(project_root)
    if config is None:
        from featql.core.config import load_config
        from featql.core.diagnostics import Diagnostics

        config = load_config(root, "featql.toml", Diagnostics())
    from featql.jobs.materialize import select_views

    store = OfflineStore(root, config, workspace, manifest)
    state = MaterializationState(root)
    out: list[LevelRun] = []
    for view in select_views(manifest, views):
        out.extend(compact_view(store, state, workspace, view))
    return out
