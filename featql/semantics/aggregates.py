"""Every aggregate function featql accepts, each defined once (PRODUCT §2 and §3).

An aggregate view is computed as tiles: per entity and slide, each aggregation's *partials*
(mergeable partial aggregates). A window merges the partials of its tiles and *finalizes* the
merged state into the feature's value. One `AggregateFunction` per function says all of it:

- `partials(result_type)`: its partial columns (`<aggregation>__<partial>`), their types, how
  each is built from rows (`build`: a SQL aggregate over the input) and merged across tiles
  (`merge`: `sum`, `min` or `max`; a `sum` partial is *additive*: NULL counts as 0);
- `build(partial, arg)` / `build_sql(dialect, input)`: the tile stage, as a sqlglot tree (the
  offline lowering renders it per target) or as DuckDB / Spark text;
- `merge_sql(dialect, columns, frame)`: merge and finalize over a SQL window frame, DuckDB and
  Spark (the point-in-time join);
- `fold(values)` (Python partials of raw input values: a stream's head), `merge(window)` (Python
  merge over the tiles of a `Window`) and `finalize(merged, type)` (the online read);
- `empty`: the value of an empty window: COUNT 0, every other function NULL.

COUNT, SUM, AVG, MIN and MAX here; STDDEV/VAR (Chan's merge of count, mean, M2) in
`spread.py`; LAST_N, FIRST_N (and their DISTINCT forms) and TOP_K in `ranked.py`. A new
function is one more subclass registered in `FUNCTIONS`: a function whose partials do not merge
with `sum`/`min`/`max` (build and merge op `custom`) overrides `build`/`build_sql`,
`merge_sql`, `merge` (a `Window` hands it its tiles' columns) and `fold`. A function with
constant arguments (LAST_N's n) reads them from `self.args`: `for_aggregation(agg)` binds an
aggregation's `args` (`bind`); an `ordered` function's partials need each event's time (its
`fold` takes (time, value) pairs, its builds the event time column).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from featql.core.ir import Aggregation, FeatureView
from featql.core.types import NUMERIC
from featql.semantics.types import python_value, sql_type

if TYPE_CHECKING:
    from sqlglot import exp

BuildOp = Literal["count", "sum", "min", "max", "custom"]
MergeOp = Literal["sum", "min", "max", "custom"]


@dataclass(frozen=True)
class Partial:
    """One partial column of an aggregation: `<aggregation>__<name>`."""

    name: str  # count | sum | min | max
    type: str  # featql type of the column
    build: BuildOp  # the SQL aggregate that computes it from the rows of a tile
    merge: MergeOp  # how tiles combine

    @property
    def additive(self) -> bool:
        """Merged by addition: an absent (NULL) value is 0, the count says what is empty."""
        return self.merge == "sum"


class Window(Protocol):
    """The tiles of one window, as the Python merge reads them (by partial column name)."""

    def total(self, column: str) -> int | float:
        """Sum of an additive column over the window (NULL as 0; ints stay ints)."""
        ...

    def present(self, column: str) -> Sequence[Any]:
        """The non-NULL values of a column over the window, in tile order."""
        ...

    def column(self, column: str) -> Sequence[Any]:
        """Every tile's value of a column, in tile order, NULL as None (an additive column may
        read 0 for NULL): for functions whose partials are read tile by tile, aligned."""
        ...


def partial_column(aggregation: str, partial: str) -> str:
    """The column of one partial: `<aggregation>__<partial>`."""
    return f"{aggregation}__{partial}"


def built_type(build: BuildOp, input_type: str | None) -> str | None:
    """The featql type an engine's own aggregate already returns for a partial built with
    `build` over an input of `input_type` (None: not known, the lowering casts)."""
    if build == "count":
        return "BIGINT"
    if build == "custom":
        return None
    if build == "sum":
        return input_type if input_type == "DOUBLE" else None  # SUM(BIGINT) is HUGEINT on DuckDB
    return input_type


class AggregateFunction:
    """One aggregate function; subclasses set the class attributes and the finalize rules."""

    name: ClassVar[str]  # as in the IR: count, sum, ...
    sql_name: ClassVar[str]  # as users write it: COUNT, SUM, ...
    empty: ClassVar[Any] = None  # the value over an empty window
    ordered: ClassVar[bool] = False  # its partials need each event's time (LAST_N, FIRST_N)
    # its SQL merge does not depend on the order of the tiles (LAST_N ranks its entries, TOP_K
    # adds counts): the point-in-time join may group tiles per anchor instead of a frame
    order_free: ClassVar[bool] = False
    arity: ClassVar[tuple[str, ...]] = ()  # its constant arguments after the input: ("n",)
    examples: ClassVar[tuple[str, ...]] = ()  # a valid value of each, for hints (default 10)
    args: tuple[int | float, ...] = ()  # bound by `bind`
    wants: ClassVar[str] = "a numeric input"  # what `accepts` takes, for diagnostics

    def bind(self, args: tuple[int | float, ...]) -> AggregateFunction:
        """This function with its constant arguments (`Aggregation.args`); itself without."""
        if not args:
            return self
        key = (self.name, args)
        bound = _BOUND.get(key)
        if bound is None:
            bound = copy.copy(self)
            bound.args = tuple(args)
            if len(_BOUND) < 1 << 12:
                _BOUND[key] = bound
        return bound

    def check_args(self, args: Sequence[Any]) -> str | None:
        """Why these constant arguments are refused (None: accepted). Args are numbers as
        written, in call order; the compiler positions the message."""
        if len(args) != len(self.arity):
            form = ", ".join(("x", *self.arity))
            return f"{self.sql_name}() takes {len(self.arity) + 1} argument" \
                f"{'s' if self.arity else ''}: {self.sql_name}({form})"
        return None

    # -- compile time ----------------------------------------------------------------------------
    def sqlglot_class(self) -> type[exp.AggFunc]:
        """The sqlglot node of a call (the compiler recognizes calls by it)."""
        raise NotImplementedError

    def sqlglot_classes(self) -> tuple[type[exp.AggFunc], ...]:
        """Every sqlglot node that is a call of it (aliases such as STDDEV for STDDEV_SAMP)."""
        return (self.sqlglot_class(),)

    def accepts(self, input_type: str | None) -> bool:
        """Can it aggregate an input of that featql type (None: COUNT(*))?"""
        return input_type is not None

    def result_type(self, input_type: str | None) -> str:
        """The featql type of its features."""
        return input_type or "BIGINT"

    def input_cast(self, input_type: str | None) -> str | None:
        """A featql type to cast the input to before building the partials, if any."""
        return None

    def input_node(self, arg: exp.Expr, input_type: str | None) -> exp.Expr | None:
        """The event stage's input column, when a cast does not say it (None: `input_cast`):
        APPROX_COUNT_DISTINCT's hash key, which Spark must compute outside the aggregate."""
        return None

    def partials(self, result_type: str) -> tuple[Partial, ...]:
        raise NotImplementedError

    # -- the tile stage ------------------------------------------------------------------------
    def build(self, partial: Partial, arg: exp.Expr, time: exp.Expr | None = None) -> exp.Expr:
        """The sqlglot aggregate computing `partial` over a tile's rows (`arg`: the input
        column, or `exp.Star()` for COUNT(*); `time`: the event time column, for `ordered`
        functions); each target renders it (a `custom` build through `partial_sql`)."""
        from sqlglot import exp

        if partial.build == "custom":
            from featql.semantics.calls import PartialBuild

            params = exp.Tuple(expressions=[exp.Literal.number(a) for a in self.args])
            return PartialBuild(this=arg, time=time, function=exp.Literal.string(self.name),
                                partial=exp.Literal.string(partial.name), params=params)
        node: type[exp.AggFunc] = {"count": exp.Count, "sum": exp.Sum, "min": exp.Min,
                                   "max": exp.Max}[partial.build]
        return node(this=arg)

    def partial_sql(self, dialect: str, partial: str, input_sql: str,
                    time_sql: str | None) -> str:
        """The SQL aggregate of a `custom` partial over a GROUP BY's rows (`input_sql` already
        cast by `input_cast`; `time_sql` the event time, for `ordered` functions)."""
        raise NotImplementedError(f"{self.sql_name} has no custom partial {partial!r}")

    def build_sql(self, dialect: str, input_sql: str | None, input_type: str | None,
                  result_type: str, time_sql: str | None = None) -> tuple[tuple[str, str], ...]:
        """(partial, SQL aggregate) pairs over a GROUP BY's rows in `dialect`; `input_sql` None
        is COUNT(*); `time_sql` the event time (a TIMESTAMP), needed by `ordered` functions."""
        arg = "*" if input_sql is None else input_sql
        cast = self.input_cast(input_type)
        if cast is not None and input_sql is not None:
            arg = f"CAST({input_sql} AS {sql_type(dialect, cast)})"
        return tuple((p.name, self.partial_sql(dialect, p.name, arg, time_sql)
                      if p.build == "custom" else f"{p.build.upper()}({arg})")
                     for p in self.partials(result_type))

    # -- merge and finalize in SQL ---------------------------------------------------------------
    def merge_sql(self, dialect: str, columns: Mapping[str, str], frame: str) -> str:
        """The merged, finalized value over a window: `columns` maps each partial to its
        (quoted) column, `frame` is the `OVER (...)` clause."""
        merged = {p: f"{_MERGE_SQL[op]}({columns[p]}) {frame}"
                  for p, op in self.merge_ops().items()}
        return self.finalize_sql(dialect, merged)

    def merge_ops(self) -> dict[str, MergeOp]:
        """Each partial's merge op, by partial name (names and ops do not depend on types)."""
        ops = _OPS.get(self.name)
        if ops is None:
            ops = _OPS[self.name] = {p.name: p.merge for p in self.partials("DOUBLE")}
        return ops

    def _plan(self, aggregation: str) -> tuple[tuple[str, MergeOp, str], ...]:
        """(partial, merge op, column) of one aggregation, computed once."""
        plans = _PLANS.setdefault(self.name, {})
        plan = plans.get(aggregation)
        if plan is None:
            plan = tuple((p, op, partial_column(aggregation, p))
                         for p, op in self.merge_ops().items())
            if len(plans) < 1 << 14:
                plans[aggregation] = plan
        return plan

    def finalize_sql(self, dialect: str, merged: Mapping[str, str]) -> str:
        """The value from the merged partials (SQL expressions, NULL over no tile)."""
        raise NotImplementedError

    # -- Python ------------------------------------------------------------------------------------
    def fold(self, values: Sequence[Any]) -> dict[str, Any]:
        """The partials of one tile from its rows' input values (a stream's head), as the SQL
        of `build_sql` computes them (a SUM over no non-NULL value is NULL); for COUNT(*) pass
        any non-NULL marker per row."""
        present = [v for v in values if v is not None]
        out: dict[str, Any] = {}
        for p in self.partials("DOUBLE"):
            if p.build == "count":
                out[p.name] = len(present)
            elif p.build == "sum":
                out[p.name] = _sum([int(v) if isinstance(v, bool) else v for v in present]) \
                    if present else None
            elif p.build == "min":
                out[p.name] = min(present) if present else None
            else:
                out[p.name] = max(present) if present else None
        return out

    def merge(self, window: Window, aggregation: str) -> dict[str, Any]:
        """The merged partials of `aggregation` over the tiles of `window` (min/max None when
        no tile has a value)."""
        out: dict[str, Any] = {}
        for p, op, col in self._plan(aggregation):
            if op == "sum":
                out[p] = window.total(col)
            else:
                vals = window.present(col)
                out[p] = (max(vals) if op == "max" else min(vals)) if len(vals) else None
        return out

    def finalize(self, merged: Mapping[str, Any], result_type: str) -> Any:
        """The feature's value (its featql type's Python type) from the merged partials."""
        raise NotImplementedError


_MERGE_SQL: dict[str, str] = {"sum": "SUM", "min": "MIN", "max": "MAX"}
_BOUND: dict[tuple[str, tuple[int | float, ...]], AggregateFunction] = {}
_OPS: dict[str, dict[str, MergeOp]] = {}
_PLANS: dict[str, dict[str, tuple[tuple[str, MergeOp, str], ...]]] = {}


def _sum(values: Sequence[Any]) -> int | float:
    """Exact integer sums; correctly rounded float sums (math.fsum), as the online read."""
    if all(isinstance(v, int) for v in values):
        return sum(values)
    return math.fsum(values)


def _count(merged: Mapping[str, str]) -> str:
    return f"COALESCE({merged['count']}, 0)"


class Count(AggregateFunction):
    name = "count"
    sql_name = "COUNT"
    empty = 0

    def sqlglot_class(self) -> type[exp.AggFunc]:
        from sqlglot import exp

        return exp.Count

    def accepts(self, input_type: str | None) -> bool:
        return True

    def result_type(self, input_type: str | None) -> str:
        return "BIGINT"

    def partials(self, result_type: str) -> tuple[Partial, ...]:
        return (Partial("count", "BIGINT", "count", "sum"),)

    def finalize_sql(self, dialect: str, merged: Mapping[str, str]) -> str:
        return _count(merged)

    def finalize(self, merged: Mapping[str, Any], result_type: str) -> Any:
        return int(merged["count"] or 0)


class Sum(AggregateFunction):
    """SUM: NULL when no input was non-NULL (the count partial says so)."""

    name = "sum"
    sql_name = "SUM"

    def sqlglot_class(self) -> type[exp.AggFunc]:
        from sqlglot import exp

        return exp.Sum

    def accepts(self, input_type: str | None) -> bool:
        return input_type in NUMERIC or input_type == "BOOLEAN"

    def result_type(self, input_type: str | None) -> str:
        return "BIGINT" if input_type in ("BIGINT", "INT", "BOOLEAN") else "DOUBLE"

    def input_cast(self, input_type: str | None) -> str | None:
        return "INT" if input_type == "BOOLEAN" else None  # Spark cannot SUM booleans

    def partials(self, result_type: str) -> tuple[Partial, ...]:
        return (Partial("sum", result_type, "sum", "sum"),
                Partial("count", "BIGINT", "count", "sum"))

    def finalize_sql(self, dialect: str, merged: Mapping[str, str]) -> str:
        return f"CASE WHEN {_count(merged)} > 0 THEN {merged['sum']} END"

    def finalize(self, merged: Mapping[str, Any], result_type: str) -> Any:
        if not merged["count"]:
            return None
        return python_value(merged["sum"], result_type)


class Avg(Sum):
    """AVG = sum / count, as DOUBLE; NULL over no non-NULL input."""

    name = "avg"
    sql_name = "AVG"

    def sqlglot_class(self) -> type[exp.AggFunc]:
        from sqlglot import exp

        return exp.Avg

    def result_type(self, input_type: str | None) -> str:
        return "DOUBLE"

    def partials(self, result_type: str) -> tuple[Partial, ...]:
        return (Partial("sum", "DOUBLE", "sum", "sum"),
                Partial("count", "BIGINT", "count", "sum"))

    def finalize_sql(self, dialect: str, merged: Mapping[str, str]) -> str:
        return (f"CAST({merged['sum']} AS DOUBLE) / "
                f"CAST(NULLIF({merged['count']}, 0) AS DOUBLE)")

    def finalize(self, merged: Mapping[str, Any], result_type: str) -> Any:
        n = merged["count"]
        if not n:
            return None
        return python_value(merged["sum"] / n, result_type)


class _Extreme(AggregateFunction):
    """MIN / MAX: the partial is the tile's extreme, merged by the same extreme."""

    op: ClassVar[Literal["min", "max"]]

    def sqlglot_class(self) -> type[exp.AggFunc]:
        from sqlglot import exp

        return exp.Min if self.op == "min" else exp.Max

    def partials(self, result_type: str) -> tuple[Partial, ...]:
        return (Partial(self.op, result_type, self.op, self.op),)

    def finalize_sql(self, dialect: str, merged: Mapping[str, str]) -> str:
        return merged[self.op]

    def finalize(self, merged: Mapping[str, Any], result_type: str) -> Any:
        return python_value(merged[self.op], result_type)


class Min(_Extreme):
    name = "min"
    sql_name = "MIN"
    op = "min"


class Max(_Extreme):
    name = "max"
    sql_name = "MAX"
    op = "max"


FUNCTIONS: dict[str, AggregateFunction] = {f.name: f for f in (Count(), Sum(), Avg(), Min(),
                                                               Max())}
"""Every aggregate function featql accepts, by IR name (the compiler refuses the others)."""


def _register() -> None:
    from featql.semantics.ranked import RANKED
    from featql.semantics.sketches import SKETCHES
    from featql.semantics.spread import SPREAD

    for fn in (*SPREAD, *RANKED, *SKETCHES):
        FUNCTIONS[fn.name] = fn


_register()


def function(name: str) -> AggregateFunction:
    return FUNCTIONS[name]


def for_aggregation(agg: Aggregation) -> AggregateFunction:
    """The function of an aggregation, bound to its constant arguments (LAST_N's n)."""
    return FUNCTIONS[agg.function].bind(agg.args)


def supported() -> str:
    """`COUNT, SUM, AVG, MIN, MAX`: the functions as users write them (for diagnostics)."""
    return ", ".join(f.sql_name for f in FUNCTIONS.values())


def tile_partials(agg: Aggregation) -> tuple[tuple[str, str], ...]:
    """(partial, featql type) pairs of one aggregation, in output order."""
    return tuple((p.name, p.type) for p in FUNCTIONS[agg.function].partials(agg.type))


def tile_columns(view: FeatureView) -> tuple[tuple[str, str], ...]:
    """(column, featql type) of every partial of an aggregate view, in the column contract's
    order (aggregations in declaration order, each one's partials in order)."""
    return tuple((partial_column(a.name, p), t) for a in view.aggregations
                 for p, t in tile_partials(a))


def partial_columns(view: FeatureView) -> tuple[str, ...]:
    """The names of `tile_columns`."""
    return tuple(c for c, _ in tile_columns(view))


ADDITIVE = frozenset(p.name for f in FUNCTIONS.values() for p in f.partials("DOUBLE")
                    if p.additive)
"""Partial names merged by addition. A partial name means one merge rule for every function
that has it (`count` is always a count, `sum` always a sum)."""


def is_additive(column: str) -> bool:
    """Is this partial column (`<aggregation>__<partial>`) merged by addition (NULL as 0)?"""
    _, sep, partial = column.rpartition("__")
    return bool(sep) and partial in ADDITIVE


class ListWindow:
    """A `Window` over plain Python columns (None = NULL), rows `[i, j)`."""

    def __init__(self, columns: Mapping[str, Sequence[Any]], i: int, j: int) -> None:
        self.columns, self.i, self.j = columns, i, j

    def total(self, column: str) -> int | float:
        return _sum([v for v in self.columns[column][self.i:self.j] if v is not None])

    def present(self, column: str) -> Sequence[Any]:
        return [v for v in self.columns[column][self.i:self.j] if v is not None]

    def column(self, column: str) -> Sequence[Any]:
        return self.columns[column][self.i:self.j]
