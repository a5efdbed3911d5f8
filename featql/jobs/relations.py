"""Expose a project's data to an engine: sources, views (the dialect's SQL) and, per view, the
relation a training set or a materialization reads (from the sources or the offline store).

A view's schedule starts at its `start`; its first interval also holds everything before it
(a profile written before `start` is still a profile), so the offline store holds the same rows
as the sources and both give the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from featql.core.ir import FeatureView, Manifest
from featql.dialects.pit import relation_name
from featql.engines.engine import Engine
from featql.engines.sources import is_s3
from featql.offline.store import TILE_START, OfflineStore, ViewLayout


def view_start(view: FeatureView) -> datetime:
    return datetime.fromisoformat(str(view.start))


def time_column(view: FeatureView) -> str:
    return TILE_START if view.kind == "aggregate" else view.timestamp


def _q(engine: Engine, ident: str) -> str:
    if engine.name == "spark":
        return "`" + ident.replace("`", "``") + "`"
    return '"' + ident.replace('"', '""') + '"'


def ts_literal(engine: Engine, t: datetime) -> str:
    return f"TIMESTAMP '{t.strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def register_upstream(engine: Engine, manifest: Manifest, root: Path, names: Iterable[str],
                      done: set[str], lowered: dict[str, str] | None = None) -> None:
    """Register each of `names` on `engine` once: a source as its batch files, a view as its
    lowered SQL after everything it reads (transitively). `done`: the names already registered
    (skipped; those registered here are added: a caller keeps it per engine, and puts in it a
    name it registered itself, such as a source it replaced by an Arrow table). `lowered`: a
    cache of views' SQL kept across calls. A name that is neither a view nor a source is
    skipped."""
    from featql.dialects.lower import lower_view

    for name in names:
        if name in done:
            continue
        view = manifest.view(name)
        if view is None:
            source = manifest.source(name)
            if source is not None:
                engine.register_source(source, root)
                done.add(name)
            continue
        register_upstream(engine, manifest, root, view.depends_on, done, lowered)
        sql = lowered.get(name) if lowered is not None else None
        if sql is None:
            sql = lower_view(manifest, name, engine.name)
            if lowered is not None:
                lowered[name] = sql
        engine.register_sql(name, sql)
        done.add(name)


class ProjectData:
    """Registers what views need, once per engine."""

    def __init__(self, engine: Engine, manifest: Manifest, root: Path) -> None:
        self.engine, self.manifest, self.root = engine, manifest, Path(root)
        self._done: set[str] = set()

    def require(self, names: Iterable[str]) -> None:
        """Register the views (and, transitively, their sources and upstream views)."""
        register_upstream(self.engine, self.manifest, self.root, names, self._done)

    def fresh_sql(self, view: FeatureView, lo: datetime | None = None,
                  hi: datetime | None = None) -> str:
        """The view's rows (tiles) from the sources with lo <= time < hi (None: unbounded)."""
        self.require([view.name])
        col = _q(self.engine, time_column(view))
        cond = []
        if lo is not None:
            cond.append(f"{col} >= {ts_literal(self.engine, lo)}")
        if hi is not None:
            cond.append(f"{col} < {ts_literal(self.engine, hi)}")
        where = f" WHERE {' AND '.join(cond)}" if cond else ""
        return f"SELECT * FROM {_q(self.engine, view.name)}{where}"

    def register_fresh(self, view: FeatureView) -> None:
        self.engine.register_sql(relation_name(view.name, view.kind), self.fresh_sql(view))

    def register_stored(self, view: FeatureView, store: OfflineStore, lo: datetime | None,
                        hi: datetime | None) -> None:
        lay = ViewLayout.of(view)
        if is_s3(store.path):  # engines read S3 through pyarrow here (see sources.py)
            self.engine.register_arrow(relation_name(view.name, view.kind),
                                       store.scan(view.name, lo, hi, None, view.stored_as))
            return
        files = store.files(view.name, view.stored_as, lo, hi)
        self.engine.register_parquet(relation_name(view.name, view.kind), files, lay.schema)
