"""The little SQL the semantics write itself, per dialect: quoting and epoch microseconds.

featql's rules are written in integer microseconds since the epoch on every engine (a timestamp
compared, floored or subtracted as an integer is exact and identical in DuckDB and Spark).
"""

from __future__ import annotations

from typing import Literal

Dialect = Literal["duckdb", "spark"]
DIALECTS: tuple[Dialect, ...] = ("duckdb", "spark")
US = 1_000_000
"""Microseconds per second."""


def quote(dialect: str, ident: str) -> str:
    """An identifier as that dialect quotes it."""
    if dialect == "duckdb":
        return '"' + ident.replace('"', '""') + '"'
    return "`" + ident.replace("`", "``") + "`"


def epoch_us(dialect: str, expr: str) -> str:
    """A TIMESTAMP expression as integer microseconds since 1970-01-01 (UTC wall time)."""
    if dialect == "duckdb":
        return f"epoch_us({expr})"
    return f"unix_micros(CAST({expr} AS TIMESTAMP))"
