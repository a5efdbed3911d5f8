"""featql types (PRODUCT §2) as Arrow types: the schema of every table the runtime returns."""

from __future__ import annotations

import pyarrow as pa

_SCALARS: dict[str, pa.DataType] = {
    "BIGINT": pa.int64(), "INT": pa.int32(), "DOUBLE": pa.float64(), "FLOAT": pa.float32(),
    "STRING": pa.string(), "BOOLEAN": pa.bool_(), "TIMESTAMP": pa.timestamp("us"),
    "DATE": pa.date32(),
}


def arrow_type(featql_type: str) -> pa.DataType:
    t = featql_type.upper().strip()
    if t.startswith("ARRAY<") and t.endswith(">"):
        return pa.list_(arrow_type(t[6:-1]))
    return _SCALARS.get(t, pa.string())


def conform(table: pa.Table, types: dict[str, str]) -> pa.Table:
    """Cast the named columns to their featql types (zone-aware timestamps become UTC wall time,
    large strings plain strings), so every engine returns the same schema."""
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
