"""`FeatqlSpark`: sqlglot's Spark dialect plus `TimeFloor` and a correct DuckDB `DATE_DIFF`.

Spark SQL functions: https://spark.apache.org/docs/latest/api/sql/index.html
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.generators.spark import SparkGenerator
from sqlglot.parsers.spark import SparkParser

from featql.dialects.expressions import TimeFloor, wrap_call
from featql.semantics.calls import PARSERS, PartialBuild, render_partial
from featql.semantics.sketch_key import SketchKey, render_key
from featql.semantics.time import floor_offset_sql

# DuckDB unit spellings (https://duckdb.org/docs/sql/functions/datepart) -> Spark's TIMESTAMPDIFF
# units. Anything else (decade, century, dow, ...) has no Spark counterpart and is refused.
DATE_DIFF_UNITS: dict[str, str] = {
    **{u: u for u in ("YEAR", "QUARTER", "MONTH", "WEEK", "DAY", "HOUR", "MINUTE", "SECOND",
                      "MILLISECOND", "MICROSECOND")},
    "YEARS": "YEAR", "YR": "YEAR", "YRS": "YEAR", "QUARTERS": "QUARTER", "MONTHS": "MONTH",
    "MON": "MONTH", "MONS": "MONTH", "WEEKS": "WEEK", "DAYS": "DAY", "HOURS": "HOUR",
    "HR": "HOUR", "HRS": "HOUR", "MINUTES": "MINUTE", "MIN": "MINUTE", "MINS": "MINUTE",
    "SECONDS": "SECOND", "SEC": "SECOND", "SECS": "SECOND", "MILLISECONDS": "MILLISECOND",
    "MICROSECONDS": "MICROSECOND",
}


def date_diff_unit(e: exp.DateDiff) -> str | None:
    """The Spark unit of a DATE_DIFF, or None when it has none (non-literal or unknown)."""
    unit = e.args.get("unit")
    if not isinstance(unit, exp.Var | exp.Literal):
        return None
    return DATE_DIFF_UNITS.get(unit.name.upper())


def time_floor_sql(gen: SparkGenerator, e: TimeFloor) -> str:
    """`CAST(TIMESTAMP_MICROS(us - PMOD(us, step)) AS TIMESTAMP_NTZ)`,
    `us = UNIX_MICROS(CAST(ts AS TIMESTAMP))`.

    PMOD is the non-negative modulo, so timestamps before 1970 floor downwards. featql's
    TIMESTAMP is zone-less, which is Spark's TIMESTAMP_NTZ (sqlglot maps DuckDB's TIMESTAMP to
    it too); TIMESTAMP_MICROS returns a session-zone TIMESTAMP, hence the outer cast, and
    UNIX_MICROS takes only a session-zone TIMESTAMP (Spark 4.2 refuses a TIMESTAMP_NTZ), hence
    the inner one. Both casts go through the session time zone: featql runs Spark with
    `spark.sql.session.timeZone=UTC`, where they are exact.
    """
    us = f"UNIX_MICROS(CAST({gen.sql(e, 'this')} AS TIMESTAMP))"
    micros = wrap_call(gen, "TIMESTAMP_MICROS", us, floor_offset_sql("spark", us, e.micros))
    return f"CAST({micros} AS TIMESTAMP_NTZ)"


class FeatqlSpark(Spark):
    """Spark 3.4+/4 SQL as featql writes it (the Spark engine)."""

    class Parser(SparkParser):
        FUNCTIONS: ClassVar[dict[str, Any]] = {
            **SparkParser.FUNCTIONS,
            "TIME_FLOOR": lambda args: TimeFloor(this=args[0], seconds=args[1]),
            **PARSERS,  # LAST_N, FIRST_N, TOP_K, ...: featql's aggregate calls
        }

    class Generator(SparkGenerator):
        TRANSFORMS: ClassVar[dict[type[exp.Expr], Any]] = {
            **SparkGenerator.TRANSFORMS,
            TimeFloor: time_floor_sql,
            PartialBuild: lambda gen, e: render_partial(gen, e, "spark"),
            SketchKey: lambda gen, e: render_key(gen, e, "spark"),
        }

        def datediff_sql(self, expression: exp.DateDiff) -> str:
            """DuckDB's DATE_DIFF counts unit *boundaries* crossed; Spark's counts whole units.

            DuckDB `DATE_DIFF('day', '2024-01-01 23:00', '2024-01-02 01:00')` is 1, Spark
            `DATEDIFF(DAY, ...)` (TIMESTAMPDIFF) is 0; sqlglot 30.30 keeps the `date_part_boundary`
            flag but Spark's generator ignores it. Truncating both ends to the unit first gives
            the boundary count. DuckDB's WEEK counts whole 7-day spans between the *dates*, so
            WEEK truncates to days. https://duckdb.org/docs/sql/functions/date#date_diffpart-startdate-enddate
            """
            unit = date_diff_unit(expression)
            boundary = expression.args.get("date_part_boundary")
            if unit is None or not (boundary or unit == "WEEK"):
                return super().datediff_sql(expression)
            trunc_to = "DAY" if unit == "WEEK" else unit
            start, end = (
                exp.TimestampTrunc(this=expression.args[k].copy(),
                                   unit=exp.Literal.string(trunc_to))
                for k in ("expression", "this")
            )
            return self.func("DATEDIFF", exp.var(unit), start, end)
