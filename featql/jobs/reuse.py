"""Compute only what is new: an aggregate view's intervals from an older definition's tiles.

When a view's storage fingerprint changed but some of its column groups did not (an
aggregation added, removed, or one of several changed; `featql.registry.reuse` decides from
`FeatureView.stored`), an interval the older data holds is written as:

1. the older interval's tiles, only the unchanged groups' partial columns (read from the
   offline store: no engine query, no source scan);
2. the partials of the other groups, computed by the engine alone: the view lowered with only
   those aggregations (`filtered_events` and `tiles` of the same FROM, WHERE and GROUP BY);
3. both joined on (keys, tile start), full outer; the rows a tile set has depend only on the
   FROM, WHERE and GROUP BY, which the unchanged groups' identities cover, so every tile is on
   both sides. If one is not (it would mean the identities lied), the chunk is computed whole.

The join runs in an embedded DuckDB on the two Arrow tables whatever the engine (keys match
with IS NOT DISTINCT FROM, so NULL keys join too); values are copied, never recomputed, so the
files equal a from-scratch materialization's (`split_rows` sorts every interval the same way).

Which older data: every storage fingerprint of the view in the workspace's offline store whose
`_featql_view.json` lists column groups, ranked by groups shared, then intervals covered. An
interval is taken from it when it is recorded as done there and not stale (its sources' files
unchanged since: `featql.jobs.stale`). The view's first interval also holds every earlier row,
so it is taken only when the older definition started at the same time. Row-level views are
never reused (`featql.registry.reuse.ROW_VIEW_REASON`), nor is anything under `--overwrite`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from featql.core.ir import FeatureView, Manifest
from featql.jobs.relations import ProjectData, ts_literal, view_start
from featql.jobs.stale import LateRows
from featql.offline.store import TILE_START, OfflineStore, ViewLayout
from featql.registry.materializations import MaterializationState
from featql.registry.reuse import Reuse, reuse_from
from featql.semantics.aggregates import partial_column, tile_partials

Interval = tuple[datetime, datetime]
ONE_SIDED = "_featql_one_sided"  # in the join: a tile that only one side has


@dataclass(frozen=True)
class ViewReuse:
    """How one run of a view reuses older tiles: `reuse` in the intervals of `covered`."""

    view: FeatureView
    reuse: Reuse
    covered: frozenset[datetime]  # interval starts taken from the older data
    listed: dict[str, list[str]] = field(default_factory=dict, compare=False)  # its files

    def files(self, store: OfflineStore) -> list[str]:
        """The older data's files, listed once (the writer lock held meanwhile keeps them)."""
        if "all" not in self.listed:
            self.listed["all"] = store.files(self.view.name, self.reuse.base)
        return self.listed["all"]

    def chunks(self, todo: list[Interval], cut: Callable[[list[Interval]], Iterator[list[Interval]]]
               ) -> Iterator[list[Interval]]:
        """`todo` in chunks (`cut`) that are either all reused or all computed whole."""
        yield from cut([iv for iv in todo if iv[0] in self.covered])
        yield from cut([iv for iv in todo if iv[0] not in self.covered])

    def note(self, reused: int) -> str:
        r = self.reuse
        what = ", ".join(r.computed) if r.computed else "nothing"
        return (f"{reused} interval(s) computed {what} only; {', '.join(r.kept)} reused from "
                f"{r.base}")


def find_reuse(store: OfflineStore, state: MaterializationState, late: LateRows,
               workspace: str, view: FeatureView, todo: list[Interval],
               lo: datetime | None, hi: datetime | None, now: datetime) -> ViewReuse | None:
    """The older data `view`'s intervals in `todo` can be built from, or None."""
    if view.kind != "aggregate" or not view.stored or not todo:
        return None
    new_lay = ViewLayout.of(view)
    first = view_start(view)
    best: tuple[tuple[int, int, str], ViewReuse] | None = None
    for fp in store.stored_fingerprints(view.name):
        if fp == view.stored_as:
            continue
        try:
            lay = store.layout(view.name, fp)
        except (OSError, ValueError, KeyError):
            continue
        found = reuse_from(view, fp, lay.kind, lay.stored)
        if not isinstance(found, Reuse) or not _compatible(lay, new_lay, view, found):
            continue
        done = state.done(workspace, view.name, fp)
        if not done:
            continue
        # the older intervals whose sources changed since they were computed are not taken
        base = replace(view, storage_fingerprint=fp)
        stale = late.check(base, done, first, lo, hi, now).recompute
        stored = _Ranges([(d.start, d.end) for d in done])
        gone = _Ranges(list(stale))
        covered = frozenset(
            a for a, b in todo if stored.covers(a, b) and not gone.overlaps(a, b)
            and (a != first or lay.start == new_lay.start))
        if not covered:
            continue
        rank = (len(found.kept), len(covered), fp)
        if best is None or rank > best[0]:
            best = (rank, ViewReuse(view, found, covered))
    return best[1] if best else None


class _Ranges:
    """A union of [start, end) ranges, merged once, asked by bisection."""

    def __init__(self, ranges: list[Interval]) -> None:
        merged: list[list[datetime]] = []
        for a, b in sorted(ranges):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self.starts = [m[0] for m in merged]
        self.ends = [m[1] for m in merged]

    def covers(self, a: datetime, b: datetime) -> bool:
        i = bisect_right(self.starts, a) - 1
        return i >= 0 and self.ends[i] >= b

    def overlaps(self, a: datetime, b: datetime) -> bool:
        i = bisect_left(self.starts, b) - 1  # the last range starting before b
        return i >= 0 and self.ends[i] > a


def _compatible(old: ViewLayout, new: ViewLayout, view: FeatureView, r: Reuse) -> bool:
    """Same keys and time column, and every kept partial stored with the new type."""
    if old.keys != new.keys or old.time_column != new.time_column:
        return False
    old_cols = dict(old.columns)
    new_cols = dict(new.columns)
    return all(old_cols.get(c) == new_cols.get(c) and c in new_cols
               for c in kept_columns(view, r))


def kept_columns(view: FeatureView, r: Reuse) -> list[str]:
    return [partial_column(a.name, p) for a in view.aggregations if a.name in r.kept
            for p, _ in tile_partials(a)]


def reused_tiles(vr: ViewReuse, chunk: list[Interval], data: ProjectData, store: OfflineStore,
                 manifest: Manifest) -> pa.Table | None:
    """The chunk's tiles: kept partials from the older data, the rest computed alone (None:
    the two sides do not have the same tiles, compute the chunk whole)."""
    view, r = vr.view, vr.reuse
    first = view_start(view)
    a, b = chunk[0][0], chunk[-1][1]
    lo = None if a == first else a
    keys = [k.name for k in view.keys]
    kept = kept_columns(view, r)
    old = store.read(view.name, r.base, vr.files(store), lo, b, [*keys, TILE_START, *kept])
    if not r.computed:
        return old
    new = data.engine.query(_computed_sql(view, r, data, manifest, lo, b))
    return _join(old, new, keys)


def _computed_sql(view: FeatureView, r: Reuse, data: ProjectData, manifest: Manifest,
                  lo: datetime | None, hi: datetime) -> str:
    """The view's tiles with only the computed aggregations, lo <= tile start < hi."""
    from featql.dialects.lower import lower_view

    part = replace(view, aggregations=tuple(a for a in view.aggregations if a.name in r.computed),
                   features=tuple(f for f in view.features if f.aggregation in r.computed))
    lowered = replace(manifest, views=tuple(part if v.name == view.name else v
                                            for v in manifest.views))
    data.require(view.depends_on)
    name = f"_featql_new_{view.name.replace(':', '_')}"
    data.engine.register_sql(name, lower_view(lowered, view.name, data.engine.name))
    q = "`" if data.engine.name == "spark" else '"'
    cond = [f"{q}{TILE_START}{q} < {ts_literal(data.engine, hi)}"]
    if lo is not None:
        cond.insert(0, f"{q}{TILE_START}{q} >= {ts_literal(data.engine, lo)}")
    return f"SELECT * FROM {q}{name}{q} WHERE {' AND '.join(cond)}"


def _join(old: pa.Table, new: pa.Table, keys: list[str]) -> pa.Table | None:
    import duckdb

    on = [*keys, TILE_START]
    other = [c for c in new.column_names if c not in on]
    kept = [c for c in old.column_names if c not in on]

    def q(c: str) -> str:
        return '"' + c.replace('"', '""') + '"'

    cols = [f"COALESCE(o.{q(c)}, n.{q(c)}) AS {q(c)}" for c in on]
    cols += [f"o.{q(c)} AS {q(c)}" for c in kept] + [f"n.{q(c)} AS {q(c)}" for c in other]
    ts = q(TILE_START)
    cols.append(f"o.{ts} IS NULL OR n.{ts} IS NULL AS {q(ONE_SIDED)}")
    cond = " AND ".join(f"o.{q(c)} IS NOT DISTINCT FROM n.{q(c)}" for c in on)
    con = duckdb.connect()
    try:
        con.register("o", old)
        con.register("n", new)
        rel = con.sql(f"SELECT {', '.join(cols)} FROM o FULL OUTER JOIN n ON {cond}")
        fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
        out = fetch()
        table = out if isinstance(out, pa.Table) else out.read_all()
    finally:
        con.close()
    if pc.any(table.column(ONE_SIDED)).as_py():  # a tile on one side only
        return None
    return table.drop_columns([ONE_SIDED])
