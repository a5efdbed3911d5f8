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

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlglot import exp

if TYPE_CHECKING:
    import pyarrow as pa

    from featql.engines.duckdb import DuckDBEngine

NULL = ""  # the origin of an output that is a typed NULL
OTHER = "\0"  # the origin of an output computed by an expression (not read off the events)
# the Select arguments a plain projection may have (any other set: not plain)
_ALLOWED = frozenset({"expressions", "from_", "with_"})


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
    OTHER)."""

    outputs: tuple[tuple[str, str], ...]


def plain_projection(sql: str, source: str, columns: Collection[str]) -> Projection | None:
    """The outputs of `sql` (DuckDB) when it is a plain projection of the table `source`,
    whose columns are `columns` (see the module doc); None for any other query."""
    import sqlglot

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return None
    if not isinstance(tree, exp.Select):
        return None
    relations: dict[str, list[tuple[str, str]]] = {
        source.lower(): [(c, c) for c in columns]}
    with_ = tree.args.get("with_")
    if with_ is not None:
        if with_.args.get("recursive"):
            return None
        for cte in with_.expressions:
            body = _select_outputs(cte.this, relations)
            if body is None or not cte.alias or cte.alias.lower() in relations:
                return None
            relations[cte.alias.lower()] = body
    outputs = _select_outputs(tree, relations, top=True)
    return None if outputs is None else Projection(tuple(outputs))


def _select_outputs(select: exp.Expression, relations: dict[str, list[tuple[str, str]]],
                    top: bool = False) -> list[tuple[str, str]] | None:
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
    rel = relations.get(table.name.lower())
    if rel is None:
        return None
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
        if isinstance(inner, exp.Column):
            if (inner.table and inner.table.lower() not in qualifiers) or inner.args.get("db"):
                return None
            origin = by_name.get(inner.name.lower())
            if origin is None or not isinstance(inner.this, exp.Identifier):
                return None
            out.append((name, origin))
        elif isinstance(inner, exp.Cast) and isinstance(inner.this, exp.Null):
            out.append((name, NULL))
        else:
            out.append((name, OTHER))
    if len({n.lower() for n, _ in out}) != len(out):
        return None
    return out


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
    for name, origin in projection.outputs:
        wanted = needed is None or name in needed
        if origin == OTHER:
            if wanted:
                return None
            continue
        if origin == NULL:
            names.append(name)
            cols.append([None] * n)
            continue
        if origin not in read:
            if origin not in events.column_names:
                return None
            column = events.column(origin)
            if not _exact_type(column.type):
                return None
            read[origin] = column.to_pylist()
        names.append(name)
        cols.append(read[origin])
    return Rows(names, cols, n)


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
