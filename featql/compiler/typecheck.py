"""Type-check feature views in DAG order.

Each view is qualified and annotated against a schema holding its sources and the inferred
output schemas of the views it reads (SQLMesh's approach), then checked against its header:
entity keys and timestamp present with the right types, names and types known, and for aggregate
views a GROUP BY of exactly the entity keys over supported, tile-mergeable aggregates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import cast

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from featql.compiler.body import READ_DIALECT, deep_stack, node_span, statement_span
from featql.compiler.columns import TableColumns, check_columns
from featql.compiler.decorators import Decl
from featql.compiler.leakage import is_nondeterministic
from featql.core.diagnostics import Diagnostics, SourceFile, Span, did_you_mean
from featql.core.durations import LIFETIME_SECONDS
from featql.core.durations import format_duration as _fmt
from featql.core.ir import Aggregation, Column
from featql.core.types import KEY_TYPES, UNKNOWN, compatible, from_sqlglot
from featql.semantics.aggregates import FUNCTIONS, AggregateFunction, supported
from featql.semantics.types import sqlglot_type as to_sqlglot

# the aggregate functions featql accepts (mergeable across tiles): featql.semantics.aggregates
AGG_FUNCTIONS: dict[type, str] = {cls: name for name, f in FUNCTIONS.items()
                                  for cls in f.sqlglot_classes()}
SUPPORTED_AGGS = supported()


@dataclass
class TypedQuery:
    """A query qualified against its inputs, with its output columns typed."""

    qualified: exp.Query
    columns: list[Column]
    projections: dict[str, exp.Expression] = field(default_factory=dict)  # output -> expression


@dataclass
class TypedView:
    query: TypedQuery
    keys: list[Column]
    timestamp: str
    features: list[Column]
    aggregations: list[Aggregation] = field(default_factory=list)
    windows: tuple[int, ...] = ()
    slide: int | None = None


_TYPE_SQL: dict[str, str] = {}
_PARSED_TYPES: dict[str, exp.DataType] = {}  # shared by every schema: type text -> DataType


def make_schema(tables: TableColumns) -> MappingSchema:
    """A sqlglot schema of the tables a query reads. Names are already lowercase, so sqlglot's
    per-identifier normalisation is skipped, and parsed type strings are shared between
    schemas (with a thousand views, both dominate otherwise)."""
    mapping: dict[str, object] = {}
    for t, cols in tables.items():
        typed: dict[str, str] = {}
        for c, ty in cols.items():
            text = _TYPE_SQL.get(ty)
            if text is None:
                text = _TYPE_SQL[ty] = to_sqlglot(ty).sql(READ_DIALECT)
            typed[c] = text
        mapping[t] = typed
    schema = MappingSchema(mapping, dialect=READ_DIALECT, normalize=False)
    schema._type_mapping_cache = _PARSED_TYPES
    return schema


def type_query(src: SourceFile, stmt: exp.Expression, tables: TableColumns,
               diags: Diagnostics, *, columns_checked: bool = False) -> TypedQuery | None:
    """Resolve columns (with positions), qualify, annotate; None when it does not type.

    The statement is qualified in place (the parsed tree belongs to the compiler and copying
    it is a fair share of the time on a large project); identifiers keep their positions, so
    later diagnostics still point into the file."""
    if not columns_checked and not check_columns(src, stmt, tables, diags):
        return None
    if not _check_projection_names(src, stmt, diags):
        return None
    try:
        schema = make_schema(tables)
        with deep_stack():
            q = qualify(stmt, schema=schema, dialect=READ_DIALECT,
                        validate_qualify_columns=False, quote_identifiers=False,
                        expand_stars=True, identify=False)
            q = annotate_types(q, schema=schema, dialect=READ_DIALECT)
    except OptimizeError as e:
        diags.error("E401", f"cannot resolve the query: {e}", node_span(src, stmt))
        return None
    assert isinstance(q, exp.Query)
    columns: list[Column] = []
    projections: dict[str, exp.Expression] = {}
    original = {p.alias_or_name.lower(): p for p in stmt.selects} if isinstance(
        stmt, exp.Select) else {}
    ok = True
    for proj in q.selects:
        name = proj.alias_or_name.lower()
        ftype = from_sqlglot(proj.type)
        inner = proj.this if isinstance(proj, exp.Alias) else proj
        if ftype == UNKNOWN and not isinstance(inner, exp.AggFunc):
            ok = False
            if not is_nondeterministic(inner):  # else reported by the leakage lint
                where = original.get(name)
                span = node_span(src, where, statement_span(src)) if where is not None \
                    else statement_span(src)
                message, hint = _untyped(name, inner, proj.type)
                diags.error("E403", message, span, hint=hint)
        columns.append(Column(name, ftype))
        projections[name] = cast(exp.Expression, inner)
    return TypedQuery(q, columns, projections) if ok else None


_CAST_HINT = "wrap it in CAST(... AS BIGINT | DOUBLE | STRING | BOOLEAN | TIMESTAMP | DATE)"


def _untyped(name: str, inner: exp.Expr, dtype: exp.DataType | None) -> tuple[str, str]:
    """Why the type of output column `name` is unknown, in the user's terms, and the fix."""
    if isinstance(inner, exp.Null):
        return (f"cannot infer the type of '{name}': NULL has no type",
                f"write CAST(NULL AS <type>) AS {name}")
    unknown_fn = next((n for n in inner.walk() if isinstance(n, exp.Anonymous)), None)
    if unknown_fn is not None:
        return (f"cannot infer the type of '{name}': featql does not know the function "
                f"{unknown_fn.name}()", _CAST_HINT)
    if dtype is not None and dtype.this not in (exp.DataType.Type.UNKNOWN,
                                                exp.DataType.Type.NULL):
        shown = dtype.sql(READ_DIALECT)
        return (f"'{name}' has type {shown}, which featql does not support", _CAST_HINT)
    return f"cannot infer the type of '{name}'", _CAST_HINT


def _check_projection_names(src: SourceFile, stmt: exp.Expression, diags: Diagnostics) -> bool:
    if not isinstance(stmt, exp.Select):
        return True
    ok = True
    seen: dict[str, exp.Expression] = {}
    for proj in stmt.selects:
        if isinstance(proj, exp.Star) or (isinstance(proj, exp.Column)
                                          and isinstance(proj.this, exp.Star)):
            continue
        if not isinstance(proj, exp.Alias | exp.Column):
            diags.error("E413", "this expression needs a name", node_span(src, proj),
                        hint="add AS <feature_name> after it")
            ok = False
            continue
        name = proj.alias_or_name.lower()
        if name in seen:
            diags.error("E412", f"output column '{name}' appears twice", node_span(src, proj),
                        hint="give each output column its own name")
            ok = False
        seen[name] = proj
    return ok


def type_view(src: SourceFile, decl: Decl, stmt: exp.Expression, tables: TableColumns,
              entity_keys: list[Column], diags: Diagnostics) -> TypedView | None:
    windows = decl.get("windows")
    if windows is not None or decl.get("slide") is not None:
        return _type_aggregate(src, decl, stmt, tables, entity_keys, diags)
    if isinstance(stmt, exp.Select) and (stmt.args.get("group") or _top_level_aggs(stmt)):
        first_agg = next((a for p in stmt.selects for a in p.find_all(exp.AggFunc)
                          if a.find_ancestor(exp.Window) is None
                          and a.find_ancestor(exp.Select) is stmt), None)
        diags.error("E414", "this view aggregates but its header has no windows",
                    node_span(src, stmt.args.get("group") or first_agg or stmt),
                    hint="add windows = ['1d', ...] and slide = '1h' to @feature_view, "
                    "or remove the aggregation")
        return None
    typed = type_query(src, stmt, tables, diags)
    if typed is None:
        return None
    out = {c.name: c for c in typed.columns}
    keys = _check_keys(src, decl, stmt, out, entity_keys, diags)
    ts = decl.get("timestamp")
    ok = keys is not None
    if ts not in out:
        diags.error("E406", f"timestamp column '{ts}' is not in the view's output",
                    decl.at("timestamp"), hint=f"select it: SELECT ..., {ts} FROM ...")
        ok = False
    elif out[ts].type != "TIMESTAMP":
        diags.error("E407", f"timestamp column '{ts}' is {out[ts].type}, expected TIMESTAMP",
                    _projection_span(src, stmt, ts, decl.at("timestamp")),
                    hint=f"CAST({ts} AS TIMESTAMP)")
        ok = False
    if not ok or keys is None:
        return None
    key_names = {k.name for k in keys}
    features = [c for c in typed.columns if c.name not in key_names and c.name != ts]
    if not features:
        diags.error("E415", "the view outputs no feature columns (only keys and timestamp)",
                    node_span(src, stmt))
        return None
    return TypedView(typed, keys, ts, features)


def _projection_span(src: SourceFile, stmt: exp.Expression, name: str, fallback: Span) -> Span:
    if isinstance(stmt, exp.Select):
        for p in stmt.selects:
            if p.alias_or_name.lower() == name:
                return node_span(src, p)
    return fallback


def _check_keys(src: SourceFile, decl: Decl, stmt: exp.Expression, out: dict[str, Column],
                entity_keys: list[Column], diags: Diagnostics) -> list[Column] | None:
    keys: list[Column] = []
    ok = True
    for key in entity_keys:
        if key.name not in out:
            diags.error("E404", f"entity key '{key.name}' of '{decl.get('entity')}' is not in "
                        "the view's output", decl.at("entity"),
                        hint=f"select it: SELECT {key.name}, ...")
            ok = False
            continue
        actual = out[key.name].type
        if actual not in KEY_TYPES:
            diags.error("E405", f"entity key '{key.name}' is {actual}; keys must be "
                        "BIGINT, INT or STRING", _projection_span(src, stmt, key.name, decl.span))
            ok = False
        elif key.type != UNKNOWN and not (compatible(actual, key.type)
                                          or compatible(key.type, actual)):
            diags.error("E405", f"entity key '{key.name}' is {actual} here but {key.type} in "
                        f"entity '{decl.get('entity')}'",
                        _projection_span(src, stmt, key.name, decl.span),
                        hint=f"CAST({key.name} AS {key.type})")
            ok = False
        keys.append(Column(key.name, key.type if key.type != UNKNOWN else actual))
    return keys if ok else None


def _top_level_aggs(stmt: exp.Select) -> bool:
    """Does this SELECT itself aggregate? (Not a window function, not a scalar subquery.)"""
    return any(a.find_ancestor(exp.Window) is None and a.find_ancestor(exp.Select) is stmt
               for p in stmt.selects for a in p.find_all(exp.AggFunc))


def _type_aggregate(src: SourceFile, decl: Decl, stmt: exp.Expression, tables: TableColumns,
                    entity_keys: list[Column], diags: Diagnostics) -> TypedView | None:
    windows, slide = decl.get("windows"), decl.get("slide")
    ok = True
    if windows is None or slide is None:
        missing = "windows" if windows is None else "slide"
        if windows is not None:
            hint = f"add slide = '{_fmt(math.gcd(*windows))}' (each window is a whole number " \
                "of slides)"
        else:
            hint = f"add windows = ['{_fmt(slide)}', '{_fmt(slide * 7)}'] or remove slide"
        diags.error("E411", f"an aggregate view needs both windows and slide; '{missing}' is "
                    "missing", decl.at("windows" if windows is not None else "slide"), hint=hint)
        return None
    for i, w in enumerate(windows):
        if w % slide and w != LIFETIME_SECONDS:  # 'lifetime' is every tile, whatever the slide
            diags.error("E410", f"window {_fmt(w)} is not a multiple of the slide {_fmt(slide)}",
                        decl.at(f"windows[{i}]"),
                        hint="each window must be a whole number of slides; use slide = "
                        f"'{_fmt(math.gcd(*windows, slide))}' or change the window")
            ok = False
    if decl.get("ttl") is not None:
        diags.error("E416", "ttl applies to row-level views; an aggregate view's windows bound "
                    "its features", decl.at("ttl"), hint="remove ttl")
        ok = False
    if not isinstance(stmt, exp.Select):
        diags.error("E408", "an aggregate view is one SELECT ... GROUP BY <entity keys>",
                    node_span(src, stmt))
        return None
    if stmt.args.get("having") is not None:
        diags.error("E417", "HAVING is not supported in aggregate views: it would filter tiles, "
                    "not windows", node_span(src, stmt.args["having"]))
        ok = False
    for clause in ("qualify", "limit", "offset", "order"):
        node = stmt.args.get(clause)
        if node is not None:
            shown = "ORDER BY" if clause == "order" else clause.upper()
            diags.error("E417", f"{shown} is not supported in aggregate views: an aggregate "
                        "view is computed per tile and merged per window", node_span(src, node),
                        hint=f"remove the {shown} clause")
            ok = False
    key_names = [k.name for k in entity_keys]
    group = stmt.args.get("group")
    grouped = [g.name.lower() for g in (group.expressions if group else [])
               if isinstance(g, exp.Column)]
    if group is None or sorted(grouped) != sorted(key_names) or len(grouped) != len(
            group.expressions):
        found = ", ".join(g.sql(READ_DIALECT) for g in group.expressions) if group else "none"
        extra = [g for g in (group.expressions if group else [])
                 if not (isinstance(g, exp.Column) and g.name.lower() in key_names)]
        where = (node_span(src, extra[0]) if extra else node_span(src, group)) if group \
            else statement_span(src)
        diags.error("E408", f"an aggregate view must GROUP BY exactly the entity keys "
                    f"({', '.join(key_names)}); found {found}", where,
                    hint=f"GROUP BY {', '.join(key_names)}")
        ok = False
    if not ok or not check_columns(src, stmt, tables, diags):
        return None
    aggs_ok = _check_aggregates(src, stmt, key_names, diags)
    ts = decl.get("timestamp")
    ts_type = _input_column_type(stmt, ts, tables)
    if ts_type is None:
        diags.error("E406", f"timestamp column '{ts}' is not a column of the tables the view "
                    "reads", decl.at("timestamp"))
        return None
    if ts_type != "TIMESTAMP":
        diags.error("E407", f"timestamp column '{ts}' is {ts_type}, expected TIMESTAMP",
                    decl.at("timestamp"))
        return None
    if not aggs_ok:
        return None
    typed = type_query(src, stmt, tables, diags, columns_checked=True)
    if typed is None:
        return None
    keys = _check_keys(src, decl, stmt, {c.name: c for c in typed.columns}, entity_keys, diags)
    if keys is None:
        return None
    aggregations: list[Aggregation] = []
    for name, node in typed.projections.items():
        if name in key_names:
            continue
        agg = _aggregation(src, name, node, stmt, diags)
        if agg is None:
            return None
        aggregations.append(agg)
    features = [Column(window_feature(a.name, w), a.type) for a in aggregations for w in windows]
    return TypedView(typed, keys, ts, features, aggregations, tuple(windows), slide)


def window_feature(aggregation: str, window_seconds: int) -> str:
    """The feature an aggregate gives for one window: `txn_count` over 7 days → `txn_count_7d`."""
    return f"{aggregation}_{_fmt(window_seconds)}"


def _input_column_type(stmt: exp.Select, name: str, tables: TableColumns) -> str | None:
    from featql.compiler.resolve import table_references

    for t in table_references(stmt):
        cols = tables.get(t.name.lower(), {})
        if name in cols:
            return cols[name]
    return None


def _check_aggregates(src: SourceFile, stmt: exp.Select, keys: list[str],
                      diags: Diagnostics) -> bool:
    ok = True
    for proj in stmt.selects:
        inner = proj.this if isinstance(proj, exp.Alias) else proj
        if isinstance(inner, exp.Column) and inner.name.lower() in keys:
            continue
        if not isinstance(proj, exp.Alias):
            continue  # reported as unnamed by type_query
        if inner.find(exp.Window) is not None:
            diags.error("E409", f"feature '{proj.alias}': window functions (OVER) are not "
                        "allowed in aggregate views", node_span(src, inner),
                        hint="the header's windows define the aggregation windows; "
                        f"use one of {SUPPORTED_AGGS}")
            ok = False
        elif isinstance(inner, exp.AggFunc) and type(inner) not in AGG_FUNCTIONS:
            diags.error("E409", f"unsupported aggregate {inner.sql_name()}() in an aggregate view",
                        node_span(src, inner), hint=f"supported (mergeable across tiles): "
                        f"{SUPPORTED_AGGS}")
            ok = False
        elif isinstance(inner, exp.AggFunc) and isinstance(inner.this, exp.Distinct):
            diags.error("E409", "COUNT(DISTINCT ...) cannot be merged across tiles",
                        node_span(src, inner), hint=f"supported: {SUPPORTED_AGGS}")
            ok = False
        elif not isinstance(inner, exp.AggFunc):
            if isinstance(inner, exp.Anonymous) or inner.find(exp.AggFunc) is None:
                named = isinstance(inner, exp.Anonymous)
                shown = (inner.name.upper() if named else inner.sql_name()) \
                    if isinstance(inner, exp.Func) else "expression"
                close = did_you_mean(shown, [f.sql_name for f in FUNCTIONS.values()]) \
                    if named else None
                diags.error("E409", f"feature '{proj.alias}' of an aggregate view must be one of "
                            f"{SUPPORTED_AGGS}, found {shown}", node_span(src, inner),
                            hint=close or "compute derived values in a request transform or a "
                            "view")
            else:
                diags.error("E409", f"feature '{proj.alias}' must be a single aggregate call, "
                            "not an expression over aggregates", node_span(src, inner),
                            hint="split it into separate aggregates; combine them in a "
                            "request transform")
            ok = False
    return ok


def _aggregation(src: SourceFile, name: str, node: exp.Expression, stmt: exp.Select,
                 diags: Diagnostics) -> Aggregation | None:
    func = AGG_FUNCTIONS[type(node)]
    fn = FUNCTIONS[func]
    arg = node.this
    if (isinstance(arg, exp.Star) or arg is None) and func == "count":
        return Aggregation(name, "count", None, None, "BIGINT")
    args = _constant_args(src, name, node, fn, stmt, diags)
    if args is None:
        return None
    in_type = from_sqlglot(arg.type)
    if not fn.accepts(in_type):
        diags.error("E418", f"{fn.sql_name}() needs {fn.wants}; '{name}' aggregates "
                    f"{in_type}", _projection_span(src, stmt, name, Span(src.path, 1, 1)),
                    hint=_input_hint(func, in_type))
        return None
    out_type = fn.result_type(in_type)
    if out_type == UNKNOWN:
        diags.error("E403", f"cannot infer a featql type for '{name}'",
                    _projection_span(src, stmt, name, Span(src.path, 1, 1)),
                    hint="CAST the aggregated expression")
        return None
    return Aggregation(name, func, arg.sql(READ_DIALECT), in_type, out_type,  # type: ignore
                       args=args)


def _constant_args(src: SourceFile, name: str, node: exp.Expression, fn: AggregateFunction,
                   stmt: exp.Select, diags: Diagnostics) -> tuple[int | float, ...] | None:
    """The constant arguments after an aggregate's input (LAST_N's n), as numbers; None
    after reporting E430 (a missing, non-literal or refused argument) at the argument."""
    nodes = [a for a in (node.args.get("expression"), *(node.args["extra"].expressions
                                                         if node.args.get("extra") else ()))
             if a is not None] if fn.arity else []
    if node.this is None or isinstance(node.this, exp.Star):
        diags.error("E430", f"{fn.sql_name}() needs an input column: "
                    f"{fn.sql_name}({', '.join(('x', *fn.arity))})", node_span(src, node))
        return None
    values: list[int | float] = []
    for a in nodes:
        literal = a.this if isinstance(a, exp.Neg) else a
        if not (isinstance(literal, exp.Literal) and not literal.is_string):
            what = fn.arity[len(values)] if len(values) < len(fn.arity) else "argument"
            shown = a.name if isinstance(a, exp.Column) else a.sql(READ_DIALECT)
            diags.error("E430", f"{fn.sql_name}()'s {what} must be a number written in the "
                        f"query, not {shown}", node_span(src, a),
                        hint=f"e.g. {fn.sql_name}({_example(fn)})")
            return None
        number: int | float = int(literal.name) if literal.is_int else float(literal.name)
        values.append(-number if isinstance(a, exp.Neg) else number)
    why = fn.check_args(values)
    if why is not None:
        if len(nodes) > len(fn.arity):
            at = node_span(src, nodes[len(fn.arity)])
        elif nodes and len(nodes) == len(fn.arity):
            at = node_span(src, nodes[0])
        else:
            at = node_span(src, node)
        example = _example(fn)
        diags.error("E430", why, at, hint=f"e.g. {fn.sql_name}({example})")
        return None
    return tuple(values)


def _example(fn: AggregateFunction) -> str:
    """A valid call's arguments, for hints: `x, 10` (LAST_N), `x, 0.5` (APPROX_PERCENTILE)."""
    return ", ".join(("x", *(fn.examples or tuple("10" for _ in fn.arity))))


def _input_hint(func: str, in_type: str) -> str | None:
    """What to write instead when an input's type does not fit the function (the first five
    functions' E418 has never had a hint)."""
    if func in ("count", "sum", "avg", "min", "max"):
        return None
    fits = [f.sql_name for f in FUNCTIONS.values() if f.name != func and f.accepts(in_type)
            and f.name not in ("count", "min", "max")]
    other = f"; over {in_type}, did you mean {' or '.join(fits[:2])}?" if fits else ""
    return f"CAST the input to a type {FUNCTIONS[func].sql_name}() takes{other}"
