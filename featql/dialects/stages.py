"""Stages a feature view's offline query as named stages: sqlglot trees, one per CTE.

Row-level view:  [the view's own CTEs] → feature_rows → contract SELECT
Aggregate view:  [the view's own CTEs] → filtered_events → tiles → contract SELECT

The trees are still dialect-neutral sqlglot (plus `TimeFloor`); `lower.py` renders each one for
a target and assembles the text. The contract columns are described in `contract.py`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlglot import exp

from featql.core.diagnostics import Span
from featql.core.durations import format_duration
from featql.core.ir import Aggregation, FeatureView, Manifest
from featql.core.treecopy import light_copy
from featql.dialects.contract import CREATED, KNOWN, TILE_START
from featql.dialects.errors import refuse
from featql.dialects.expressions import TimeFloor
from featql.dialects.render import parse
from featql.dialects.scope import Scope, names
from featql.semantics.aggregates import built_type, for_aggregation, partial_column
from featql.semantics.types import sqlglot_type

RESERVED_CTES = ("feature_rows", "filtered_events", "tiles")
EVENT_TS = "_featql_event_ts"  # the event time, for functions ranking by it (LAST_N)


@dataclass(frozen=True)
class Stage:
    name: str | None  # the CTE name; None for the final SELECT
    purpose: str  # rendered as `-- stage: <purpose>`
    query: exp.Query


@dataclass(frozen=True)
class Stages:
    stages: tuple[Stage, ...]
    recursive: bool = False  # the view's own WITH was WITH RECURSIVE


def stage_view(manifest: Manifest, view: FeatureView, span: Span,
              query: exp.Expr | None = None) -> Stages:
    """`query`: `parse(view.sql)` if the caller has it already (the plan takes it over)."""
    query = parse(view.sql, "duckdb") if query is None else query
    if not isinstance(query, exp.Query):
        raise TypeError(f"feature view {view.name!r} compiled to a {type(query).__name__}")
    with_ = query.args.get("with_")
    ctes = {c.alias_or_name.lower(): c.this for c in (with_.expressions if with_ else [])}
    clash = next((n for n in ctes if n in RESERVED_CTES), None)
    if clash:
        raise refuse(f"CTE name '{clash}' is reserved in feature view '{view.name}': featql's "
                     "generated SQL uses it", span, code="E702",
                     hint=f"rename the CTE (reserved: {', '.join(RESERVED_CTES)})")
    scope = Scope(manifest, view, span, ctes)
    stages = _plan_row(query, scope) if view.kind == "row" else _plan_aggregate(query, scope)
    own = [Stage(name, f"the view's own CTE {name}", q) for name, q in ctes.items()]
    _check_unique(stages[-1].query, view, span)
    recursive = bool(with_ and with_.args.get("recursive"))
    return Stages((*own, *stages), recursive)


def _plan_row(query: exp.Query, scope: Scope) -> list[Stage]:
    view = scope.view
    query.set("with_", None)
    purpose = "the view's query as compiled"
    if view.created is not None:
        source = view.depends_on[0]
        scope.carry_created(query, source, view.created)
        purpose += f", plus {source}.{view.created} to break event-time ties"
    top = query if isinstance(query, exp.Select) else None
    columns: list[exp.Expr] = []
    casts = False
    for name, ftype in [(k.name, k.type) for k in view.keys] + [(view.timestamp, "TIMESTAMP")]:
        col, cast = _output(name, ftype, _known(top, name, scope))
        columns.append(col)
        casts |= cast
    if view.created is not None:
        src = names(scope.manifest).sources.get(view.depends_on[0])
        created_type = next((c.type for c in src.columns if c.name == view.created),
                            None) if src is not None else None
        col, cast = _output(CREATED, "TIMESTAMP", created_type)
        columns.append(col)
        casts |= cast
    else:
        columns.append(_alias(_cast(exp.null(), "TIMESTAMP"), CREATED))
    for f in view.features:
        col, cast = _output(f.name, f.type, _known(top, f.name, scope))
        columns.append(col)
        casts |= cast
    final = exp.select(*columns).from_(_from("feature_rows"), copy=False)
    what = "contract: keys, timestamp, _featql_created, features"
    return [Stage("feature_rows", purpose, query),
            Stage(None, what + (" (cast to compiled types)" if casts else ""), final)]


def _plan_aggregate(query: exp.Query, scope: Scope) -> list[Stage]:
    view, span = scope.view, scope.span
    if not isinstance(query, exp.Select):
        raise TypeError(f"aggregate view {view.name!r} is not a SELECT")
    for arg, words in (("limit", "LIMIT"), ("offset", "OFFSET"), ("qualify", "QUALIFY")):
        if query.args.get(arg) is not None:
            raise refuse(f"{words} cannot be tiled: aggregate view '{view.name}' is computed "
                         "per tile and merged per window", span, code="E702",
                         hint=f"remove {words}")
    ts = scope.input_column(query, view.timestamp)
    if ts is None:
        raise refuse(f"timestamp column '{view.timestamp}' of aggregate view '{view.name}' is "
                     "not a column of its FROM or JOIN tables", span, code="E702",
                     hint=f"select {view.timestamp} in the subquery the view reads")
    slide = view.slide_seconds
    assert slide is not None, "aggregate views have a slide"
    projections = {p.alias_or_name.lower(): (p.this if isinstance(p, exp.Alias) else p)
                   for p in query.selects}
    keys = [k.name for k in view.keys]
    events = light_copy(query)
    for arg in ("with_", "group", "having", "order", "distinct"):
        events.set(arg, None)
    event_columns = [_alias(light_copy(projections[k]), k) for k in keys]
    event_columns.append(_alias(TimeFloor(this=ts, seconds=slide), TILE_START))
    if any(for_aggregation(a).ordered for a in view.aggregations):
        event_columns.append(_alias(light_copy(ts), EVENT_TS))
    tile_columns: list[exp.Expr] = [exp.column(k) for k in keys]
    tile_columns.append(exp.column(TILE_START))
    final_columns: list[exp.Expr] = []
    casts = False
    for k in view.keys:
        col, cast = _output(k.name, k.type, _known(query, k.name, scope))
        final_columns.append(col)
        casts |= cast
    final_columns.append(exp.column(TILE_START))
    for agg in view.aggregations:
        arg = projections[agg.name].this
        has_input = arg is not None and not isinstance(arg, exp.Star)
        if has_input:
            event_columns.append(_alias(_input(agg, arg), f"{agg.name}__input"))
        tile_columns.extend(_partials(agg, has_input))
        input_type = scope.known_type(arg, query) if has_input else None
        for partial in for_aggregation(agg).partials(agg.type):
            name = partial_column(agg.name, partial.name)
            col, cast = _output(name, partial.type, built_type(partial.build, input_type))
            final_columns.append(col)
            casts |= cast
    events.set("expressions", event_columns)
    stamped = f"stamped with their {format_duration(slide)} tile"
    if view.known_at:  # as known at: each event's created time goes with it
        assert view.created is not None
        scope.carry_created(events, view.depends_on[0], view.created)
        stamped += f" and {view.depends_on[0]}.{view.created} (known_at)"
    _check_unique(events, view, span)
    group: list[exp.Expr] = [*(exp.column(k) for k in keys), exp.column(TILE_START)]
    tiles = exp.select(*tile_columns).from_(_from("filtered_events"), copy=False)
    per = "tile"
    if view.known_at:
        tiles.select(_alias(_known_at(slide), KNOWN), copy=False)
        tiles.where(exp.Not(this=exp.Is(this=exp.column(CREATED), expression=exp.null())),
                    copy=False)
        group.append(_known_at(slide))
        final_columns.insert(len(keys) + 1, exp.column(KNOWN))
        per = "tile and time known (the tile's end, or a later created)"
    tiles = tiles.group_by(*group, copy=False)
    step = format_duration(slide)
    what = "contract: keys, _tile_start, " + ("_featql_known, " if view.known_at else "") + \
        "each aggregate's partials"
    return [
        Stage("filtered_events", f"events after the view's FROM, joins and WHERE, {stamped}",
              events),
        Stage("tiles", f"one row per key and {step} {per}: partials any window of whole tiles "
              "can merge", tiles),
        Stage(None, what + (" (cast to compiled types)" if casts else ""),
              exp.select(*final_columns).from_(_from("tiles"), copy=False)),
    ]


def _known_at(slide: int) -> exp.Expr:
    """When a known_at tile's partial is known: `greatest(tile end, created)`. Every event
    created by its tile's end shares one partial (known at the end: before any window that
    holds the tile closes), each later one gets a partial at its created time. Events whose
    created is NULL are never known (filtered out before: `greatest` skips NULLs)."""
    end = exp.Add(this=exp.column(TILE_START), expression=exp.Interval(
        this=exp.Literal.string(str(slide)), unit=exp.Var(this="SECOND")))
    return exp.Greatest(this=end, expressions=[_cast(exp.column(CREATED), "TIMESTAMP")],
                        ignore_nulls=True)


def _from(table: str) -> exp.From:
    """`FROM table`, built (`Select.from_` would parse the name)."""
    return exp.From(this=exp.table_(table))


def _input(agg: Aggregation, arg: exp.Expr) -> exp.Expr:
    """The aggregated expression, cast when the function asks (booleans become 0/1 for SUM
    and AVG: Spark cannot SUM them)."""
    fn = for_aggregation(agg)
    node = fn.input_node(light_copy(arg), agg.input_type)
    if node is not None:  # APPROX_COUNT_DISTINCT's hash key
        return node
    cast = fn.input_cast(agg.input_type)
    return _cast(light_copy(arg), cast) if cast is not None else light_copy(arg)


def _partials(agg: Aggregation, has_input: bool) -> list[exp.Expr]:
    """The tile stage's aggregates of one aggregation, as its function builds them."""
    fn = for_aggregation(agg)
    col = exp.column(f"{agg.name}__input") if has_input else exp.Star()
    time = exp.column(EVENT_TS) if fn.ordered else None
    return [_alias(fn.build(partial, col.copy(), time.copy() if time else None),
                   partial_column(agg.name, partial.name))
            for partial in fn.partials(agg.type)]


def _known(select: exp.Select | None, name: str, scope: Scope) -> str | None:
    """The featql type of output `name` when the query passes a typed column through."""
    if select is None:
        return None
    for p in select.selects:
        if p.alias_or_name.lower() == name:
            return scope.known_type(p.this if isinstance(p, exp.Alias) else p, select)
    return None


def _output(name: str, ftype: str, known: str | None) -> tuple[exp.Expr, bool]:
    """`name`, cast to its featql type unless the engine already has that type."""
    if known == ftype:
        return exp.column(name), False
    return _alias(_cast(exp.column(name), ftype), name), True


def _alias(e: exp.Expr, name: str) -> exp.Expr:
    """`e AS name`, taking `e` itself (a fresh node: `exp.alias_` would copy it)."""
    return exp.alias_(e, name, copy=False)


def _cast(e: exp.Expr, ftype: str) -> exp.Cast:
    """`CAST(e AS <ftype>)`, taking `e` itself and a copy of the shared parsed type."""
    return exp.cast(e, light_copy(_sqlglot_type(ftype)), copy=False)


def _sqlglot_type(ftype: str) -> exp.DataType:
    """The shared parsed type (`sqlglot_type` caches it): `_cast` copies it into each tree."""
    return sqlglot_type(ftype)


def _check_unique(select: exp.Query, view: FeatureView, span: Span) -> None:
    counts = Counter(n.lower() for n in select.named_selects)
    dup = next((n for n, c in counts.items() if c > 1), None)
    if dup is not None:
        raise refuse(f"column '{dup}' appears twice in the SQL generated for feature view "
                     f"'{view.name}'", span, code="E702",
                     hint="rename the feature: names ending in __count, __sum, __min, __max, "
                     "__input and the names _tile_start and _featql_created are featql's")
