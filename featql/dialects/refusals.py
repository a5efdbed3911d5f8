"""Constructs sqlglot 30.30 translates *silently wrong*: refused before generating SQL.

sqlglot's `unsupported_level=ErrorLevel.RAISE` (see `render.py`) catches what sqlglot knows it
cannot express. These checks catch what it passes through or rewrites without a word; each was
reproduced with sqlglot 30.30.0 and, where it runs, on the engine itself (tests/test_dialects.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from sqlglot import exp

from featql.core.diagnostics import Span
from featql.dialects.errors import NO_SPAN, LoweringError, Target, refuse
from featql.dialects.spark import date_diff_unit

Nodes = Sequence[exp.Expr]  # every node of a tree, in `walk()` (breadth-first) order
Check = Callable[[Nodes, Span], None]
E = TypeVar("E", bound=exp.Expr)


def _of(nodes: Nodes, kind: type[E]) -> Iterator[E]:
    """The nodes of one type, in the order `tree.find_all(kind)` yields them."""
    return (n for n in nodes if isinstance(n, kind))


def refuse_asof_join(nodes: Nodes, span: Span = NO_SPAN) -> None:
    """DuckDB `ASOF JOIN` is passed to Spark verbatim; Spark has no as-of join and fails.

    https://duckdb.org/docs/sql/query_syntax/from#as-of-joins
    """
    for join in _of(nodes, exp.Join):
        if str(join.args.get("method") or "").upper() == "ASOF":
            raise refuse("ASOF JOIN cannot run on Spark: Spark SQL has no as-of join", span,
                         hint="read the table in its own row-level feature view: featql's "
                         "point-in-time join picks the latest row before each event")


def refuse_ordered_aggregate(nodes: Nodes, span: Span = NO_SPAN) -> None:
    """`ARRAY_AGG(x ORDER BY y)` becomes `COLLECT_LIST(x)` on Spark: the ORDER BY is dropped.

    Other aggregates with an ORDER BY inside the call (`FIRST(x ORDER BY y)`) are kept verbatim,
    which Spark rejects. `STRING_AGG(x, ',' ORDER BY y)` becomes `LISTAGG ... WITHIN GROUP
    (ORDER BY y)`, which Spark 4 runs, so it is allowed.
    """
    for agg in _of(nodes, exp.AggFunc):
        if isinstance(agg.this, exp.Order) and not isinstance(agg, exp.GroupConcat):
            name = "ARRAY_AGG" if isinstance(agg, exp.ArrayAgg) else agg.sql_name()
            why = ("Spark's COLLECT_LIST has no ORDER BY, so the order would be lost"
                   if isinstance(agg, exp.ArrayAgg)
                   else "Spark aggregates take no ORDER BY inside the call")
            raise refuse(f"{name}(... ORDER BY ...) cannot run on Spark: {why}", span,
                         hint="aggregate without ORDER BY, then sort the result (ARRAY_SORT), "
                         "or compute the ordered value with a window function")


def refuse_array_agg_nulls(nodes: Nodes, span: Span = NO_SPAN) -> None:
    """DuckDB's ARRAY_AGG keeps NULL elements; Spark's COLLECT_LIST (its translation) drops them.

    Allowed when the query already says NULLs go: `ARRAY_AGG(x) FILTER (WHERE x IS NOT NULL)`.
    https://spark.apache.org/docs/latest/api/sql/index.html#collect_list
    """
    for agg in _of(nodes, exp.ArrayAgg):
        if isinstance(agg.this, exp.Order) or _filters_out_nulls(agg):
            continue
        arg = agg.this.sql(dialect="duckdb") if agg.this is not None else "x"
        raise refuse("ARRAY_AGG cannot run on Spark: Spark's COLLECT_LIST drops NULL elements "
                     "that DuckDB's ARRAY_AGG keeps", span,
                     hint=f"say so on both engines: ARRAY_AGG({arg}) FILTER (WHERE {arg} IS "
                     "NOT NULL)")


def _filters_out_nulls(agg: exp.ArrayAgg) -> bool:
    parent = agg.parent
    if not isinstance(parent, exp.Filter) or parent.this is not agg:
        return False
    where = parent.expression
    cond = where.this if isinstance(where, exp.Where) else where
    conjuncts = list(cond.flatten()) if isinstance(cond, exp.And) else [cond]
    wanted = exp.Not(this=exp.Is(this=agg.this.copy(), expression=exp.Null()))
    return any(c == wanted for c in conjuncts)


def refuse_date_diff_unit(nodes: Nodes, span: Span = NO_SPAN) -> None:
    """DuckDB DATE_DIFF units without a Spark TIMESTAMPDIFF unit (decade, century, dow, ...)."""
    for dd in _of(nodes, exp.DateDiff):
        if dd.args.get("date_part_boundary") and date_diff_unit(dd) is None:
            unit = dd.args.get("unit")
            shown = unit.name.lower() if isinstance(unit, exp.Var | exp.Literal) else "?"
            raise refuse(f"DATE_DIFF('{shown}', ...) cannot run on Spark: Spark has no such "
                         "unit", span, hint="use year, quarter, month, week, day, hour, minute, "
                         "second, millisecond or microsecond")


def refuse_single_regexp_replace(nodes: Nodes, span: Span = NO_SPAN) -> None:
    """DuckDB's REGEXP_REPLACE options (4th argument) do not survive the trip to Spark.

    Without 'g' DuckDB replaces the first match only, Spark's REGEXP_REPLACE every match:
    `REGEXP_REPLACE('xax', 'x', 'y')` is 'yax' on DuckDB and 'yay' on Spark; sqlglot marks the
    DuckDB call `single_replace` but Spark's generator ignores that, and drops the options
    argument (so 'i', case-insensitive, is lost too).
    https://duckdb.org/docs/sql/functions/regular_expressions#options-for-regular-expression-functions
    """
    for node in _of(nodes, exp.RegexpReplace):
        if not node.args.get("single_replace"):
            continue  # not read from DuckDB
        mods = node.args.get("modifiers")
        flags = mods.name if isinstance(mods, exp.Literal) and mods.is_string else None
        if flags is None or "g" not in flags:
            raise refuse("REGEXP_REPLACE without 'g' cannot run on Spark: DuckDB replaces the "
                         "first match only, Spark replaces every match", span,
                         hint="pass 'g' as the fourth argument to replace every match on both "
                         "engines")
        if set(flags) - {"g"}:
            raise refuse(f"REGEXP_REPLACE options '{flags}' cannot run on Spark: only 'g' has "
                         "a Spark equivalent", span,
                         hint="write the option inline in the pattern, e.g. '(?i)abc', and "
                         "pass just 'g'")


def refuse_last_ignore_nulls(nodes: Nodes, span: Span = NO_SPAN) -> None:
    """Spark `last(x, true)` (IGNORE NULLS): sqlglot drops IGNORE NULLS on the way to DuckDB.

    At the default `unsupported_level` it only logs a warning and emits `LAST(x)`, which returns
    the last value even when it is NULL (Spark gives the last non-NULL one). As a window function
    it is rendered `LAST(x IGNORE NULLS) OVER (...)` by `FeatqlDuckDB`. `first(x, true)` becomes
    DuckDB's ANY_VALUE, which skips NULLs too, so it is allowed.
    """
    for node in _of(nodes, exp.IgnoreNulls):
        if isinstance(node.this, exp.Last) and not isinstance(node.parent, exp.Window):
            raise refuse("LAST(..., true) cannot run on DuckDB: sqlglot drops its IGNORE NULLS",
                         span, hint="filter the NULLs out first (WHERE x IS NOT NULL), or use a "
                         "window with LAST_VALUE(x IGNORE NULLS)")


CHECKS: dict[Target, tuple[Check, ...]] = {
    "spark": (refuse_asof_join, refuse_ordered_aggregate, refuse_array_agg_nulls,
              refuse_date_diff_unit, refuse_single_regexp_replace),
    "duckdb": (refuse_last_ignore_nulls,),
}


# every node type a rule looks at: the rules see only these nodes (a plain SELECT has none)
WATCHED: tuple[type[exp.Expr], ...] = (exp.Join, exp.AggFunc, exp.DateDiff, exp.RegexpReplace,
                                       exp.IgnoreNulls)


def _watched(tree: exp.Expr) -> list[exp.Expr]:
    return [n for n in tree.walk() if isinstance(n, WATCHED)]


def check(tree: exp.Expr, target: Target, span: Span = NO_SPAN) -> None:
    """Raise `LoweringError` (E701) for the first construct `target` would get wrong.

    The tree is walked once; each rule, in order, looks at the nodes of its type.
    """
    error = check_all([tree], [target], span).get(target)
    if error is not None:
        raise error


def check_all(trees: Sequence[exp.Expr], targets: Sequence[Target],
              span: Span = NO_SPAN) -> dict[Target, LoweringError]:
    """`check` of every tree for every target, walking each tree once: target → the error
    `check` raises first for it (trees in order), for the targets that have one."""
    failed: dict[Target, LoweringError] = {}
    for tree in trees:
        nodes = _watched(tree)
        for target in targets:
            if target in failed:
                continue
            try:
                for rule in CHECKS[target]:
                    rule(nodes, span)
            except LoweringError as e:
                failed[target] = e
    return failed
