"""Pushed records checked against their source's schema (PRODUCT §5), before anything is written.

`records_table(source, records)` takes JSON records (a list of objects, the HTTP body) or an
Arrow table (a file, a stream's micro-batch) and returns an Arrow table with exactly the
source's columns and types, or raises `RequestError` (a `UserError` with a 4xx status) naming
the record index and the field: `records[3].amount must be DOUBLE, got string`. A missing
field is NULL, except the source's timestamp and its `key`, which every event needs; a field the
source does not declare is refused with a "did you mean".
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from featql.core.diagnostics import did_you_mean
from featql.core.ir import Source
from featql.online.lookup import RequestError
from featql.semantics.types import arrow_type, python_accepts

if TYPE_CHECKING:
    import pyarrow as pa

MAX_RECORDS = 1000


def required_columns(source: Source) -> tuple[str, ...]:
    """The fields every event needs: its time, and its identity when the source has a key."""
    key = getattr(source, "key", None)
    return (source.timestamp,) if key is None or key == source.timestamp \
        else (source.timestamp, key)


def _kind(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}.get(type(value), type(value).__name__)


def _timestamp(value: str, where: str) -> dt.datetime:
    try:
        ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(400, "invalid_field", f"{where} is not an ISO timestamp: {value!r}",
                           where) from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.UTC).replace(tzinfo=None)
    return ts


def _date(value: str, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise RequestError(400, "invalid_field", f"{where} is not an ISO date: {value!r}",
                           where) from None


def records_table(source: Source, records: Any, limit: int = MAX_RECORDS) -> pa.Table:
    """The checked records as an Arrow table of the source's columns (see the module doc)."""
    import pyarrow as pa

    if isinstance(records, pa.Table):
        return _from_table(source, records)
    if not isinstance(records, list):
        raise RequestError(400, "invalid_field", f"'records' must be an array of objects, got "
                           f"{_kind(records)}", "records")
    if not records:
        raise RequestError(400, "invalid_field", "'records' is empty", "records")
    if len(records) > limit:
        raise RequestError(413, "too_many_records", f"{len(records)} records in one call; the "
                           f"limit is {limit}", "records")
    names = [c.name for c in source.columns]
    known = set(names)
    required = required_columns(source)
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise RequestError(400, "invalid_field", f"records[{i}] must be an object, got "
                               f"{_kind(rec)}", f"records[{i}]")
        for field in rec:
            if field not in known:
                hint = did_you_mean(field, names)
                raise RequestError(400, "unknown_field", f"records[{i}].{field}: source "
                                   f"'{source.name}' has no column '{field}'"
                                   + (f": {hint}" if hint else ""), f"records[{i}].{field}")
        for c in source.columns:
            where = f"records[{i}].{c.name}"
            v = rec.get(c.name)
            if v is None:
                if c.name in required:
                    what = "key" if c.name != source.timestamp else "event time"
                    raise RequestError(400, "missing_field", f"{where} is missing: every event "
                                       f"of '{source.name}' needs its {what} ({c.name} "
                                       f"{c.type})", where)
                columns[c.name].append(None)
                continue
            if not python_accepts(v, c.type):
                raise RequestError(400, "invalid_field", f"{where} must be {c.type}, got "
                                   f"{_kind(v)}", where)
            t = c.type.upper()
            if t == "TIMESTAMP":
                v = _timestamp(v, where)
            elif t == "DATE":
                v = _date(v, where)
            elif t in ("DOUBLE", "FLOAT"):
                v = float(v)
            columns[c.name].append(v)
    try:
        return pa.table({c.name: pa.array(columns[c.name], arrow_type(c.type))
                         for c in source.columns})
    except (pa.ArrowException, OverflowError, TypeError) as e:
        raise RequestError(400, "invalid_field", f"records do not fit the schema of "
                           f"'{source.name}': {e}", "records") from None


def _from_table(source: Source, table: pa.Table) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    names = [c.name for c in source.columns]
    lower = {n.lower(): n for n in table.column_names}
    for n in table.column_names:
        if n.lower() not in {x.lower() for x in names}:
            hint = did_you_mean(n, names)
            raise RequestError(400, "unknown_field", f"records[0].{n}: source '{source.name}' "
                               f"has no column '{n}'" + (f": {hint}" if hint else ""),
                               f"records[0].{n}")
    required = required_columns(source)
    out = {}
    for c in source.columns:
        target = arrow_type(c.type)
        name = lower.get(c.name.lower())
        if name is None:
            if c.name in required:
                raise RequestError(400, "missing_field", f"records[0].{c.name} is missing: "
                                   f"every event of '{source.name}' needs it", f"records[0]."
                                   f"{c.name}")
            out[c.name] = pa.nulls(table.num_rows, target)
            continue
        col = table.column(name)
        if pa.types.is_timestamp(col.type) and col.type.tz is not None:
            col = col.cast(pa.timestamp(col.type.unit))
        try:
            col = col.cast(target)
        except (pa.ArrowException, ValueError):
            i = _first_bad(col, target)
            raise RequestError(400, "invalid_field", f"records[{i}].{c.name} must be {c.type}, "
                               f"got {col[i].as_py()!r}", f"records[{i}].{c.name}") from None
        if c.name in required and col.null_count:
            i = pc.index(pc.is_null(col), True).as_py()
            raise RequestError(400, "missing_field", f"records[{i}].{c.name} is missing: every "
                               f"event of '{source.name}' needs it", f"records[{i}].{c.name}")
        out[c.name] = col
    return pa.table(out)


def _first_bad(col: Any, target: Any) -> int:
    import pyarrow as pa

    for i in range(len(col)):
        try:
            pa.array([col[i].as_py()], col.type).cast(target)
        except (pa.ArrowException, ValueError):
            return i
    return 0
