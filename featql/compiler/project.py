"""The compiler pipeline: a project folder in, a manifest and its diagnostics out.

config → load (header + body per file) → catalog (source schemas) → resolve (names, DAG) →
type-check views in DAG order (each view's output schema feeds its dependents) → transforms →
services → lineage → manifest. Each stage reports into one `Diagnostics`; later stages skip what
earlier stages rejected, so one mistake gives one error, not a cascade.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlglot import exp
from sqlglot.errors import ErrorLevel, UnsupportedError

from featql.compiler.body import node_span
from featql.compiler.catalog import build_sources, location_of
from featql.compiler.columns import TableColumns
from featql.compiler.duplicates import warn_duplicates
from featql.compiler.fingerprint import (
    canonicalize,
    columns_read,
    context_sql,
    digest,
    projection_sql,
    source_fingerprint,
    upstream_view_fingerprint,
)
from featql.compiler.labels import check_labels
from featql.compiler.leakage import lint_leakage
from featql.compiler.loader import ParsedFile, display_path, load
from featql.compiler.resolve import Resolved, resolve
from featql.compiler.services import build_py_transform, build_service, build_sql_transform
from featql.compiler.storage import (
    group_upstream,
    storage_fingerprint,
    storage_upstream,
    stored_groups,
)
from featql.compiler.streams import check_incremental
from featql.compiler.typecheck import TypedView, type_view, window_feature
from featql.compiler.windows import lint_windows
from featql.core.config import CONFIG_FILE, ProjectConfig, load_config
from featql.core.diagnostics import Diagnostics, did_you_mean
from featql.core.ir import (
    Column,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    Manifest,
    RequestTransform,
    Source,
)
from featql.core.pool import gc_paused
from featql.core.types import KEY_TYPES, UNKNOWN, from_sql_text

CREATED = "_featql_created"
"""The created column a view's rows carry (featql.dialects.contract names it too)."""


@dataclass
class CompileResult:
    root: Path
    config: ProjectConfig
    diagnostics: Diagnostics
    manifest: Manifest | None
    files: dict[str, ParsedFile] = field(default_factory=dict)  # display path -> file
    typed: dict[str, TypedView] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.diagnostics.has_errors()

    def source_text(self, path: str) -> str | None:
        f = self.files.get(path)
        if f is not None:
            return f.src.text
        try:
            return Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):  # E112 reported it: shown without its source
            return None


class ViewSink(Protocol):
    """Receives feature views as they are compiled (`featql compile` lowers them meanwhile)."""

    def begin(self, sources: Mapping[str, Source], views: int) -> None:
        """Every source of the project, and how many feature views are declared."""

    def add(self, view: FeatureView) -> None:
        """One view's complete IR, in DAG order (after every view it reads)."""


def compile_project(root: str | Path, *, with_lineage: bool = True,
                    fingerprints: bool = True, sink: ViewSink | None = None,
                    parallel: bool = False) -> CompileResult:
    """Compile a project folder. `fingerprints=False` skips the per-feature canonical SQL and
    digests, leaving every fingerprint empty; all checks run but the duplicate-feature warning
    (W802), which compares fingerprints.

    `sink` gets each feature view as soon as its IR is complete: the very object the manifest
    will hold (unless the compile fails). `parallel=True` (the CLI's `check` and `compile`
    only) lets a forked worker parse half of a large project (`featql.core.pool`); otherwise
    everything runs in this process. Automatic garbage collection is paused meanwhile."""
    with gc_paused():
        return _compile(Path(root), with_lineage, fingerprints, sink, parallel)


def _compile(root: Path, with_lineage: bool, fingerprints: bool,
             sink: ViewSink | None = None, parallel: bool = False) -> CompileResult:
    diags = Diagnostics()
    config = load_config(root, display_path(root / CONFIG_FILE), diags)
    files, hooks = load(root, config, diags, parallel=parallel)
    result = CompileResult(root, config, diags, None, {f.src.path: f for f in files})
    sources = {s.name: s for s in build_sources(files, root, diags)}
    res = resolve(files, diags)
    entities = _build_entities(res, diags)
    if sink is not None:
        sink.begin(sources, len(res.views()))
    views = _build_views(res, sources, entities, diags, result.typed, fingerprints, sink)
    if fingerprints:
        warn_duplicates(views, res.views(), diags)
    # objects declared (or half-declared) that did not build: their mistakes were reported
    # where they are defined, so what reads them stays quiet (one mistake, one error)
    unbuilt_views = (set(res.views()) | res.unbuilt) - set(views)
    transforms: dict[str, RequestTransform] = {}
    for name, f in res.by_kind.get("request_transform", {}).items():
        t = build_sql_transform(f, views, diags, unbuilt_views)
        if t is not None:
            transforms[name] = t
    for hook in hooks:
        if hook.name in transforms or hook.name in views or hook.name in sources:
            diags.error("E303", f"'{hook.name}' is already defined", hook.span)
            continue
        t = build_py_transform(hook, views, str(root), diags, unbuilt_views)
        if t is not None:
            transforms[hook.name] = t
    declared = set(res.views()) | set(res.by_kind.get("request_transform", {}))
    failed = (declared | {h.name for h in hooks} | res.unbuilt) - set(views) - set(transforms)
    services: dict[str, FeatureService] = {}
    for name, f in res.by_kind.get("feature_service", {}).items():
        s = build_service(f, views, transforms, diags, failed)
        if s is not None:
            services[name] = s
    manifest = Manifest(
        project=config.name,
        sources=tuple(sources[n] for n in sorted(sources)),
        entities=tuple(entities[n] for n in sorted(entities)),
        views=tuple(views[n] for n in sorted(views)),
        transforms=tuple(transforms[n] for n in sorted(transforms)),
        services=tuple(services[n] for n in sorted(services)),
    )
    if any(s.max_read_kb is not None for s in services.values()):
        from featql.compiler.budgets import check_budgets

        check_budgets(manifest, res.by_kind.get("feature_service", {}), diags)
    if with_lineage and not diags.has_errors():
        from featql.compiler.lineage import build_lineage

        manifest = build_lineage(manifest, result.typed)
    result.manifest = manifest
    return result


def _build_entities(res: Resolved, diags: Diagnostics) -> dict[str, Entity]:
    out: dict[str, Entity] = {}
    for name, f in res.by_kind.get("entity", {}).items():
        assert f.decl is not None
        keys: list[Column] = []
        ok = True
        for key, type_text, span in f.decl.get("keys"):
            ktype = from_sql_text(type_text) if type_text else UNKNOWN
            if type_text and ktype not in KEY_TYPES:
                what = f"unknown type {type_text}" if ktype == UNKNOWN else f"is {type_text}"
                diags.error("E405", f"key '{key}' of entity '{name}': {what}; keys must be "
                            "BIGINT, INT or STRING", span)
                ok = False
            keys.append(Column(key, ktype))
        if not keys:
            diags.error("E104", f"entity '{name}' needs at least one key", f.decl.at("keys"))
            ok = False
        if ok:
            out[name] = Entity(name, location_of(f.rel, f.decl), tuple(keys), f.decl.meta)
    return out


def _tables_for(view: str, res: Resolved, sources: dict[str, Source],
                views: dict[str, FeatureView]) -> TableColumns | None:
    tables: TableColumns = {}
    for dep in res.reads.get(view, []):
        if dep in sources:
            tables[dep] = {c.name: c.type for c in sources[dep].columns}
        elif dep in views:
            tables[dep] = {c.name: c.type for c in views[dep].output_columns}
        else:
            return None  # the dependency failed; its own error explains
    return tables


def _build_views(res: Resolved, sources: dict[str, Source], entities: dict[str, Entity],
                 diags: Diagnostics, typed_out: dict[str, TypedView],
                 fingerprints: bool = True,
                 sink: ViewSink | None = None) -> dict[str, FeatureView]:
    views: dict[str, FeatureView] = {}
    stream_views: set[str] = set()  # views over a stream source (featql.compiler.streams)
    all_views = res.views()
    for name in res.order:
        f = all_views[name]
        decl, stmt = f.decl, f.statement
        if decl is None or stmt is None:
            continue
        entity = entities.get(decl.get("entity"))
        if entity is None:
            if decl.get("entity") not in res.by_kind.get("entity", {}) \
                    and decl.get("entity") not in res.unbuilt:
                diags.error("E307", f"unknown entity '{decl.get('entity')}'", decl.at("entity"),
                            hint=did_you_mean(decl.get("entity"), res.by_kind.get("entity", {})))
            continue
        reads_aggregate = [d for d in res.reads.get(name, [])
                           if d in views and views[d].kind == "aggregate"]
        if reads_aggregate:
            at = next((node_span(f.src, t) for t in res.table_refs.get(name, [])
                       if t.name.lower() == reads_aggregate[0]), decl.span)
            diags.error("E419", f"feature view '{name}' reads aggregate view "
                        f"'{reads_aggregate[0]}'; aggregate features are served per window and "
                        "cannot be read as a table", at,
                        hint="read the source it aggregates, or use a request transform")
            continue
        if not check_incremental(f, name, res.reads.get(name, []), res.table_refs.get(name, []),
                                 sources, views, stream_views, diags):
            continue
        tables = _tables_for(name, res, sources, views)
        if tables is None:
            continue
        lint_leakage(f.src, stmt, "a feature query", diags)
        if not decl.get("windows"):  # an aggregate view refuses OVER itself (E409)
            lint_windows(f.src, stmt, decl.get("timestamp"), diags)
        typed = type_view(f.src, decl, stmt, tables, list(entity.keys), diags)
        if typed is None:
            continue
        if not check_labels(f.src, typed.query.qualified, name, sources, diags):
            continue
        _learn_key_types(entities, entity, typed)
        views[name] = _view_ir(f, name, typed, res, sources, views, diags, fingerprints)
        if any(d in stream_views or (d in sources and sources[d].stream is not None)
               for d in res.reads.get(name, [])):
            stream_views.add(name)
        typed_out[name] = typed
        if sink is not None:
            sink.add(views[name])
    return views


def _learn_key_types(entities: dict[str, Entity], entity: Entity, typed: TypedView) -> None:
    """Untyped entity keys take the type the first view gives them."""
    if all(k.type != UNKNOWN for k in entity.keys):
        return
    learned = {k.name: k.type for k in typed.keys}
    keys = tuple(Column(k.name, learned.get(k.name, k.type) if k.type == UNKNOWN else k.type)
                 for k in entity.keys)
    entities[entity.name] = Entity(entity.name, entity.location, keys, entity.meta)


def _view_ir(f: ParsedFile, name: str, typed: TypedView, res: Resolved,
             sources: dict[str, Source], views: dict[str, FeatureView],
             diags: Diagnostics, fingerprints: bool = True) -> FeatureView:
    decl = f.decl
    assert decl is not None
    canonical = canonicalize(typed.query.qualified)
    deps = res.reads.get(name, [])
    read = columns_read(canonical) if fingerprints else {}
    upstream = sorted(
        (d, upstream_view_fingerprint(views[d], read.get(d)) if d in views
         else source_fingerprint(sources[d], read.get(d))) for d in deps
    ) if fingerprints else []
    key_names = [k.name for k in typed.keys]
    is_agg = bool(typed.aggregations)
    shared = context_sql(canonical, key_names + ([] if is_agg else [typed.timestamp])) \
        if fingerprints else ""
    header = {"keys": key_names, "ts": typed.timestamp, "ttl": decl.get("ttl"),
              "windows": list(typed.windows), "slide": typed.slide}
    created, known_at = _created_column(f, name, deps, is_agg, typed, res, sources, views, diags)
    if known_at:  # only when set: the fingerprints of views without it stay as they were
        header["known_at"] = True
    projections: dict[str, str] = {}

    def projection(column: str) -> str:  # each projection's canonical SQL, generated once
        if column not in projections:
            projections[column] = projection_sql(canonical, column)
        return projections[column]

    features: list[Feature] = []
    if is_agg:
        for agg in typed.aggregations:
            for w in typed.windows:
                fname = window_feature(agg.name, w)
                features.append(Feature(fname, agg.type, digest(
                    shared, agg.function, projection(agg.name), w, typed.slide,
                    upstream) if fingerprints else "",
                    aggregation=agg.name, window_seconds=w))
    else:
        for col in typed.features:
            features.append(Feature(col.name, col.type, digest(
                shared, projection(col.name), header, upstream)
                if fingerprints else ""))
    # the stored data's identity, without what applies only when reading (compiler/storage.py)
    stored_up = storage_upstream(deps, read, views, sources) if fingerprints else []
    stored = stored_groups(typed, shared, group_upstream(
        canonical, key_names + ([] if is_agg else [typed.timestamp]), deps, views, sources,
        stored_up), projection) if fingerprints else ()
    try:
        # canonical is this function's own copy and this is its last use: no second copy
        sql = canonical.sql(dialect="duckdb", normalize=True, copy=False,
                            unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as e:
        # e.g. IGNORE NULLS on a function form DuckDB cannot express: refuse, never drop it
        diags.error("E701", f"this query cannot be expressed in featql's SQL: {e}",
                    decl.span, hint="rewrite the construct; see the message for which one")
        sql = canonicalize(typed.query.qualified).sql(dialect="duckdb", normalize=True)
    schedule = decl.get("schedule") or typed.slide or 86400
    replacement = decl.get("replacement")
    if replacement and replacement not in res.views():
        diags.error("E307", f"replacement '{replacement}' is not a feature view",
                    decl.at("replacement"), hint=did_you_mean(replacement, res.views()))
    if decl.get("deprecated"):
        diags.warning("W801", f"feature view '{name}' is deprecated"
                      + (f"; use '{replacement}'" if replacement else ""), decl.at("deprecated"))
    return FeatureView(
        name=name,
        base_name=decl.name,
        variant=decl.get("variant"),
        location=location_of(f.rel, decl),
        kind="aggregate" if is_agg else "row",
        entity=decl.get("entity"),
        keys=tuple(typed.keys),
        timestamp=typed.timestamp,
        sql=sql,
        depends_on=tuple(deps),
        features=tuple(features),
        fingerprint=digest(sql, header, upstream) if fingerprints else "",
        schedule_seconds=schedule,
        start=decl.get("start"),
        ttl_seconds=decl.get("ttl"),
        windows=typed.windows,
        slide_seconds=typed.slide,
        aggregations=tuple(typed.aggregations),
        created=created,
        deprecated=bool(decl.get("deprecated", False)),
        replacement=replacement,
        online=bool(decl.get("online", True)),
        offline=bool(decl.get("offline", True)),
        meta=decl.meta,
        prevent_destroy=bool(decl.get("prevent_destroy", False)),
        known_at=known_at,
        storage_fingerprint=storage_fingerprint(sql, header, stored_up, created)
        if fingerprints else "",
        stored=stored,
        lookback_seconds=decl.get("lookback"),
    )


def _created_column(f: ParsedFile, name: str, deps: list[str], is_agg: bool, typed: TypedView,
                    res: Resolved, sources: dict[str, Source], views: dict[str, FeatureView],
                    diags: Diagnostics) -> tuple[str | None, bool]:
    """The view's created column (its single source's, carried through a row-preserving
    query; `_featql_created` of a single upstream `known_at` view) and whether the view is
    `known_at` (PRODUCT §3). A view reading a `known_at` source or view that cannot carry the
    created column with each row is refused (E423): it could not hide rows not yet created."""
    refs = res.table_refs.get(name, [])
    # an aggregate view's events are the rows of its FROM: they carry the created column when
    # they come one by one from the one relation read (its GROUP BY aside)
    single = len(deps) == 1 and len(refs) == 1 \
        and _rows_preserved(typed.query.qualified, deps[0], grouped=is_agg)
    if single and is_agg and not _is_known(deps[0], sources, views):
        return None, False  # an aggregate view has no created column of its own
    if single and is_agg and _streamed(deps[0], sources, views):
        assert f.decl is not None
        at = next((node_span(f.src, t) for t in refs), f.decl.span)
        diags.error("E423", f"feature view '{name}' aggregates the known_at events of "
                    f"'{deps[0]}', which come from a stream source, but a stream view cannot "
                    "count events as of when they were created yet (only batch aggregate "
                    "views can)", at, hint="drop known_at from the source, or aggregate a "
                    "batch source")
        return None, False
    if single and deps[0] in sources:
        src = sources[deps[0]]
        return src.created, src.known_at is not None
    if single and deps[0] in views and views[deps[0]].known_at:
        return CREATED, True
    known = [d for d in deps if (d in sources and sources[d].known_at is not None)
             or (d in views and views[d].known_at)]
    if known:
        assert f.decl is not None
        at = next((node_span(f.src, t) for t in refs if t.name.lower() == known[0]),
                  f.decl.span)
        what = "source" if known[0] in sources else "feature view"
        why = ("its events do not come one by one from that one relation, so they cannot "
               "carry the created column" if is_agg else "its rows do not come one by one "
               "from that one relation, so they cannot carry the created column")
        diags.error("E423", f"feature view '{name}' reads {what} '{known[0]}', which is "
                    f"known_at (a row is visible once created), but {why}", at,
                    hint="read it in a plain SELECT ... FROM <it> [WHERE ...] in a row-level "
                    "view, or drop known_at from the source" if not is_agg else
                    "aggregate it in a plain SELECT ... FROM <it> [WHERE ...] GROUP BY <keys>, "
                    "or drop known_at from the source")
    return None, False


def _streamed(dep: str, sources: dict[str, Source], views: dict[str, FeatureView]) -> bool:
    """Does `dep` (a source or view) read a stream source, directly or through views?"""
    if dep in sources:
        return sources[dep].stream is not None
    view = views.get(dep)
    return view is not None and any(_streamed(d, sources, views) for d in view.depends_on)


def _is_known(dep: str, sources: dict[str, Source], views: dict[str, FeatureView]) -> bool:
    return (dep in sources and sources[dep].known_at is not None) or (
        dep in views and views[dep].known_at)


def _rows_preserved(query: exp.Expr, source: str, grouped: bool = False) -> bool:
    """Does every row of the view come from exactly one row of `source`? (`grouped`: an
    aggregate view, whose own GROUP BY and aggregates are allowed at the top: does every event
    it aggregates?)

    Only then can the source's `created` column travel with the row to break ties; through a
    GROUP BY, DISTINCT, aggregate, JOIN or set operation it cannot.
    """
    ctes = {c.alias_or_name.lower(): c.this for c in query.find_all(exp.CTE)}
    node: exp.Expr | None = query
    top = grouped
    while isinstance(node, exp.Select):
        if node.args.get("joins") or (not top and (
                node.args.get("group") or node.args.get("distinct") or any(
                p.find(exp.AggFunc) is not None and p.find(exp.Window) is None
                for p in node.selects))):
            return False
        top = False
        from_ = node.args.get("from_")
        rel = from_.this if from_ is not None else None
        if isinstance(rel, exp.Subquery):
            node = rel.this
        elif isinstance(rel, exp.Table) and rel.name.lower() in ctes and not rel.db:
            node = ctes[rel.name.lower()]
        else:
            return isinstance(rel, exp.Table) and rel.name.lower() == source
    return False


