"""SQL functions of request transforms (math, casts, strings), compiled to closures.

A mixin of the evaluator's compiler (`sql_eval._Compiler`): each `_<node>` method turns one
sqlglot function node into a closure and its coarse result type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from sqlglot import exp

from featql.transforms.sql_semantics import (
    BOOL,
    DBL,
    INT,
    NULL,
    NUM,
    STR,
    EvalError,
    TransformCompileError,
    _int_result,
    _like_regex,
    _lower,
    _round,
    _to_bool,
    _to_float,
    _to_int,
    _to_str,
    _upper,
    sql_type,
)

Env = Mapping[str, Any]
Fn = Callable[[Env], Any]


class _Functions:
    """Function nodes; `compile` and `fail` come from the compiler class."""

    def compile(self, node: exp.Expression) -> tuple[Fn, str]:
        raise NotImplementedError

    def fail(self, node: Any, why: str = "is not supported") -> TransformCompileError:
        raise NotImplementedError

    def _unify(self, node: Any, types: list[str]) -> str:
        real = {t for t in types if t != NULL}
        if not real:
            return NULL
        if real <= {INT, DBL}:
            return DBL if DBL in real else INT
        if len(real) == 1:
            return real.pop()
        raise self.fail(node, f"mixes {' and '.join(sorted(real))}")

    @staticmethod
    def _coerce(f: Fn, t: str) -> Fn:
        if t != DBL:
            return f

        def as_double(env: Env) -> Any:
            v = f(env)
            return float(v) if isinstance(v, int) else v
        return as_double

    # functions
    def _unary_math(self, node: exp.Func, fn: Callable[[float], float],
                    keep_int: bool = False) -> tuple[Fn, str]:
        f, t = self.compile(node.this)
        if t not in NUM:
            raise self.fail(node, f"needs a number, got {t}")
        out_t = t if keep_int else DBL

        def call(env: Env) -> Any:
            v = f(env)
            if v is None:
                return None
            if keep_int and isinstance(v, int):
                return v
            try:
                return fn(float(v))
            except ValueError:
                return math.nan
            except OverflowError:
                return math.inf
        return call, out_t

    def _abs(self, node: exp.Abs) -> tuple[Fn, str]:
        f, t = self.compile(node.this)
        if t not in NUM:
            raise self.fail(node, f"needs a number, got {t}")

        def abs_(env: Env) -> Any:
            v = f(env)
            if v is None:
                return None
            return _int_result(abs(v), "abs") if isinstance(v, int) else abs(v)
        return abs_, t

    def _sqrt(self, n: exp.Sqrt) -> tuple[Fn, str]:
        return self._unary_math(n, lambda x: math.sqrt(x) if x >= 0 else math.nan)

    def _ln(self, n: exp.Ln) -> tuple[Fn, str]:
        return self._unary_math(
            n, lambda x: math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan))

    def _exp(self, n: exp.Exp) -> tuple[Fn, str]:
        return self._unary_math(n, math.exp)

    def _floor(self, n: exp.Floor) -> tuple[Fn, str]:
        if n.args.get("decimals") is not None:
            raise self.fail(n, "(with decimals)")
        return self._unary_math(n, lambda x: float(math.floor(x)) if math.isfinite(x) else x)

    def _ceil(self, n: exp.Ceil) -> tuple[Fn, str]:
        if n.args.get("decimals") is not None:
            raise self.fail(n, "(with decimals)")
        return self._unary_math(n, lambda x: float(math.ceil(x)) if math.isfinite(x) else x)

    def _round(self, node: exp.Round) -> tuple[Fn, str]:
        f, t = self.compile(node.this)
        if t not in NUM:
            raise self.fail(node, f"needs a number, got {t}")
        dec = node.args.get("decimals")
        digits = 0
        if dec is not None:
            if not (isinstance(dec, exp.Literal) and re.fullmatch(r"-?\d+", dec.this)):
                raise self.fail(node, "(decimals must be an integer literal)")
            digits = int(dec.this)
        return (lambda env: None if (v := f(env)) is None else _round(v, digits)), t

    def _pow(self, node: exp.Pow) -> tuple[Fn, str]:
        fa, ta = self.compile(node.this)
        fb, tb = self.compile(node.expression)
        if ta not in NUM or tb not in NUM:
            raise self.fail(node, "needs numbers")

        def pow_(env: Env) -> Any:
            a, b = fa(env), fb(env)
            if a is None or b is None:
                return None
            try:
                return math.pow(float(a), float(b))
            except ZeroDivisionError:
                return math.inf
            except ValueError:
                return math.nan
            except OverflowError:
                return math.inf
        return pow_, DBL

    def _extreme(self, node: exp.Func, pick: Callable[..., Any]) -> tuple[Fn, str]:
        items = [self.compile(node.this), *(self.compile(e) for e in node.expressions)]
        t = self._unify(node, [ti for _f, ti in items])
        fns = [f for f, _t in items]

        def extreme(env: Env) -> Any:
            vals = [v for f in fns if (v := f(env)) is not None]
            return pick(vals) if vals else None
        return self._coerce(extreme, t), t

    def _least(self, n: exp.Least) -> tuple[Fn, str]:
        return self._extreme(n, min)

    def _greatest(self, n: exp.Greatest) -> tuple[Fn, str]:
        return self._extreme(n, max)

    def _cast(self, node: exp.Cast) -> tuple[Fn, str]:
        f, t = self.compile(node.this)
        target = sql_type(node.to.sql(dialect="duckdb"))
        conv: Callable[[Any], Any]
        if target == INT:
            conv = _to_int
        elif target == DBL:
            conv = _to_float
        elif target == BOOL:
            conv = _to_bool
        elif target == STR:
            if t == DBL:
                raise self.fail(node, "(DOUBLE to VARCHAR formats differ between engines)")
            conv = _to_str
        else:
            raise self.fail(node, f"(to {node.to.sql()})")
        return (lambda env: None if (v := f(env)) is None else conv(v)), target

    def _trycast(self, node: exp.TryCast) -> tuple[Fn, str]:
        f, t = self._cast(node)

        def try_(env: Env) -> Any:
            try:
                return f(env)
            except EvalError:
                return None
        return try_, t

    def _strings(self, node: exp.Expression, *args: exp.Expression | None) -> list[Fn]:
        out = []
        for a in args:
            if a is None:
                continue
            f, t = self.compile(a)
            if t not in (STR, NULL):
                raise self.fail(node, f"needs strings, got {t}")
            out.append(f)
        return out

    def _str_fn(self, node: exp.Expression, fn: Callable[..., Any], out_t: str,
                *args: exp.Expression | None) -> tuple[Fn, str]:
        fns = self._strings(node, *args)

        def call(env: Env) -> Any:
            vals = [f(env) for f in fns]
            return None if any(v is None for v in vals) else fn(*vals)
        return call, out_t

    def _lower(self, n: exp.Lower) -> tuple[Fn, str]:
        return self._str_fn(n, _lower, STR, n.this)

    def _upper(self, n: exp.Upper) -> tuple[Fn, str]:
        return self._str_fn(n, _upper, STR, n.this)

    def _length(self, n: exp.Length) -> tuple[Fn, str]:
        return self._str_fn(n, len, INT, n.this)

    def _trim(self, n: exp.Trim) -> tuple[Fn, str]:
        if n.expression is not None or n.args.get("position"):
            raise self.fail(n, "(only TRIM(s))")
        return self._str_fn(n, lambda s: s.strip(" "), STR, n.this)

    def _startswith(self, n: exp.StartsWith) -> tuple[Fn, str]:
        return self._str_fn(n, lambda s, p: s.startswith(p), BOOL, n.this, n.expression)

    def _contains(self, n: exp.Contains) -> tuple[Fn, str]:
        return self._str_fn(n, lambda s, p: p in s, BOOL, n.this, n.expression)

    def _replace(self, n: exp.Replace) -> tuple[Fn, str]:
        return self._str_fn(n, lambda s, a, b: s.replace(a, b) if a else s, STR,
                            n.this, n.expression, n.args.get("replacement"))

    def _dpipe(self, n: exp.DPipe) -> tuple[Fn, str]:
        return self._str_fn(n, lambda a, b: a + b, STR, n.this, n.expression)

    def _concat(self, node: exp.Concat) -> tuple[Fn, str]:
        fns = self._strings(node, *node.expressions)

        def concat(env: Env) -> str:
            return "".join(v for f in fns if (v := f(env)) is not None)
        return concat, STR

    def _like(self, node: exp.Like) -> tuple[Fn, str]:
        return self._like_impl(node, False)

    def _ilike(self, node: exp.ILike) -> tuple[Fn, str]:
        return self._like_impl(node, True)

    def _like_impl(self, node: exp.Expression, fold: bool) -> tuple[Fn, str]:
        pattern = node.expression
        if not (isinstance(pattern, exp.Literal) and pattern.is_string) or node.args.get("escape"):
            raise self.fail(node, "(the pattern must be a string literal without ESCAPE)")
        rx = _like_regex(_lower(pattern.this) if fold else pattern.this)
        (f,) = self._strings(node, node.this)

        def like(env: Env) -> Any:
            s = f(env)
            if s is None:
                return None
            return rx.fullmatch(_lower(s) if fold else s) is not None
        return like, BOOL
