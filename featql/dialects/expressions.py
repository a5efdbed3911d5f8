"""featql's own sqlglot expression: `TimeFloor`, the tile boundary of an event.

`TimeFloor(this=ts, seconds=3600)` is `ts` rounded down to a multiple of `seconds` counted from
the Unix epoch (1970-01-01 00:00:00): floor, not truncation, so 1969-12-31 23:30 floors to
1969-12-31 23:00 for a one-hour slide: `featql.semantics.time.floor`. Each featql dialect renders
it with integer microsecond arithmetic (`duckdb.py` and `spark.py`, with the modulo of
`featql.semantics.time.floor_offset_sql`), so both engines agree on every boundary.
"""

from __future__ import annotations

from typing import ClassVar

from sqlglot import exp
from sqlglot.generator import Generator

MICROS_PER_SECOND = 1_000_000


class TimeFloor(exp.Expression, exp.Func):
    """Floor a TIMESTAMP to a multiple of `seconds` since the epoch (also before 1970)."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True, "seconds": True}
    _sql_names: ClassVar[list[str]] = ["TIME_FLOOR"]

    def __init__(self, **args: object) -> None:
        seconds = args.get("seconds")
        if isinstance(seconds, int) and not isinstance(seconds, bool):
            if seconds <= 0:
                raise ValueError(f"TimeFloor needs a positive number of seconds, got {seconds}")
            args["seconds"] = exp.Literal.number(seconds)
        super().__init__(**args)

    @property
    def seconds(self) -> int:
        value = self.args["seconds"]
        if not (isinstance(value, exp.Literal) and value.is_int):
            raise ValueError(f"TimeFloor needs an integer literal slide, got {value.sql()}")
        return int(value.name)

    @property
    def micros(self) -> int:
        return self.seconds * MICROS_PER_SECOND



def wrap_call(gen: Generator, func: str, first: str, rest: str) -> str:
    """`func(first rest)`, with `first` and `rest` on their own lines when pretty-printing.

    TimeFloor's arithmetic repeats the timestamp; on one line it runs past any review width.
    """
    if not gen.pretty:
        return f"{func}({first} {rest})"
    return f"{func}(\n{gen.indent(first)}\n{gen.indent(rest)}\n)"
