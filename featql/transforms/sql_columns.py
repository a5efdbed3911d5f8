"""SQL request transforms evaluated column-wise: one list comprehension per node over all rows.

`compile_columns(compiler, node)` turns a node the row compiler (`sql_eval._Compiler`) has
accepted into a function of a `Batch` (environment columns `{"request.amount": [...], ...}`
and a row count) returning the node's values, one per row. Leaves, arithmetic, comparisons and
the NULL-aware logic have column rules that compute, per row, what the row closure computes;
any other node runs its row closure per row (on environments made from the columns once).

Values are identical to the row closures' by construction. Errors are not necessarily raised
at the same row (a column rule evaluates a whole column before the next node, and evaluates
operands a row closure may skip), so a caller that gets an exception from a column function
evaluates the batch again row by row to raise the row closure's error (`CompiledSql.columns`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from featql.transforms.sql_semantics import _cmp_norm, _div, _int_result

if TYPE_CHECKING:
    from featql.transforms.sql_eval import _Compiler

Env = Mapping[str, Any]


class Batch:
    """Environment columns for `n` rows; `envs()` the per-row environments, made on demand."""

    __slots__ = ("_envs", "cols", "n")

    def __init__(self, cols: Mapping[str, Sequence[Any]], n: int):
        self.cols, self.n = cols, n
        self._envs: list[dict[str, Any]] | None = None

    def column(self, key: str) -> Sequence[Any]:
        col = self.cols.get(key)
        return [None] * self.n if col is None else col

    def envs(self) -> list[dict[str, Any]]:
        if self._envs is None:
            keys = list(self.cols)
            self._envs = ([dict(zip(keys, vals, strict=True))
                           for vals in zip(*self.cols.values(), strict=True)]
                          if keys else [{} for _ in range(self.n)])
        return self._envs


ColFn = Callable[[Batch], Sequence[Any]]

_Op = Callable[[Any, Any], Any]
_COMPARE: dict[type[exp.Expression], _Op] = {
    exp.EQ: operator.eq, exp.NEQ: operator.ne, exp.GT: operator.gt, exp.GTE: operator.ge,
    exp.LT: operator.lt, exp.LTE: operator.le}
_ARITH: dict[type[exp.Expression], tuple[_Op, str]] = {
    exp.Add: (operator.add, "addition"), exp.Sub: (operator.sub, "subtraction"),
    exp.Mul: (operator.mul, "multiplication")}


def compile_columns(c: _Compiler, node: exp.Expression) -> ColFn:
    """The column function of `node` (already compiled by `c` without error)."""
    kind = type(node)
    if kind is exp.Paren:
        return compile_columns(c, node.this)
    if kind is exp.Column:
        key = c.column_key(node)  # type: ignore[arg-type]  # kind is exp.Column
        return lambda b: b.column(key)
    if kind in (exp.Literal, exp.Null, exp.Boolean):
        value = _constant(node)
        return lambda b: [value] * b.n
    if kind in _ARITH:
        return _arith(c, node, *_ARITH[kind])
    if kind is exp.Div:
        fa, fb = compile_columns(c, node.this), compile_columns(c, node.expression)
        return lambda b: [None if x is None or y is None else _div(x, y)
                          for x, y in zip(fa(b), fb(b), strict=True)]
    if kind in _COMPARE:
        return _compare(c, node, _COMPARE[kind])
    if kind is exp.Nullif:
        return _nullif(c, node)
    if kind is exp.Not:
        f = compile_columns(c, node.this)
        return lambda b: [None if v is None else not v for v in f(b)]
    if kind is exp.Is and isinstance(node.expression, exp.Null):
        f = compile_columns(c, node.this)
        return lambda b: [v is None for v in f(b)]
    if kind in (exp.And, exp.Or):
        return _logic(c, node, kind is exp.And)
    row, _t = c.compile(node)
    return lambda b: [row(env) for env in b.envs()]


def _constant(node: exp.Expression) -> Any:
    """The value of a literal as `_Compiler._literal` (NULL, booleans) computes it."""
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    text = node.this
    if node.is_string:
        return text
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)


def _arith(c: _Compiler, node: exp.Expression, op: Callable[[Any, Any], Any],
           name: str) -> ColFn:
    fa, fb = compile_columns(c, node.this), compile_columns(c, node.expression)

    def arith(b: Batch) -> list[Any]:
        out: list[Any] = []
        for x, y in zip(fa(b), fb(b), strict=True):
            if x is None or y is None:
                out.append(None)
            elif isinstance(x, int) and isinstance(y, int):
                out.append(_int_result(op(x, y), name))
            else:
                out.append(op(float(x), float(y)))
        return out
    return arith


def _compare(c: _Compiler, node: exp.Expression, op: Callable[[Any, Any], bool]) -> ColFn:
    fa, fb = compile_columns(c, node.this), compile_columns(c, node.expression)
    f = float

    def cmp(b: Batch) -> list[Any]:
        # both floats: _cmp_norm would return them as they are
        return [None if x is None or y is None
                else op(x, y) if type(x) is f and type(y) is f else op(*_cmp_norm(x, y))
                for x, y in zip(fa(b), fb(b), strict=True)]
    return cmp


def _nullif(c: _Compiler, node: exp.Expression) -> ColFn:
    fa, fb = compile_columns(c, node.this), compile_columns(c, node.expression)

    def nullif(b: Batch) -> list[Any]:
        out: list[Any] = []
        for x, y in zip(fa(b), fb(b), strict=True):
            if x is None or y is None:
                out.append(x)
                continue
            p, q = _cmp_norm(x, y)
            out.append(None if p == q else x)
        return out
    return nullif


def _logic(c: _Compiler, node: exp.Expression, conj: bool) -> ColFn:
    """Three-valued AND (OR): False (True) wins, then NULL."""
    fa, fb = compile_columns(c, node.this), compile_columns(c, node.expression)
    win = not conj

    def logic(b: Batch) -> list[Any]:
        out: list[Any] = []
        for x, y in zip(fa(b), fb(b), strict=True):
            if x is win or y is win:
                out.append(win)
            else:
                out.append(None if x is None or y is None else not win)
        return out
    return logic
