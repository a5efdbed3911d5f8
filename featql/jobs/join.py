"""Run a `PointInTimeJoin` on an engine and attach its columns to the spine.

The engine sees only (RID, keys, SPINE_TS); its result, one row per spine row in RID order, is
appended column-wise to the untouched spine, so the spine's columns, types and order are kept.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featql.dialects.pit import RID, SPINE_TS, PointInTimeJoin, check_spine
from featql.engines.engine import Engine


def _row_numbers(n: int) -> pa.Array:
    return pa.array(np.arange(n, dtype=np.int64))  # a Python range would cost 0.1 s per 1M


def spine_relation(spine: pa.Table, node: PointInTimeJoin, ts_col: str) -> pa.Table:
    """RID, the join keys and the timestamp (TIMESTAMP in microseconds, no zone)."""
    ts = spine.column(ts_col)
    if pa.types.is_date(ts.type):
        ts = ts.cast(pa.timestamp("us"))
    elif pa.types.is_timestamp(ts.type):
        if ts.type.tz is not None:
            ts = ts.cast(pa.timestamp(ts.type.unit))
        if ts.type.unit != "us":
            ts = ts.cast(pa.timestamp("us"), safe=False)
    else:
        from featql.core.errors import UserError

        raise UserError(f"spine column '{ts_col}' is {ts.type}, not a timestamp")
    cols = {RID: _row_numbers(spine.num_rows)}
    for k in node.keys:
        cols[k] = spine.column(k)
    cols[SPINE_TS] = ts
    return pa.table(cols)


def join_spine(engine: Engine, node: PointInTimeJoin, spine: pa.Table, ts_col: str,
               ties_found: set[str] | None = None) -> pa.Table:
    """`ties_found` collects the views an engine found event-time ties in while joining."""
    check_spine(spine.schema, node)
    result = engine.point_in_time(node, spine_relation(spine, node, ts_col))
    noted = (result.schema.metadata or {}).get(b"featql.ties", b"").decode()
    if ties_found is not None and noted:
        ties_found.update(noted.split(","))
    rids = result.column(RID)
    if result.num_rows != spine.num_rows or (
            spine.num_rows and not pc.all(pc.equal(
                rids, _row_numbers(spine.num_rows).cast(rids.type))).as_py()):
        raise RuntimeError(f"{engine.name} returned {result.num_rows} rows for a spine of "
                           f"{spine.num_rows}, or out of order: a point-in-time join bug")
    out = spine
    for name in node.columns:
        out = out.append_column(name, result.column(name))
    return out
