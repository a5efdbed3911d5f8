"""The sqlglot node of APPROX_COUNT_DISTINCT's input key in an aggregate view's event stage.

`SketchKey(this=x, kind='i' | 'd' | 's')` is the value the tile's HLL build hashes: on Spark the
integer or text itself, or the BIGINT bits of a double (what `Double.doubleToLongBits` gives,
computed in SQL); on DuckDB the value as kind-tagged text for the `featql_hll_build` UDF. It is
a column of the event stage because the tile stage's build (`partial_sql`) is not told the
input's type. featql's dialects render it through `render_key`, with the SQL of
`featql.semantics.sketches.key_sql`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlglot import exp


class SketchKey(exp.Expression, exp.Func):
    """APPROX_COUNT_DISTINCT's input as its tile build hashes it."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True, "kind": True}
    _sql_names: ClassVar[list[str]] = ["FEATQL_SKETCH_KEY"]


def sketch_key(arg: exp.Expr, kind: str) -> SketchKey:
    return SketchKey(this=arg, kind=exp.Literal.string(kind))


def render_key(gen: Any, e: SketchKey, dialect: str) -> str:
    """A `SketchKey` in `dialect` (the featql dialects' generator TRANSFORMS call this)."""
    from featql.semantics.sketches import key_sql

    return key_sql(dialect, e.args["kind"].name, gen.sql(e, "this"))
