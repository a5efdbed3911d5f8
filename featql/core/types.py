"""featql's type set (PRODUCT §2) and how foreign types (sqlglot, Arrow, a user's spelling) are
recognized as featql types. Writing a featql type anywhere (Arrow, DuckDB/Spark SQL, sqlglot,
Python) is `featql.semantics.types`, the one type map."""

from __future__ import annotations

from typing import Any

from sqlglot import exp

SCALARS = ("BIGINT", "INT", "DOUBLE", "FLOAT", "STRING", "BOOLEAN", "TIMESTAMP", "DATE")
ARRAY_ELEMENTS = ("STRING", "BIGINT", "DOUBLE")
ALL_TYPES = SCALARS + tuple(f"ARRAY<{e}>" for e in ARRAY_ELEMENTS)
KEY_TYPES = ("BIGINT", "INT", "STRING")
NUMERIC = ("BIGINT", "INT", "DOUBLE", "FLOAT")
UNKNOWN = "UNKNOWN"

_T = exp.DataType.Type
_FROM_SQLGLOT: dict[Any, str] = {
    _T.BIGINT: "BIGINT",
    _T.UBIGINT: "BIGINT",
    _T.INT128: "BIGINT",
    _T.INT: "INT",
    _T.UINT: "BIGINT",
    _T.SMALLINT: "INT",
    _T.USMALLINT: "INT",
    _T.TINYINT: "INT",
    _T.UTINYINT: "INT",
    _T.DOUBLE: "DOUBLE",
    _T.DECIMAL: "DOUBLE",
    _T.FLOAT: "FLOAT",
    _T.VARCHAR: "STRING",
    _T.CHAR: "STRING",
    _T.TEXT: "STRING",
    _T.NVARCHAR: "STRING",
    _T.NCHAR: "STRING",
    _T.BOOLEAN: "BOOLEAN",
    _T.TIMESTAMP: "TIMESTAMP",
    _T.DATETIME: "TIMESTAMP",
    _T.TIMESTAMPNTZ: "TIMESTAMP",
    _T.TIMESTAMP_S: "TIMESTAMP",
    _T.TIMESTAMP_MS: "TIMESTAMP",
    _T.TIMESTAMP_NS: "TIMESTAMP",
    _T.DATE: "DATE",
}


def from_sqlglot(dt: exp.DataType | None) -> str:
    """featql type of a sqlglot DataType; UNKNOWN when it has none."""
    if dt is None:
        return UNKNOWN
    if dt.this == _T.ARRAY:
        inner = dt.expressions[0] if dt.expressions else None
        elem = from_sqlglot(inner if isinstance(inner, exp.DataType) else None)
        elem = {"INT": "BIGINT", "FLOAT": "DOUBLE"}.get(elem, elem)
        return f"ARRAY<{elem}>" if elem in ARRAY_ELEMENTS else UNKNOWN
    return _FROM_SQLGLOT.get(dt.this, UNKNOWN)


def from_sql_text(text: str) -> str:
    """featql type of a type name written by a user (`bigint`, `varchar`, `array<string>`)."""
    try:
        return from_sqlglot(exp.DataType.build(text, dialect="duckdb"))
    except Exception:
        return UNKNOWN


def from_arrow(arrow_type: Any) -> str:
    """featql type of a pyarrow DataType (pyarrow imported lazily by the caller)."""
    import pyarrow as pa

    t = pa.types
    if t.is_int64(arrow_type) or t.is_uint32(arrow_type) or t.is_uint64(arrow_type):
        return "BIGINT"
    if t.is_integer(arrow_type):
        return "INT"
    if t.is_float64(arrow_type) or t.is_decimal(arrow_type):
        return "DOUBLE"
    if t.is_floating(arrow_type):
        return "FLOAT"
    if t.is_string(arrow_type) or t.is_large_string(arrow_type):
        return "STRING"
    if t.is_boolean(arrow_type):
        return "BOOLEAN"
    if t.is_timestamp(arrow_type):
        return "TIMESTAMP" if arrow_type.tz is None else UNKNOWN
    if t.is_date(arrow_type):
        return "DATE"
    if t.is_list(arrow_type) or t.is_large_list(arrow_type):
        elem = from_arrow(arrow_type.value_type)
        elem = {"INT": "BIGINT", "FLOAT": "DOUBLE"}.get(elem, elem)
        return f"ARRAY<{elem}>" if elem in ARRAY_ELEMENTS else UNKNOWN
    return UNKNOWN


def compatible(actual: str, expected: str) -> bool:
    """Can a value of type `actual` be used where `expected` is declared?"""
    if actual == expected:
        return True
    widening = {("INT", "BIGINT"), ("FLOAT", "DOUBLE"), ("INT", "DOUBLE"), ("BIGINT", "DOUBLE"),
                ("INT", "FLOAT")}
    return (actual, expected) in widening
