"""SQL request transforms compiled once into Python closures (no SQL engine per request).

`compile_sql_transform(sql, types)` parses the transform's SELECT with sqlglot (DuckDB dialect),
infers a coarse type per node, and returns one closure per output column. Each closure maps an
environment `{"request.amount": 12.5, "user_txn_aggs.amount_avg_7d": 3.0, ...}` to a value with
DuckDB's semantics: NULL propagation, three-valued AND/OR/NOT, `x / 0` = ±inf (NaN for 0/0),
`//` and `%` by an integer zero raise (DuckDB raises too), BIGINT overflow raises, integer and
double compare as doubles, ROUND half away from zero. Decimal literals (`1.5`) are DOUBLE here
(DuckDB types them DECIMAL; results agree up to double rounding). Anything else is a compile-time
`TransformCompileError` naming the construct.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp, parse_one
from sqlglot.errors import ParseError

Env = Mapping[str, Any]
Fn = Callable[[Env], Any]

INT, DBL, STR, BOOL, NULL, TS = "BIGINT", "DOUBLE", "VARCHAR", "BOOLEAN", "NULL", "TIMESTAMP"
_NUM = (INT, DBL, NULL)
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


class TransformCompileError(Exception):
    """The transform uses SQL the serving evaluator does not support (or mistypes it)."""


class EvalError(Exception):
    """A value-dependent SQL error at run time (overflow, integer division by zero, bad cast)."""


def sql_type(t: str) -> str:
    """Coarse evaluator type of a manifest type name."""
    t = t.upper()
    if t in ("BIGINT", "INT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT"):
        return INT
    if t in ("DOUBLE", "FLOAT", "REAL", "DECIMAL"):
        return DBL
    if t in ("STRING", "VARCHAR", "TEXT"):
        return STR
    if t == "BOOLEAN":
        return BOOL
    return TS


@dataclass(frozen=True)
class CompiledSql:
    outputs: tuple[tuple[str, Fn, str], ...]  # (name, closure, inferred type)
    references: tuple[str, ...]  # environment keys read

    def evaluate(self, env: Env) -> dict[str, Any]:
        return {name: fn(env) for name, fn, _t in self.outputs}


def compile_sql_transform(sql: str, types: Mapping[str, str]) -> CompiledSql:
    """Compile `SELECT expr AS name, ...`; `types` maps "table.column" to manifest types."""
    try:
        tree = parse_one(sql, read="duckdb")
    except ParseError as e:
        raise TransformCompileError(f"cannot parse transform SQL: {e}") from e
    if not isinstance(tree, exp.Select) or tree.args.get("from_") or tree.args.get("from"):
        raise TransformCompileError("a SQL request transform is one SELECT list without FROM")
    c = _Compiler({k.lower(): sql_type(v) for k, v in types.items()})
    outputs = []
    for item in tree.expressions:
        name = item.alias_or_name.lower()
        node = item.this if isinstance(item, exp.Alias) else item
        fn, t = c.compile(node)
        outputs.append((name, fn, t))
    return CompiledSql(tuple(outputs), tuple(sorted(c.refs)))


# -- runtime helpers ---------------------------------------------------------------------------
def _int_result(v: int, op: str) -> int:
    if v < _I64_MIN or v > _I64_MAX:
        raise EvalError(f"Out of Range Error: overflow in {op} of BIGINT")
    return v


def _div(a: Any, b: Any) -> float:
    a, b = float(a), float(b)
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _intdiv(a: Any, b: Any) -> Any:
    if b == 0:
        raise EvalError("Division by zero in expression (//)")
    if isinstance(a, int) and isinstance(b, int):
        q = abs(a) // abs(b)
        return _int_result(q if (a >= 0) == (b >= 0) else -q, "division")
    return float(a) / float(b)  # DuckDB's // on doubles is plain division


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        if b == 0:
            raise EvalError("Division by zero in expression (%)")
        r = abs(a) % abs(b)
        return r if a >= 0 else -r
    if float(b) == 0:
        return math.nan
    return math.fmod(float(a), float(b))


def _cmp_norm(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, float) != isinstance(b, float) and not isinstance(a, str | bool):
        return float(a), float(b)
    return a, b


def _round(x: Any, digits: int) -> Any:
    if isinstance(x, int):
        if digits >= 0:
            return x
        m = 10 ** (-digits)
        q = (abs(x) + m // 2) // m * m
        return _int_result(q if x >= 0 else -q, "round")
    if math.isnan(x) or math.isinf(x):
        return x
    if digits == 0:
        return _round_half_away(x)
    if abs(x) >= 2.0**52:
        return x
    # DuckDB rounds the exact binary value (2.675 is 2.67499999... -> 2.67)
    with decimal.localcontext() as ctx:
        ctx.prec = 800
        q = decimal.Decimal(x).quantize(decimal.Decimal(1).scaleb(-digits),
                                        rounding=decimal.ROUND_HALF_UP)
    return math.copysign(float(q), x) if q == 0 else float(q)


def _round_half_away(v: float) -> float:
    """C's round(): half away from zero, exact for every double."""
    if not math.isfinite(v) or abs(v) >= 2.0**52:
        return v
    a = abs(v)
    r = math.floor(a)
    if a - r >= 0.5:
        r += 1
    return math.copysign(float(r), v)


def _to_int(v: Any) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):
        if not (math.isfinite(v) and -9.223372036854776e18 <= v < 9.223372036854776e18):
            raise EvalError(f"Conversion Error: DOUBLE {v} out of range for BIGINT")
        return round(v)  # DuckDB casts DOUBLE to BIGINT rounding half to even
    if isinstance(v, str):
        try:
            return _to_int(float(v.strip())) if re.search(r"[.eE]", v) else _int_result(
                int(v.strip()), "cast")
        except ValueError as e:
            raise EvalError(f"Conversion Error: could not convert string '{v}' to BIGINT") from e
    return _int_result(int(v), "cast")


def _to_float(v: Any) -> float:
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError as e:
            raise EvalError(f"Conversion Error: could not convert string '{v}' to DOUBLE") from e
    return float(v)


def _to_bool(v: Any) -> bool:
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("true", "t", "1", "yes", "y"):
            return True
        if s in ("false", "f", "0", "no", "n"):
            return False
        raise EvalError(f"Conversion Error: could not convert string '{v}' to BOOLEAN")
    return bool(v)


def _to_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _upper(s: str) -> str:
    return "".join("ẞ" if ch == "ß" else (u if len(u := ch.upper()) == 1 else ch) for ch in s)


def _lower(s: str) -> str:
    return "".join(lo if len(lo := ch.lower()) == 1 else ch for ch in s)


def _like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


# -- the compiler ------------------------------------------------------------------------------
class _Compiler:
    def __init__(self, types: dict[str, str]):
        self.types = types
        self.refs: set[str] = set()

    def fail(self, node: Any, why: str = "is not supported") -> TransformCompileError:
        return TransformCompileError(
            f"{type(node).__name__} ({node.sql(dialect='duckdb')[:60]}) {why} in request "
            "transforms")

    def compile(self, node: exp.Expression) -> tuple[Fn, str]:
        method = getattr(self, "_" + type(node).__name__.lower(), None)
        if method is None:
            raise self.fail(node)
        fn, t = method(node)
        return fn, t

    # leaves
    def _column(self, node: exp.Column) -> tuple[Fn, str]:
        table, name = node.table.lower(), node.name.lower()
        key = f"{table}.{name}" if table else self._resolve(name, node)
        if key not in self.types:
            raise TransformCompileError(f"unknown column {node.sql()} in request transform")
        self.refs.add(key)
        return (lambda env: env.get(key)), self.types[key]

    def _resolve(self, name: str, node: exp.Expression) -> str:
        hits = [k for k in self.types if k.split(".", 1)[1] == name]
        if len(hits) != 1:
            raise TransformCompileError(
                f"column {name} is {'ambiguous' if hits else 'unknown'}: qualify it "
                "(request.x or view.feature)")
        return hits[0]

    def _literal(self, node: exp.Literal) -> tuple[Fn, str]:
        text = node.this
        if node.is_string:
            value: Any = text
            t = STR
        elif re.fullmatch(r"[+-]?\d+", text):
            value, t = int(text), INT
        else:
            value, t = float(text), DBL
        return (lambda env: value), t

    def _null(self, node: exp.Null) -> tuple[Fn, str]:
        return (lambda env: None), NULL

    def _boolean(self, node: exp.Boolean) -> tuple[Fn, str]:
        value = bool(node.this)
        return (lambda env: value), BOOL

    def _paren(self, node: exp.Paren) -> tuple[Fn, str]:
        return self.compile(node.this)

    # arithmetic
    def _arith(self, node: exp.Binary, op: str) -> tuple[Fn, str]:
        fa, ta = self.compile(node.this)
        fb, tb = self.compile(node.expression)
        for t in (ta, tb):
            if t not in _NUM:
                raise self.fail(node, f"needs numbers, got {t}")
        t = DBL if DBL in (ta, tb) or op == "/" else INT if INT in (ta, tb) else NULL
        if op == "/":
            def div(env: Env) -> Any:
                a, b = fa(env), fb(env)
                return None if a is None or b is None else _div(a, b)
            return div, DBL
        if op == "//":
            def idiv(env: Env) -> Any:
                a, b = fa(env), fb(env)
                return None if a is None or b is None else _intdiv(a, b)
            return idiv, t
        if op == "%":
            def mod(env: Env) -> Any:
                a, b = fa(env), fb(env)
                return None if a is None or b is None else _mod(a, b)
            return mod, t
        py = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}[op]
        name = {"+": "addition", "-": "subtraction", "*": "multiplication"}[op]

        def arith(env: Env) -> Any:
            a, b = fa(env), fb(env)
            if a is None or b is None:
                return None
            if isinstance(a, int) and isinstance(b, int):
                return _int_result(py(a, b), name)
            return py(float(a), float(b))
        return arith, t

    def _add(self, n: exp.Add) -> tuple[Fn, str]:
        return self._arith(n, "+")

    def _sub(self, n: exp.Sub) -> tuple[Fn, str]:
        return self._arith(n, "-")

    def _mul(self, n: exp.Mul) -> tuple[Fn, str]:
        return self._arith(n, "*")

    def _div(self, n: exp.Div) -> tuple[Fn, str]:
        return self._arith(n, "/")

    def _intdiv(self, n: exp.IntDiv) -> tuple[Fn, str]:
        return self._arith(n, "//")

    def _mod(self, n: exp.Mod) -> tuple[Fn, str]:
        return self._arith(n, "%")

    def _neg(self, node: exp.Neg) -> tuple[Fn, str]:
        f, t = self.compile(node.this)
        if t not in _NUM:
            raise self.fail(node, f"needs a number, got {t}")

        def neg(env: Env) -> Any:
            v = f(env)
            if v is None:
                return None
            return _int_result(-v, "negation") if isinstance(v, int) else -v
        return neg, t

    # comparisons and logic
    def _compare(self, node: exp.Binary, op: Callable[[Any, Any], bool]) -> tuple[Fn, str]:
        fa, ta = self.compile(node.this)
        fb, tb = self.compile(node.expression)
        self._comparable(node, ta, tb)

        def cmp(env: Env) -> Any:
            a, b = fa(env), fb(env)
            if a is None or b is None:
                return None
            return op(*_cmp_norm(a, b))
        return cmp, BOOL

    def _comparable(self, node: Any, *ts: str) -> None:
        kinds = {"num" if t in (INT, DBL) else t for t in ts if t != NULL}
        if len(kinds) > 1:
            raise self.fail(node, f"compares {' and '.join(sorted(kinds))}")

    def _eq(self, n: exp.EQ) -> tuple[Fn, str]:
        return self._compare(n, lambda a, b: a == b)

    def _neq(self, n: exp.NEQ) -> tuple[Fn, str]:
        return self._compare(n, lambda a, b: a != b)

    def _gt(self, n: exp.GT) -> tuple[Fn, str]:
        return self._compare(n, lambda a, b: a > b)

    def _gte(self, n: exp.GTE) -> tuple[Fn, str]:
        return self._compare(n, lambda a, b: a >= b)

    def _lt(self, n: exp.LT) -> tuple[Fn, str]:
        return self._compare(n, lambda a, b: a < b)

    def _lte(self, n: exp.LTE) -> tuple[Fn, str]:
        return self._compare(n, lambda a, b: a <= b)

    def _nullsafeeq(self, node: exp.NullSafeEQ) -> tuple[Fn, str]:
        fa, ta = self.compile(node.this)
        fb, tb = self.compile(node.expression)
        self._comparable(node, ta, tb)

        def eq(env: Env) -> bool:
            a, b = fa(env), fb(env)
            if a is None or b is None:
                return a is None and b is None
            x, y = _cmp_norm(a, b)
            return bool(x == y)
        return eq, BOOL

    def _nullsafeneq(self, node: exp.NullSafeNEQ) -> tuple[Fn, str]:
        f, _ = self._nullsafeeq(node)  # type: ignore[arg-type]
        return (lambda env: not f(env)), BOOL

    def _and(self, node: exp.And) -> tuple[Fn, str]:
        fa, _ = self.compile(node.this)
        fb, _ = self.compile(node.expression)

        def and_(env: Env) -> Any:
            a = fa(env)
            if a is False:
                return False
            b = fb(env)
            if b is False:
                return False
            return None if a is None or b is None else True
        return and_, BOOL

    def _or(self, node: exp.Or) -> tuple[Fn, str]:
        fa, _ = self.compile(node.this)
        fb, _ = self.compile(node.expression)

        def or_(env: Env) -> Any:
            a = fa(env)
            if a is True:
                return True
            b = fb(env)
            if b is True:
                return True
            return None if a is None or b is None else False
        return or_, BOOL

    def _not(self, node: exp.Not) -> tuple[Fn, str]:
        f, _ = self.compile(node.this)

        def not_(env: Env) -> Any:
            v = f(env)
            return None if v is None else not v
        return not_, BOOL

    def _is(self, node: exp.Is) -> tuple[Fn, str]:
        f, _ = self.compile(node.this)
        target = node.expression
        if isinstance(target, exp.Null):
            return (lambda env: f(env) is None), BOOL
        if isinstance(target, exp.Boolean):
            want = bool(target.this)
            return (lambda env: f(env) is want), BOOL
        raise self.fail(node)

    def _between(self, node: exp.Between) -> tuple[Fn, str]:
        fx, tx = self.compile(node.this)
        flo, tlo = self.compile(node.args["low"])
        fhi, thi = self.compile(node.args["high"])
        self._comparable(node, tx, tlo, thi)

        def between(env: Env) -> Any:
            x, lo, hi = fx(env), flo(env), fhi(env)
            a = None if x is None or lo is None else (lambda p, q: p >= q)(*_cmp_norm(x, lo))
            b = None if x is None or hi is None else (lambda p, q: p <= q)(*_cmp_norm(x, hi))
            if a is False or b is False:
                return False
            return None if a is None or b is None else True
        return between, BOOL

    def _in(self, node: exp.In) -> tuple[Fn, str]:
        if node.args.get("query") or node.args.get("unnest"):
            raise self.fail(node, "(a subquery)")
        fx, tx = self.compile(node.this)
        items = [self.compile(e) for e in node.expressions]
        self._comparable(node, tx, *(t for _f, t in items))
        fns = [f for f, _t in items]

        def in_(env: Env) -> Any:
            x = fx(env)
            if x is None:
                return None
            saw_null = False
            for f in fns:
                v = f(env)
                if v is None:
                    saw_null = True
                    continue
                a, b = _cmp_norm(x, v)
                if a == b:
                    return True
            return None if saw_null else False
        return in_, BOOL

    # conditionals
    def _case(self, node: exp.Case) -> tuple[Fn, str]:
        subject = self.compile(node.this) if node.this is not None else None
        branches = []
        types = []
        for when in node.args.get("ifs") or []:
            fc, _ = self.compile(when.this)
            fv, tv = self.compile(when.args["true"])
            branches.append((fc, fv))
            types.append(tv)
        default = node.args.get("default")
        fd, td = self.compile(default) if default is not None else ((lambda env: None), NULL)
        types.append(td)
        t = self._unify(node, types)
        fs = subject[0] if subject else None

        def case(env: Env) -> Any:
            s = fs(env) if fs is not None else None
            for fc, fv in branches:
                c = fc(env)
                if fs is not None:
                    if s is None or c is None:
                        continue
                    a, b = _cmp_norm(s, c)
                    if a == b:
                        return fv(env)
                elif c is True:
                    return fv(env)
            return fd(env)
        return self._coerce(case, t), t

    def _if(self, node: exp.If) -> tuple[Fn, str]:
        fc, _ = self.compile(node.this)
        fa, ta = self.compile(node.args["true"])
        fb_node = node.args.get("false")
        fb, tb = self.compile(fb_node) if fb_node is not None else ((lambda env: None), NULL)
        t = self._unify(node, [ta, tb])
        return self._coerce(lambda env: fa(env) if fc(env) is True else fb(env), t), t

    def _coalesce(self, node: exp.Coalesce) -> tuple[Fn, str]:
        items = [self.compile(node.this), *(self.compile(e) for e in node.expressions)]
        t = self._unify(node, [ti for _f, ti in items])
        fns = [f for f, _t in items]

        def coalesce(env: Env) -> Any:
            for f in fns:
                v = f(env)
                if v is not None:
                    return v
            return None
        return self._coerce(coalesce, t), t

    def _nullif(self, node: exp.Nullif) -> tuple[Fn, str]:
        fa, ta = self.compile(node.this)
        fb, tb = self.compile(node.expression)
        self._comparable(node, ta, tb)

        def nullif(env: Env) -> Any:
            a = fa(env)
            if a is None:
                return None
            b = fb(env)
            if b is None:
                return a
            x, y = _cmp_norm(a, b)
            return None if x == y else a
        return nullif, ta

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
        if t not in _NUM:
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
        if t not in _NUM:
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
        if t not in _NUM:
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
        if ta not in _NUM or tb not in _NUM:
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
