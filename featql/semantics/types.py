"""The one type map: each featql type (PRODUCT §2) as Arrow, DuckDB SQL, Spark SQL and Python.

`featql.core.types` names the type set and recognizes foreign types (sqlglot, Arrow, a user's
spelling) as featql types; everything that *writes* a featql type somewhere — a column of an
Arrow table, a CAST in DuckDB or Spark SQL, a sqlglot tree, a Python value — asks this module.

| featql     | Arrow          | DuckDB    | Spark     | Python (online values)      |
|------------|----------------|-----------|-----------|-----------------------------|
| BIGINT     | int64          | BIGINT    | BIGINT    | int                         |
| INT        | int32          | INTEGER   | INT       | int                         |
| DOUBLE     | float64        | DOUBLE    | DOUBLE    | float (an int is accepted)  |
| FLOAT      | float32        | FLOAT     | FLOAT     | float (an int is accepted)  |
| STRING     | string         | VARCHAR   | STRING    | str                         |
| BOOLEAN    | bool           | BOOLEAN   | BOOLEAN   | bool                        |
| TIMESTAMP  | timestamp(us)  | TIMESTAMP | TIMESTAMP | ISO text (naive UTC)        |
| DATE       | date32         | DATE      | DATE      | ISO text                    |
| ARRAY<E>   | list<E>        | E[]       | ARRAY<E>  | list                        |
| BINARY     | binary         | BLOB      | BINARY    | bytes (sketch partials only) |

Spark's TIMESTAMP is its session-zone type; featql runs Spark in UTC, and every table an engine
returns is `conform`ed to the Arrow types above.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlglot import exp

INTEGERS = frozenset({"BIGINT", "INT", "INTEGER", "SMALLINT", "TINYINT"})
"""Integer types, with the SQL spellings online values may carry (the result is a Python int)."""
FLOATS = frozenset({"DOUBLE", "FLOAT", "DECIMAL"})
_INT_RANGE = {"BIGINT": (-(2**63), 2**63 - 1), "INT": (-(2**31), 2**31 - 1),
              "INTEGER": (-(2**31), 2**31 - 1), "SMALLINT": (-(2**15), 2**15 - 1),
              "TINYINT": (-(2**7), 2**7 - 1)}

_DUCKDB = {"STRING": "VARCHAR", "INT": "INTEGER", "BINARY": "BLOB"}
_ARROW_NAMES = {"BIGINT": "int64", "INT": "int32", "DOUBLE": "float64", "FLOAT": "float32",
                "STRING": "string", "BOOLEAN": "bool_", "DATE": "date32", "BINARY": "binary"}


def _norm(featql_type: str) -> str:
    return featql_type.upper().strip()


def _element(t: str) -> str | None:
    return t[6:-1] if t.startswith("ARRAY<") and t.endswith(">") else None


def duckdb_type(featql_type: str) -> str:
    """The DuckDB SQL spelling (`CAST(x AS <it>)`)."""
    t = _norm(featql_type)
    elem = _element(t)
    if elem is not None:
        return duckdb_type(elem) + "[]"
    return _DUCKDB.get(t, t)


def spark_type(featql_type: str) -> str:
    """The Spark SQL spelling: featql's own names (STRING, INT, ARRAY<...>) are Spark's."""
    return _norm(featql_type)


def sql_type(dialect: str, featql_type: str) -> str:
    """`duckdb_type` or `spark_type` by dialect name."""
    if dialect == "duckdb":
        return duckdb_type(featql_type)
    if dialect == "spark":
        return spark_type(featql_type)
    raise ValueError(f"unknown SQL dialect {dialect!r}")


@cache
def sqlglot_type(featql_type: str) -> exp.DataType:
    """The sqlglot DataType (dialect-neutral: each target renders it in its own spelling).
    Cached and shared: copy it before putting it into a tree."""
    from sqlglot import exp

    return exp.DataType.build(duckdb_type(featql_type), dialect="duckdb")


def arrow_type(featql_type: str) -> pa.DataType:
    """The Arrow type of a column of that featql type (unknown names: string)."""
    import pyarrow as pa

    t = _norm(featql_type)
    elem = _element(t)
    if elem is not None:
        return pa.list_(arrow_type(elem))
    if t == "TIMESTAMP":
        return pa.timestamp("us")
    factory = getattr(pa, _ARROW_NAMES.get(t, "string"))
    result: pa.DataType = factory()
    return result


def python_value(value: Any, featql_type: str) -> Any:
    """A merged value as the Python type of its featql type: int for integer types, bool for
    BOOLEAN (tiles store booleans as 0/1), float for the floating types and for other numeric
    values; None and other values (text) are returned as they are."""
    if value is None:
        return None
    convert = _CONVERTERS.get(featql_type)
    if convert is None:
        convert = _CONVERTERS[featql_type] = _converter(featql_type)
    return convert(value)


def _converter(featql_type: str) -> Callable[[Any], Any]:
    t = _norm(featql_type)
    if t == "BOOLEAN":
        return bool
    if t in INTEGERS:
        return int
    if t in FLOATS:
        return float
    return _numeric_as_float


def _numeric_as_float(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


_CONVERTERS: dict[str, Callable[[Any], Any]] = {}


def python_accepts(value: Any, featql_type: str) -> bool:
    """Is `value` (decoded JSON) a valid value of the type? None always is; timestamps and
    dates are ISO text; types featql does not know accept anything."""
    if value is None:
        return True
    t = _norm(featql_type)
    if t in INTEGERS:
        low, high = _INT_RANGE.get(t, _INT_RANGE["BIGINT"])
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if t in FLOATS:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t in ("STRING", "VARCHAR"):
        return isinstance(value, str)
    if t == "BOOLEAN":
        return isinstance(value, bool)
    if t in ("TIMESTAMP", "DATE"):
        return isinstance(value, str)
    return True


def conform(table: pa.Table, types: dict[str, str]) -> pa.Table:
    """Cast the named columns to their featql types' Arrow types (zone-aware timestamps become
    UTC wall time, large strings plain strings), so every engine returns the same schema."""
    import pyarrow as pa

    cols = []
    for name in table.column_names:
        col = table.column(name)
        if name in types:
            target = arrow_type(types[name])
            if col.type != target:
                if pa.types.is_timestamp(col.type) and col.type.tz is not None:
                    col = col.cast(pa.timestamp(col.type.unit))
                col = col.cast(target, safe=False)
        cols.append(col)
    return pa.table(cols, names=table.column_names)
