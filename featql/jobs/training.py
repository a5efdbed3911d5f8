"""Training sets: a feature service and a spine in, one row per spine row out (PRODUCT §3).

Each view is read from the offline store when its storage fingerprint is materialized over the
range the spine needs (per the recorded state), else computed from the sources; both give the
same rows. Request transforms run afterwards over the joined table with the serving code
(`featql.transforms.apply_transforms`) when that package is installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from featql.core.config import ProjectConfig
from featql.core.diagnostics import did_you_mean
from featql.core.errors import UserError
from featql.core.ir import FeatureService, FeatureView, Manifest
from featql.dialects.pit import (
    SPINE_TS,
    PointInTimeJoin,
    build_pit_join,
    check_spine,
    spine_timestamp,
)
from featql.engines.engine import Engine, open_engine
from featql.jobs.fresh import replace_fresh
from featql.jobs.join import join_spine, spine_relation
from featql.jobs.relations import ProjectData, view_start
from featql.jobs.ties import record_ties, tie_check
from featql.offline.store import OfflineStore
from featql.registry.materializations import MaterializationState, covers
from featql.semantics.time import floor_datetime


@dataclass
class TrainingReport:
    """Where each view's data came from: "store" or "sources"."""

    reads: dict[str, str] = field(default_factory=dict)
    transforms_applied: tuple[str, ...] = ()


def load_spine(spine: Any) -> pa.Table:
    """A pyarrow Table, a pandas DataFrame, or a path to Parquet, CSV or JSON (lines)."""
    if isinstance(spine, pa.Table):
        return spine
    if type(spine).__module__.startswith("pandas"):
        return pa.Table.from_pandas(spine, preserve_index=False)
    if isinstance(spine, str | Path):
        path = Path(spine)
        if not path.exists():
            raise UserError(f"spine file '{spine}' does not exist")
        try:
            return _read_spine_file(path)
        except (pa.ArrowException, OSError, ValueError) as e:
            raise UserError(f"cannot read the spine {path}: {e}") from e
    raise UserError(f"a spine must be a pyarrow Table, a pandas DataFrame or a file path, "
                    f"not {type(spine).__name__}")


def _read_spine_file(path: Path) -> pa.Table:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        import pyarrow.csv as pcsv

        return pcsv.read_csv(path)
    if suffix in (".json", ".jsonl", ".ndjson"):
        import pyarrow.json as pjson

        return pjson.read_json(path)
    import pyarrow.parquet as pq

    return pq.read_table(path)


def find_service(manifest: Manifest, name: str) -> FeatureService:
    service = manifest.service(name)
    if service is None:
        hint = did_you_mean(name, [s.name for s in manifest.services])
        raise UserError(f"no feature service named '{name}'" + (f" ({hint})" if hint else ""))
    return service


def _transform_inputs(manifest: Manifest, service: FeatureService) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for name in service.transforms:
        t = manifest.transform(name)
        if t is not None:
            pairs.extend(tuple(ref.split(".", 1)) for ref in t.inputs)  # type: ignore[misc]
    return tuple(pairs)


def needed_range(view: FeatureView, node: PointInTimeJoin, times: pa.ChunkedArray
                 ) -> tuple[datetime | None, datetime | None]:
    """[lo, hi) of event (tile) times the spine's rows can see in this view."""
    valid = pc.drop_null(times)
    if len(valid) == 0:
        return None, None
    mm = pc.min_max(valid).as_py()
    t_min, t_max = mm["min"], mm["max"]
    join = next(j for j in node.views if j.view == view.name)
    if view.kind == "aggregate":
        slide = join.slide_seconds or 1
        widest = max((f.window_seconds or 0) for f in join.features)
        return (floor_datetime(t_min, slide) - timedelta(seconds=widest),
                floor_datetime(t_max, slide))
    lo = t_min - timedelta(seconds=view.ttl_seconds) if view.ttl_seconds else None
    return lo, t_max


def training_set(root: str | Path, manifest: Manifest, config: ProjectConfig, service_name: str,
                 spine: Any, *, engine: str | Engine | None = None,
                 timestamp: str | None = None, workspace: str = "dev",
                 use_store: bool = True, report: TrainingReport | None = None) -> pa.Table:
    """The training set of a service for a spine, as a pyarrow Table."""
    root = Path(root)
    service = find_service(manifest, service_name)
    table = load_spine(spine)
    node = build_pit_join(manifest, service, _transform_inputs(manifest, service))
    check_spine(table.schema, node)
    ts_col = spine_timestamp(table.schema, node.keys, timestamp)
    eng = engine if engine is not None and not isinstance(engine, str) else open_engine(
        engine, config)
    report = report if report is not None else TrainingReport()
    try:
        data = ProjectData(eng, manifest, root)
        state = MaterializationState(root)
        store = OfflineStore(root, config, workspace, manifest)
        times = spine_relation(table, node, ts_col).column(SPINE_TS)
        joins = []
        for join in node.views:
            view = manifest.view(join.view)
            assert view is not None
            lo, hi = needed_range(view, node, times)
            done = state.done(workspace, view.name, view.stored_as) if use_store else []
            start = max(view_start(view), lo) if lo else view_start(view)  # first: open below
            if done and hi is not None and covers(done, start, hi):
                data.register_stored(view, store, lo, hi)
                report.reads[view.name] = "store"
                join = replace(join, unique=True)  # the store keeps one row per (keys, ts)
            else:
                data.register_fresh(view)
                report.reads[view.name] = "sources"
                # DuckDB's tie-breaking is a window of its own (Spark's: two more sort
                # columns): skip it when the rows have no ties, or check afterwards that
                # none of the rows the spine got has a twin
                # (a known_at view is joined by its own plan, which picks the winner itself)
                if view.kind == "row" and eng.name == "duckdb" and not view.known_at:
                    check = tie_check(eng, manifest, view, root, table.num_rows)
                    join = replace(join, unique=check != "dedupe", verify=check == "verify")
            joins.append(join)
        ties: set[str] = set()
        out = join_spine(eng, replace(node, views=tuple(joins)), table, ts_col, ties)
        for name in sorted(ties):
            if (tied := manifest.view(name)) is not None:
                record_ties(manifest, tied, root, True)
    finally:
        if engine is None or isinstance(engine, str):
            eng.close()
    # stream aggregate views: the fresh window [floor(t,S) - W, t) of PRODUCT §3 (jobs.fresh)
    out = replace_fresh(out, manifest, root, node.views, ts_col)
    out = _apply_transforms(manifest, root, service, out, report)
    extra = set(node.columns) - {
        f"{r.view.replace(':', '_')}__{r.feature}" for r in service.features}
    return out.drop_columns([c for c in out.column_names if c in extra])


def _apply_transforms(manifest: Manifest, root: Path, service: FeatureService, table: pa.Table,
                      report: TrainingReport) -> pa.Table:
    if not service.transforms:
        return table
    from featql.transforms import apply_transforms

    missing = [c.name for name in service.transforms if (t := manifest.transform(name))
               for c in t.request if c.name not in table.column_names]
    if missing:
        raise UserError(f"the spine lacks the request column '{missing[0]}' that the service's "
                        "request transforms need")
    report.transforms_applied = tuple(service.transforms)
    return apply_transforms(manifest, root, table, service.transforms)
