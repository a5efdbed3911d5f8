"""A view's query over a push's events: on DuckDB, or read straight off the events' table.

The push path (`featql.jobs.ingest`) runs each online view's lowered SQL over the few events of
a call. Many views are *plain projections* of their source: every output is one of the
source's columns, renamed or not, or a typed NULL (`CAST(NULL AS T)`, the contract's missing
`_featql_created`), with no WHERE, join, grouping, DISTINCT, ORDER or LIMIT at any stage. Such
a query returns, row for row and in order, the source's own values: `plain_projection` finds
that on the SQL's tree, and `plain_rows` then takes the values from the Arrow table of the
events, without registering it in DuckDB or running a statement (the two cost ~2 ms of a
10-event push's ~10 ms, `bench/stream_bench.py`).

The values are DuckDB's by construction: a column passed through unchanged is the value the
engine would return for it, and only Arrow types whose `to_pylist` gives exactly what DuckDB's
`fetchall` gives are read this way (integers, floats, strings, booleans, timestamps without
a time zone in s/ms/µs, dates, binaries); any other type, any computed output the caller
needs, and any query shape not listed above runs on DuckDB as before (`run_query`).
`tests/ingest/test_plain_projection.py` compares both paths on random events with NULLs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlglot import exp

if TYPE_CHECKING:
    import pyarrow as pa

    from featql.engines.duckdb import DuckDBEngine

NULL = ""  # the origin of an output that is a typed NULL
OTHER = "\0"  # the origin of an output computed by an expression (not read off the events)
# the Select arguments a plain projection may have (any other set: not plain)
_ALLOWED = frozenset({"expressions", "from_", "with_", "where"})
_FLIP = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_OPS: dict[type[exp.Expression], str] = {exp.EQ: "=", exp.NEQ: "<>", exp.LT: "<",
                                         exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
# a condition: ("and"|"or", a, b) | ("not", a) | ("null", column)
#              | ("cmp", op, column, literal text, literal is a string)
Cond = tuple[Any, ...]


class _NotPlain(Exception):
    """A condition this module does not evaluate over these events' types."""


@dataclass(frozen=True)
class Rows:
    """A query's result as Python values per column (what `pa.Table.to_pylist` gives)."""

    names: list[str]
    columns: list[list[Any]]
    num_rows: int

    def column(self, name: str) -> list[Any]:
        return self.columns[self.names.index(name)]


@dataclass(frozen=True)
class Projection:
    """A plain projection's outputs, in order: (name, the source column it reads, or NULL, or
    OTHER), and the conditions a source row must meet (all of them) to be a row of it."""

    outputs: tuple[tuple[str, str], ...]
    where: tuple[Cond, ...] = ()


def plain_projection(sql: str, source: str, columns: Mapping[str, str]) -> Projection | None:
    """The outputs of `sql` (DuckDB) when it is a plain projection of the table `source`,
    whose columns are `columns` (name: declared type; see the module doc); None for any
    other query. A CAST of a source column to its own declared type is the column."""
    import sqlglot

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return None
    if not isinstance(tree, exp.Select):
        return None
    relations: dict[str, tuple[list[tuple[str, str]], tuple[Cond, ...]]] = {
        source.lower(): ([(c, c) for c in columns], ())}
    types = {c.lower(): _type(t) for c, t in columns.items()}
    with_ = tree.args.get("with_")
    if with_ is not None:
        if with_.args.get("recursive"):
            return None
        for cte in with_.expressions:
            body = _select_outputs(cte.this, relations, types)
            if body is None or not cte.alias or cte.alias.lower() in relations:
                return None
            relations[cte.alias.lower()] = body
    outputs = _select_outputs(tree, relations, types, top=True)
    return None if outputs is None else Projection(tuple(outputs[0]), outputs[1])


def _select_outputs(select: exp.Expression,
                    relations: dict[str, tuple[list[tuple[str, str]], tuple[Cond, ...]]],
                    types: Mapping[str, str | None], top: bool = False
                    ) -> tuple[list[tuple[str, str]], tuple[Cond, ...]] | None:
    """One SELECT's outputs over the relation it reads, or None when it is not plain."""
    if not isinstance(select, exp.Select):
        return None
    used = {k for k, v in select.args.items() if v not in (None, [], False)}
    if used - _ALLOWED or ("with_" in used and not top):
        return None
    from_ = select.args.get("from_")
    table = from_.this if from_ is not None else None
    if not isinstance(table, exp.Table) or table.args.get("db") or table.args.get("catalog") \
            or not isinstance(table.this, exp.Identifier):
        return None
    got = relations.get(table.name.lower())
    if got is None:
        return None
    rel, conds = got
    qualifiers = {table.name.lower(), *([table.alias.lower()] if table.alias else [])}
    by_name: dict[str, str] = {}
    for name, origin in rel:
        if name.lower() in by_name:
            return None  # an ambiguous name: leave it to the engine
        by_name[name.lower()] = origin
    out: list[tuple[str, str]] = []
    for e in select.expressions:
        if isinstance(e, exp.Star):
            out.extend(rel)
            continue
        name = e.alias_or_name
        inner = e.this if isinstance(e, exp.Alias) else e
        if not name:
            return None
        inner = _uncast(inner, by_name, types)
        if isinstance(inner, exp.Column):
            if (inner.table and inner.table.lower() not in qualifiers) or inner.args.get("db"):
                return None
            found = by_name.get(inner.name.lower())
            if found is None or not isinstance(inner.this, exp.Identifier):
                return None
            out.append((name, found))
        elif isinstance(inner, exp.Cast) and isinstance(inner.this, exp.Null):
            out.append((name, NULL))
        else:
            out.append((name, OTHER))
    if len({n.lower() for n, _ in out}) != len(out):
        return None
    where = select.args.get("where")
    if where is not None:
        cond = _condition(where.this, by_name, qualifiers)
        if cond is None:
            return None
        conds = (*conds, cond)
    return out, conds


def _uncast(e: exp.Expression, by_name: dict[str, str], types: Mapping[str, str | None]
            ) -> exp.Expression:
    """`CAST(column AS its declared type)`, nested or not, as the column; else `e`."""
    while type(e) is exp.Cast:
        col = _uncast(e.this, by_name, types)
        if not isinstance(col, exp.Column):
            return e
        origin = by_name.get(col.name.lower())
        declared = types.get(origin.lower()) if origin not in (None, NULL, OTHER) else None
        if declared is None or _type(e.to) != declared:
            return e  # a real conversion: computed
        e = col
    return e


def _type(t: Any) -> str | None:
    """A type's DuckDB spelling (`STRING` and `VARCHAR` alike), for comparing two types."""
    try:
        built = t if isinstance(t, exp.DataType) else exp.DataType.build(str(t), dialect="duckdb")
        return built.sql("duckdb")
    except Exception:  # a type sqlglot does not know: never equal to anything
        return None


def _condition(e: exp.Expression, by_name: dict[str, str], qualifiers: set[str]
               ) -> Cond | None:
    """A WHERE condition over the relation's columns, in terms of source columns, or None when
    it is not one this module evaluates (see the module doc)."""
    if isinstance(e, exp.Paren):
        return _condition(e.this, by_name, qualifiers)
    if isinstance(e, exp.And | exp.Or):
        a = _condition(e.this, by_name, qualifiers)
        b = _condition(e.expression, by_name, qualifiers)
        return None if a is None or b is None else \
            ("and" if isinstance(e, exp.And) else "or", a, b)
    if isinstance(e, exp.Not):
        a = _condition(e.this, by_name, qualifiers)
        return None if a is None else ("not", a)
    if isinstance(e, exp.Is) and isinstance(e.expression, exp.Null):
        col = _source_column(e.this, by_name, qualifiers)
        return None if col is None else ("null", col)
    op = _OPS.get(type(e))
    if op is None:
        return None
    left, right = e.this, e.expression
    if not isinstance(left, exp.Column):  # literal OP column: column (flipped OP) literal
        left, right, op = right, left, _FLIP[op]
    col = _source_column(left, by_name, qualifiers)
    lit = _literal(right)
    return None if col is None or lit is None else ("cmp", op, col, *lit)


def _source_column(e: exp.Expression, by_name: dict[str, str], qualifiers: set[str]
                   ) -> str | None:
    if not isinstance(e, exp.Column) or not isinstance(e.this, exp.Identifier) \
            or (e.table and e.table.lower() not in qualifiers) or e.args.get("db"):
        return None
    origin = by_name.get(e.name.lower())
    return None if origin in (None, NULL, OTHER) else origin


def _literal(e: exp.Expression) -> tuple[str, bool] | None:
    """(text, is a string) of a string or a plain decimal number literal (sign included)."""
    sign = ""
    if isinstance(e, exp.Neg):
        sign, e = "-", e.this
    if not isinstance(e, exp.Literal):
        return None
    text = str(e.this)
    if e.is_string:
        return None if sign else (text, True)
    if not text or any(ch not in "0123456789." for ch in text) or text.count(".") > 1 \
            or text == ".":
        return None  # scientific notation, hex...: left to the engine
    return sign + text, False


_COMPARE: dict[str, Any] = {"=": lambda a, b: a == b, "<>": lambda a, b: a != b,
                            "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
                            ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def _nan_last(v: float) -> tuple[int, float]:
    """DuckDB's order of doubles: NaN equals itself and is greater than everything else."""
    return (1, 0.0) if v != v else (0, v)


def _truth(cond: Cond, events: pa.Table, read: dict[str, list[Any]]) -> list[bool | None]:
    """The condition per row of `events`, three-valued (None: NULL); _NotPlain when a
    comparison's column type does not fit its literal."""
    import decimal

    import pyarrow as pa

    kind = cond[0]
    if kind in ("and", "or"):
        a, b = _truth(cond[1], events, read), _truth(cond[2], events, read)
        if kind == "and":
            return [False if x is False or y is False else None if x is None or y is None
                    else True for x, y in zip(a, b, strict=True)]
        return [True if x is True or y is True else None if x is None or y is None
                else False for x, y in zip(a, b, strict=True)]
    if kind == "not":
        return [None if x is None else not x for x in _truth(cond[1], events, read)]
    values = _values(cond[-1] if kind == "null" else cond[2], events, read)
    if kind == "null":
        return [v is None for v in values]
    _, op, column, text, is_string = cond
    t = events.column(column).type
    compare = _COMPARE[op]
    if is_string:
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            raise _NotPlain(column)
        return [None if v is None else compare(v, text) for v in values]
    if pa.types.is_float64(t):  # (a FLOAT column compares with the literal as a FLOAT)
        lit = _nan_last(float(text))  # DuckDB casts the literal to the column's DOUBLE
        return [None if v is None else compare(_nan_last(v), lit) for v in values]
    if pa.types.is_integer(t):
        exact = int(text) if "." not in text else decimal.Decimal(text)  # compared exactly
        return [None if v is None else compare(v, exact) for v in values]
    raise _NotPlain(column)


def _values(column: str, events: pa.Table, read: dict[str, list[Any]]) -> list[Any]:
    if column not in read:
        if column not in events.column_names or not _exact_type(events.column(column).type):
            raise _NotPlain(column)
        read[column] = events.column(column).to_pylist()
    return read[column]


def _exact_type(t: pa.DataType) -> bool:
    """Whether Arrow's `to_pylist` of this type gives what DuckDB's `fetchall` gives."""
    import pyarrow as pa

    if pa.types.is_timestamp(t):
        return t.tz is None and t.unit in ("s", "ms", "us")
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t)
                or pa.types.is_large_string(t) or pa.types.is_boolean(t)
                or pa.types.is_date32(t) or pa.types.is_binary(t)
                or pa.types.is_large_binary(t) or pa.types.is_null(t))


def plain_rows(projection: Projection, events: pa.Table,
               needed: Collection[str] | None = None) -> Rows | None:
    """The projection's result over `events`, read off the table: every output the caller
    needs (`needed`; None: all), or None when one of them is computed or a column it reads
    has a type not read this way (the caller runs the query on DuckDB instead). Outputs not
    needed and not read off the table are left out of the result."""
    names: list[str] = []
    cols: list[list[Any]] = []
    read: dict[str, list[Any]] = {}
    n = events.num_rows
    keep: list[int] | None = None
    if projection.where:
        try:
            truth = [all(t) for t in zip(*(
                [x is True for x in _truth(c, events, read)] for c in projection.where),
                strict=True)] if n else []
        except _NotPlain:
            return None
        keep = [i for i, ok in enumerate(truth) if ok]
    for name, origin in projection.outputs:
        wanted = needed is None or name in needed
        if origin == OTHER:
            if wanted:
                return None
            continue
        if origin == NULL:
            names.append(name)
            cols.append([None] * (n if keep is None else len(keep)))
            continue
        try:
            values = _values(origin, events, read)
        except _NotPlain:
            return None
        names.append(name)
        cols.append(values if keep is None else [values[i] for i in keep])
    return Rows(names, cols, n if keep is None else len(keep))


# DuckDB types whose values `fetchall` gives exactly as Arrow's `to_pylist` does (int, float,
# str, bool, naive datetime, date, Decimal, bytes, None); a result with another type (an
# interval, a list, a map, a time zone) is read through Arrow
_PLAIN = frozenset({"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER",
                    "USMALLINT", "UTINYINT", "DOUBLE", "FLOAT", "VARCHAR", "BOOLEAN",
                    "TIMESTAMP", "DATE", "BLOB", "NULL", '"NULL"'})


def run_query(engine: DuckDBEngine, cache: dict[str, Any], view: str, text: str) -> Rows:
    """A view's query over the events on DuckDB; an engine error names the view
    (`featql_view`).

    The statement is parsed once per engine (bound on every run, so it reads this batch's
    events) and run on the connection itself, whose result is always read to its end or
    dropped (`complete`) before anything else uses the connection: the relation API's second
    bind and its Arrow round trip cost more than the query over a push's few events. The
    caller holds the engine's lock (`ingest._engine`): no other call uses the connection
    meanwhile."""
    import duckdb

    key = "\0stmt:" + text
    con = engine.con
    try:
        got = cache.get(key)  # (statement, whether its result types are plain; None: unknown)
        if got is None:
            got = cache[key] = [con.extract_statements(text)[-1], None]
        if got[1] is not False:
            try:
                cur = con.execute(got[0])
                if got[1] is None:
                    got[1] = all(str(d[1]) in _PLAIN or str(d[1]).startswith("DECIMAL(")
                                 for d in cur.description)
                if got[1]:
                    names = [d[0] for d in cur.description]
                    rows = cur.fetchall()
                    cols = [list(c) for c in zip(*rows, strict=True)] if rows else \
                        [[] for _ in names]
                    return Rows(names, cols, len(rows))
            finally:
                con.complete()  # an unread result: the connection would refuse the next call
        table = engine.query(text)
    except duckdb.Error as e:
        e.featql_view = view  # type: ignore[attr-defined]
        raise
    return Rows(table.column_names, [c.to_pylist() for c in table.columns], table.num_rows)
