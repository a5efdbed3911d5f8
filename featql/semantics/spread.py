"""STDDEV_SAMP, STDDEV_POP, VAR_SAMP, VAR_POP: numerically stable partials, Chan's merge.

A tile's partials are the count `n` of its non-NULL inputs, their `mean` and `m2`, the sum of
squared deviations from that mean (`VAR_POP(x) * COUNT(x)`: DuckDB and Spark compute VAR_POP with
a streaming, stable update; the stream head folds it in two passes with `math.fsum`). Never a
sum of squares: `sum(x²) - sum(x)²/n` loses every digit when the mean is large against the
spread.

Tiles merge left to right, in tile order, by Chan et al.'s pairwise rule; for a = (na, ma, Ma)
and b = (nb, mb, Mb) with nb > 0, d = mb - ma, n = na + nb:

    mean = ma + d * nb / n
    m2   = Ma + Mb + d * d * na * nb / n

(evaluated exactly in that order: `((d * d) * na) * nb / n`), starting from (0, 0, 0) and
skipping tiles with n = 0; when na = 0 the result is b itself (not `0 + (mb - 0) * nb / nb`,
which may round). DuckDB folds `list(...) OVER (frame)` with `list_reduce`, Spark folds
`collect_list(...) OVER (frame)` with `aggregate`, Python folds the window's tiles: the same IEEE
operations in the same order, so the three agree bit for bit on the same tiles. Finalize:
VAR_POP = m2 / n (n > 0), VAR_SAMP = m2 / (n - 1) (n > 1, else NULL, as the engines), STDDEV_*
= SQRT of those (correctly rounded everywhere). STDDEV and VARIANCE are the sample forms, as in
DuckDB and Spark.

Against a brute-force two-pass computation over the raw events the value differs only by
floating-point rounding (the engines' per-tile VAR_POP, the merge order): within a relative
1e-9 of the value (plus 1e-9 of the mean's magnitude squared for a near-zero spread) on the
oracle tests; documented in docs/language.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from featql.core.types import NUMERIC
from featql.semantics.aggregates import AggregateFunction, Partial, Window, partial_column

if TYPE_CHECKING:
    from sqlglot import exp


def chan(a: tuple[int, float, float], b: tuple[int, float, float]) -> tuple[int, float, float]:
    """Merge two (n, mean, m2) states, b with n > 0 (the SQL merges do the same operations)."""
    na, ma, qa = a
    nb, mb, qb = b
    if na == 0:
        return b
    n = na + nb
    return (n, ma + (mb - ma) * nb / n, qa + qb + (mb - ma) * (mb - ma) * na * nb / n)


_ZERO: tuple[int, float, float] = (0, 0.0, 0.0)


class _Spread(AggregateFunction):
    sample: ClassVar[bool]  # VAR_SAMP (n - 1) or VAR_POP (n)
    root: ClassVar[bool]  # STDDEV (sqrt) or VAR
    node: ClassVar[str]  # the sqlglot class name

    def sqlglot_class(self) -> type[exp.AggFunc]:
        from sqlglot import exp

        cls: type[exp.AggFunc] = getattr(exp, self.node)
        return cls

    def accepts(self, input_type: str | None) -> bool:
        return input_type in NUMERIC

    def result_type(self, input_type: str | None) -> str:
        return "DOUBLE"

    def input_cast(self, input_type: str | None) -> str | None:
        return "DOUBLE"

    def partials(self, result_type: str) -> tuple[Partial, ...]:
        return (Partial("count", "BIGINT", "count", "sum"),
                Partial("mean", "DOUBLE", "custom", "custom"),
                Partial("m2", "DOUBLE", "custom", "custom"))

    # -- the tile stage ----------------------------------------------------------------------
    def build(self, partial: Partial, arg: exp.Expr, time: exp.Expr | None = None) -> exp.Expr:
        from sqlglot import exp

        if partial.name == "mean":
            return exp.Avg(this=arg)
        if partial.name == "m2":
            return exp.Mul(this=exp.VariancePop(this=arg), expression=exp.Count(this=arg.copy()))
        return super().build(partial, arg, time)

    def partial_sql(self, dialect: str, partial: str, input_sql: str,
                    time_sql: str | None) -> str:
        if partial == "mean":
            return f"AVG({input_sql})"
        return f"VAR_POP({input_sql}) * COUNT({input_sql})"

    # -- merge and finalize in SQL -----------------------------------------------------------
    def merge_sql(self, dialect: str, columns: Mapping[str, str], frame: str) -> str:
        n, m, q = columns["count"], columns["mean"], columns["m2"]
        d = "(b.mean - a.mean)"
        total = "(a.n + b.n)"
        mean = f"a.mean + {d} * b.n / {total}"
        m2 = f"a.m2 + b.m2 + {d} * {d} * a.n * b.n / {total}"
        if dialect == "duckdb":
            tiles = (f"list_filter(list(struct_pack(n := {n}, mean := {m}, m2 := {q})) {frame}, "
                     "lambda s: s.n > 0)")
            zero = ("struct_pack(n := CAST(0 AS BIGINT), mean := CAST(0 AS DOUBLE), "
                    "m2 := CAST(0 AS DOUBLE))")
            step = (f"lambda a, b: CASE WHEN a.n = 0 THEN b ELSE struct_pack(n := a.n + b.n, "
                    f"mean := {mean}, m2 := {m2}) END")
            return (f"list_transform([list_reduce({tiles}, {step}, {zero})], "
                    f"lambda r: {self._final('r')})[1]")
        if dialect == "spark":
            tiles = (f"filter(collect_list(named_struct('n', {n}, 'mean', {m}, 'm2', {q})) "
                     f"{frame}, s -> s.n > 0)")
            zero = ("named_struct('n', CAST(0 AS BIGINT), 'mean', CAST(0 AS DOUBLE), "
                    "'m2', CAST(0 AS DOUBLE))")
            step = (f"(a, b) -> CASE WHEN a.n = 0 THEN b ELSE named_struct('n', a.n + b.n, "
                    f"'mean', {mean}, 'm2', {m2}) END")
            return f"aggregate({tiles}, {zero}, {step}, r -> {self._final('r')})"
        raise ValueError(f"unknown SQL dialect {dialect!r}")

    def _final(self, r: str) -> str:
        if self.sample:
            value = f"CASE WHEN {r}.n > 1 THEN {r}.m2 / ({r}.n - 1) END"
        else:
            value = f"CASE WHEN {r}.n > 0 THEN {r}.m2 / {r}.n END"
        return f"SQRT({value})" if self.root else value

    def finalize_sql(self, dialect: str, merged: Mapping[str, str]) -> str:
        raise NotImplementedError("merged by merge_sql")

    # -- Python ------------------------------------------------------------------------------
    def fold(self, values: Sequence[Any]) -> dict[str, Any]:
        present = [float(v) for v in values if v is not None]
        if not present:
            return {"count": 0, "mean": None, "m2": None}
        mean = math.fsum(present) / len(present)
        return {"count": len(present), "mean": mean,
                "m2": math.fsum((x - mean) * (x - mean) for x in present)}

    def merge(self, window: Window, aggregation: str) -> dict[str, Any]:
        ns = window.column(partial_column(aggregation, "count"))
        means = window.column(partial_column(aggregation, "mean"))
        m2s = window.column(partial_column(aggregation, "m2"))
        state = _ZERO
        for n, m, q in zip(ns, means, m2s, strict=True):
            if n:
                state = chan(state, (int(n), float(m), float(q)))
        return {"count": state[0], "mean": state[1] if state[0] else None,
                "m2": state[2] if state[0] else None}

    def finalize(self, merged: Mapping[str, Any], result_type: str) -> Any:
        n, m2 = merged["count"], merged["m2"]
        if not n or (self.sample and n < 2):
            return None
        value = m2 / (n - 1) if self.sample else m2 / n
        return math.sqrt(value) if self.root else value


class StddevSamp(_Spread):
    name = "stddev_samp"
    sql_name = "STDDEV_SAMP"
    sample, root, node = True, True, "StddevSamp"

    def sqlglot_classes(self) -> tuple[type[exp.AggFunc], ...]:
        """STDDEV is STDDEV_SAMP, as in DuckDB and Spark (VARIANCE and VAR_SAMP already parse
        to one node)."""
        from sqlglot import exp

        return (exp.StddevSamp, exp.Stddev)


class StddevPop(_Spread):
    name = "stddev_pop"
    sql_name = "STDDEV_POP"
    sample, root, node = False, True, "StddevPop"


class VarSamp(_Spread):
    name = "var_samp"
    sql_name = "VAR_SAMP"
    sample, root, node = True, False, "Variance"


class VarPop(_Spread):
    name = "var_pop"
    sql_name = "VAR_POP"
    sample, root, node = False, False, "VariancePop"


SPREAD: tuple[AggregateFunction, ...] = (StddevSamp(), StddevPop(), VarSamp(), VarPop())
