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

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp, parse_one
from sqlglot.errors import ParseError

from featql.transforms.sql_columns import Batch, ColFn, compile_columns
from featql.transforms.sql_functions import _Functions
from featql.transforms.sql_semantics import (
    BOOL,
    DBL,
    INT,
    NULL,
    NUM,
    STR,
    EvalError,
    TransformCompileError,
    _cmp_norm,
    _div,
    _int_result,
    _intdiv,
    _mod,
    sql_type,
)

__all__ = ["DBL", "SUPPORTED_CONSTRUCTS", "SUPPORTED_FUNCTIONS", "CompiledSql", "EvalError",
           "TransformCompileError", "UnsupportedSql", "check_sql_transform",
           "compile_sql_transform", "sql_type"]

Env = Mapping[str, Any]
Fn = Callable[[Env], Any]


@dataclass(frozen=True)
class CompiledSql:
    outputs: tuple[tuple[str, Fn, str], ...]  # (name, closure, inferred type)
    references: tuple[str, ...]  # environment keys read
    column_fns: tuple[ColFn, ...] = ()  # per output: its values over a Batch (sql_columns)

    def evaluate(self, env: Env) -> dict[str, Any]:
        return {name: fn(env) for name, fn, _t in self.outputs}

    def columns(self, batch: Batch) -> list[Sequence[Any]]:
        """Each output's values over the rows of `batch`, as `evaluate` computes them row by
        row. An error may come from another row than `evaluate`'s first failing one (see
        `sql_columns`): evaluate row by row to raise that one."""
        return [f(batch) for f in self.column_fns]


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
    column_fns = tuple(compile_columns(c, item.this if isinstance(item, exp.Alias) else item)
                       for item in tree.expressions)
    return CompiledSql(tuple(outputs), tuple(sorted(c.refs)), column_fns)


class UnsupportedSql(TransformCompileError):
    """The evaluator refuses `node`: it has no rule for it (`supported` False), or the rule
    refuses this use of it (`why`: "needs a number, got VARCHAR", ...)."""

    def __init__(self, node: exp.Expression, why: str, supported: bool):
        super().__init__(f"{type(node).__name__} ({node.sql(dialect='duckdb')[:60]}) {why} in "
                         "request transforms")
        self.node = node
        self.why = why
        self.supported = supported


def check_sql_transform(tree: exp.Select, types: Mapping[str, str],
                        limit: int = 20) -> list[TransformCompileError]:
    """Every refusal the evaluator would raise compiling `tree` (a parsed transform, whose
    nodes keep their positions), each mistake once: a refused node is left out (as NULL) and
    the rest compiled again. Empty: `compile_sql_transform` accepts the transform."""
    errors: list[TransformCompileError] = []
    skip: set[int] = set()
    while len(errors) < limit:
        c = _Compiler({k.lower(): sql_type(v) for k, v in types.items()}, skip)
        try:
            for item in tree.expressions:
                c.compile(item.this if isinstance(item, exp.Alias) else item)
        except UnsupportedSql as e:
            errors.append(e)
            if id(e.node) in skip:  # pragma: no cover - a refusal of a node left out
                break
            skip.add(id(e.node))
            continue
        except TransformCompileError as e:  # not about one node (an unknown column)
            errors.append(e)
        break
    return errors


# -- the compiler ------------------------------------------------------------------------------
class _Compiler(_Functions):
    def __init__(self, types: dict[str, str], skip: set[int] | None = None):
        self.types = types
        self.refs: set[str] = set()
        self.skip = skip or set()  # ids of nodes compiled as NULL (`check_sql_transform`)

    def fail(self, node: Any, why: str = "is not supported") -> TransformCompileError:
        return UnsupportedSql(node, why, supported=True)

    def compile(self, node: exp.Expression) -> tuple[Fn, str]:
        if id(node) in self.skip:
            return (lambda env: None), NULL
        method = getattr(self, "_" + type(node).__name__.lower(), None)
        if method is None:
            raise UnsupportedSql(node, "is not supported", supported=False)
        fn, t = method(node)
        return fn, t

    # leaves
    def column_key(self, node: exp.Column) -> str:
        """The environment key a column reads ("request.amount", "view.feature")."""
        table, name = node.table.lower(), node.name.lower()
        key = f"{table}.{name}" if table else self._resolve(name, node)
        if key not in self.types:
            raise TransformCompileError(f"unknown column {node.sql()} in request transform")
        return key

    def _column(self, node: exp.Column) -> tuple[Fn, str]:
        key = self.column_key(node)
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
            if t not in NUM:
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
        if t not in NUM:
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


# -- the supported subset ----------------------------------------------------------------------
def _node_types() -> dict[str, type[exp.Expression]]:
    return {c.__name__.lower(): c for c in vars(exp).values()
            if isinstance(c, type) and issubclass(c, exp.Expression)}


_RULES = [cls for name, cls in _node_types().items() if callable(getattr(_Compiler, f"_{name}",
                                                                        None))]
_NOT_CALLS = (exp.And, exp.Or, exp.Case)  # sqlglot functions that are syntax


def _function_names(classes: list[type[exp.Expression]]) -> frozenset[str]:
    """The names (DuckDB's spellings included) a function of `classes` is called by."""
    from sqlglot.dialects.duckdb import DuckDB

    calls = tuple(c for c in classes if issubclass(c, exp.Func) and not issubclass(c, _NOT_CALLS))
    names = {n.upper() for c in calls for n in c.sql_names()}
    names |= {n.upper() for n, build in DuckDB.Parser.FUNCTIONS.items()
              if getattr(build, "__self__", None) in calls}
    return frozenset(names)


SUPPORTED_FUNCTIONS: frozenset[str] = _function_names(_RULES)
"""Functions a SQL request transform may call (as written: ABS, CEIL, CEILING, ...)."""
SUPPORTED_CONSTRUCTS: frozenset[str] = frozenset(
    c.__name__ for c in _RULES if not issubclass(c, exp.Func) or issubclass(c, _NOT_CALLS))
"""The other node types the evaluator has a rule for (sqlglot names: Add, Case, Column, ...)."""
