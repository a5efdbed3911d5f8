"""The sqlglot nodes of featql's own aggregate calls, and of a partial's build in the tile stage.

sqlglot parses `LAST_N(x, 10)`, `FIRST_DISTINCT_N(x, 3)` or `TOP_K(x, 5)` as an anonymous
function; featql makes them aggregate calls (`exp.AggFunc`) so that every rule about aggregates
(GROUP BY, the aggregate view's projections, lineage) sees them. sqlglot's own dialects are
never patched: the compiler, which reads with sqlglot's `duckdb`, turns the anonymous calls into
these nodes with `recognize` right after parsing; featql's own dialects add `PARSERS` to their
parsers. Either way the SQL text is the same (`LAST_N(x, 10)`).

`PartialBuild` is one partial of a tile, built by the function itself per dialect
(`AggregateFunction.build_sql`): featql's dialects render it through `render_partial`, so the
tile stage stays a dialect-neutral tree.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.generator import Generator


class _NCall(exp.Expression, exp.AggFunc):
    """`F(x, n)`: an aggregate with one constant argument after its input."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True, "expression": False, "extra": False}


class LastN(_NCall):
    _sql_names: ClassVar[list[str]] = ["LAST_N"]


class LastDistinctN(_NCall):
    _sql_names: ClassVar[list[str]] = ["LAST_DISTINCT_N"]


class FirstN(_NCall):
    _sql_names: ClassVar[list[str]] = ["FIRST_N"]


class FirstDistinctN(_NCall):
    _sql_names: ClassVar[list[str]] = ["FIRST_DISTINCT_N"]


class TopK(_NCall):
    _sql_names: ClassVar[list[str]] = ["TOP_K"]


class ApproxPercentileCall(_NCall):
    """APPROX_PERCENTILE(x, p) (featql.semantics.sketches; sqlglot's DuckDB reader does not
    know the name, and Spark's ApproxQuantile would carry p as another argument)."""

    _sql_names: ClassVar[list[str]] = ["APPROX_PERCENTILE"]


CALLS: tuple[type[exp.AggFunc], ...] = (LastN, LastDistinctN, FirstN, FirstDistinctN, TopK,
                                        ApproxPercentileCall)


def _builder(cls: type[exp.AggFunc]) -> Any:
    return lambda args: cls(this=args[0] if args else None,
                            expression=args[1] if len(args) > 1 else None,
                            **({"extra": exp.Tuple(expressions=args[2:])} if len(args) > 2
                               else {}))


PARSERS: dict[str, Any] = {cls._sql_names[0]: _builder(cls) for cls in CALLS}
"""Parser entries (name -> builder) for a dialect's `Parser.FUNCTIONS`."""


class PartialBuild(exp.Expression, exp.AggFunc):
    """One partial column of a tile: `this` the input column, `time` the event time column
    (functions that are `ordered`), `function` / `partial` / `params` (literals) name it."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True, "time": False, "function": True,
                                            "partial": True, "params": False}


def render_partial(gen: Generator, e: PartialBuild, dialect: str) -> str:
    """A `PartialBuild` in `dialect`: the function's own SQL over the rendered columns."""
    from featql.semantics.aggregates import FUNCTIONS

    params = e.args.get("params")
    args = tuple(_number(p) for p in params.expressions) if params is not None else ()
    fn = FUNCTIONS[e.args["function"].name].bind(args)
    time = e.args.get("time")
    return fn.partial_sql(dialect, e.args["partial"].name, gen.sql(e, "this"),
                          gen.sql(time) if time is not None else None)


def _number(literal: exp.Expr) -> int | float:
    text = literal.name
    return int(text) if text.lstrip("-").isdigit() else float(text)


_NAMES = re.compile(r"\b(?:(?:last|first)(?:_distinct)?_n|top_k|approx_percentile)\s*\(",
                    re.IGNORECASE)


def mentions(text: str) -> bool:
    """Does SQL text call one of these functions (a cheap test before `recognize`)?"""
    return _NAMES.search(text) is not None


def recognize(tree: exp.Expr) -> exp.Expr:
    """`tree` with each anonymous call of these functions replaced by its node (in place;
    the root is returned, replaced too when it is such a call). Positions are kept."""
    by_name = {cls._sql_names[0]: cls for cls in CALLS}
    for node in list(tree.find_all(exp.Anonymous)):
        cls = by_name.get(str(node.this).upper())
        if cls is None:
            continue
        new = _builder(cls)(list(node.expressions))
        if node.meta:
            new.meta.update(node.meta)
        if node is tree:
            tree = new
        else:
            node.replace(new)
    return tree
