"""`FeatqlDuckDB`: sqlglot's DuckDB dialect plus featql's `TimeFloor`.

A subclass, never a patch: sqlglot's own `duckdb` dialect is untouched for everyone else.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.generators.duckdb import DuckDBGenerator
from sqlglot.parsers.duckdb import DuckDBParser

from featql.dialects.expressions import TimeFloor, wrap_call
from featql.semantics.calls import PARSERS, PartialBuild, render_partial
from featql.semantics.sketch_key import SketchKey, render_key
from featql.semantics.time import floor_offset_sql


def time_floor_sql(gen: DuckDBGenerator, e: TimeFloor) -> str:
    """`MAKE_TIMESTAMP(us - ((us % step) + step) % step)` with `us = EPOCH_US(ts)`.

    EPOCH_US and the one-argument MAKE_TIMESTAMP are exact microsecond conversions in both
    directions (https://duckdb.org/docs/sql/functions/timestamp). DuckDB's `%` keeps the sign of
    the dividend (`-7 % 2 = -1`), hence `(x % d + d) % d` for timestamps before 1970.
    """
    us = f"EPOCH_US({gen.sql(e, 'this')})"
    step = e.micros
    return wrap_call(gen, "MAKE_TIMESTAMP", us, floor_offset_sql("duckdb", us, step))


class FeatqlDuckDB(DuckDB):
    """DuckDB as featql reads (canonical SQL) and writes it (the DuckDB engine)."""

    class Parser(DuckDBParser):
        FUNCTIONS: ClassVar[dict[str, Any]] = {
            **DuckDBParser.FUNCTIONS,
            "TIME_FLOOR": lambda args: TimeFloor(this=args[0], seconds=args[1]),
            **PARSERS,  # LAST_N, FIRST_N, TOP_K, ...: featql's aggregate calls
        }

    class Generator(DuckDBGenerator):
        TRANSFORMS: ClassVar[dict[type[exp.Expr], Any]] = {
            **DuckDBGenerator.TRANSFORMS,
            TimeFloor: time_floor_sql,
            PartialBuild: lambda gen, e: render_partial(gen, e, "duckdb"),
            SketchKey: lambda gen, e: render_key(gen, e, "duckdb"),
        }

        def ignorenulls_sql(self, expression: exp.IgnoreNulls) -> str:
            """`LAST(x IGNORE NULLS) OVER (...)`, which DuckDB runs as a window function.

            sqlglot 30.30 reports any IGNORE NULLS around LAST as unsupported, window or not.
            https://duckdb.org/docs/sql/functions/window_functions#last_valueexpr-ignore-nulls
            """
            this = expression.this
            if isinstance(this, exp.Last) and isinstance(expression.parent, exp.Window):
                return self.func("LAST", f"{self.sql(this, 'this')} IGNORE NULLS")
            return super().ignorenulls_sql(expression)
