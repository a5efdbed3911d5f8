"""`format = avro` Kafka streams: the Avro schema of a source, and its messages decoded.

A message is **plain Avro binary**: one record of the source's schema, with no header (no
Confluent schema-registry framing, no object-container file). Schema registries are not
supported: Confluent's serializer is not served to this project, and its framing (a zero byte
and a 4-byte schema id before the record) is not read.

The schema comes from the source's columns (`avro_schema`), in their declared order: a record
named after the source (namespace `featql`), one field per column, each a union `["null", T]`
with default null, so any field may be absent (NULL); the source's event time and `key` must
be present all the same, as for JSON (a record without them is a dead letter). The types:

| featql              | Avro                                   |
|---------------------|----------------------------------------|
| BIGINT              | long                                   |
| INT, SMALLINT, TINYINT | int                                 |
| DOUBLE, DECIMAL     | double                                 |
| FLOAT               | float                                  |
| STRING              | string                                 |
| BOOLEAN             | boolean                                |
| TIMESTAMP           | long, logicalType timestamp-micros (UTC) |
| DATE                | int, logicalType date                  |
| BINARY              | bytes                                  |
| ARRAY<E>            | array of ["null", E]                   |

Producers write with exactly this schema (`avro_schema(source)` as JSON; plain Avro binary
carries no schema, so the reader cannot tell another one apart). Spark decodes each message
with its own `from_avro` (the `spark-avro` jar `make kafka` fetches) in mode PERMISSIVE: a
message that is not a record of the schema decodes to a record whose fields are all NULL
(Spark's PERMISSIVE result for a record schema), and `decode_batch` makes it a dead letter (its
bytes in base64, the reason), never a failed query or a silent drop. A well-formed record with
every field NULL looks the same; it is no event either (it has no event time), and its reason
says both. Avro's binary
decoding does not notice bytes left over after a whole record, so a message with trailing
bytes decodes to its leading record.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import TYPE_CHECKING, Any

from featql.core.errors import UserError
from featql.core.ir import Source

if TYPE_CHECKING:
    import pyarrow as pa

_PRIMITIVE: dict[str, Any] = {
    "BIGINT": "long", "INT": "int", "INTEGER": "int", "SMALLINT": "int", "TINYINT": "int",
    "DOUBLE": "double", "DECIMAL": "double", "FLOAT": "float", "STRING": "string",
    "VARCHAR": "string", "BOOLEAN": "boolean", "BINARY": "bytes",
    "TIMESTAMP": {"type": "long", "logicalType": "timestamp-micros"},
    "DATE": {"type": "int", "logicalType": "date"},
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # Avro's rule for record and field names
NOT_AVRO = ("not an Avro record of the source's schema (plain Avro binary, no header), or a "
            "record whose fields are all NULL")


def avro_type(featql_type: str, where: str) -> Any:
    """The Avro type of a featql type (not nullable; `avro_schema` wraps each field)."""
    t = featql_type.upper().strip()
    if t.startswith("ARRAY<") and t.endswith(">"):
        return {"type": "array", "items": ["null", avro_type(t[6:-1], where)]}
    if t not in _PRIMITIVE:
        raise UserError(f"{where}: featql has no Avro type for {featql_type} (format = avro); "
                        "use format = json, or a column type from docs/language.md")
    return _PRIMITIVE[t]


def avro_schema(source: Source) -> dict[str, Any]:
    """The Avro schema of the source's messages (see the module doc); a `UserError` when a
    name is not an Avro name or a column type has no Avro type."""
    for what, name in (("source", source.name), *(("column", c.name) for c in source.columns)):
        if not _NAME.match(name):
            raise UserError(f"source '{source.name}': {what} name '{name}' is not an Avro name "
                            "(letters, digits and _, not starting with a digit), so format = "
                            "avro cannot name it; rename it or use format = json")
    return {"type": "record", "name": source.name, "namespace": "featql",
            "fields": [{"name": c.name, "type": ["null", avro_type(c.type, f"source "
                                                                  f"'{source.name}', column "
                                                                  f"'{c.name}'")],
                        "default": None} for c in source.columns]}


def schema_json(source: Source) -> str:
    return json.dumps(avro_schema(source), sort_keys=True)


def decoded_frame(frame: Any, source: Source) -> Any:
    """Kafka rows (`value` binary, `partition`, `offset`) as `record` (the decoded struct,
    NULL for a message that is not one), `value` (the message in base64, for dead letters) and
    `origin`."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    return frame.select(
        from_avro(F.col("value"), schema_json(source), {"mode": "PERMISSIVE"}).alias("record"),
        F.base64(F.col("value")).alias("value"),
        F.concat(F.col("partition").cast("string"), F.lit(":"),
                 F.col("offset").cast("string")).alias("origin"))


def _jsonable(value: Any) -> Any:
    """A decoded Avro value as the push path's JSON value (ISO text for times)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def decode_batch(raw: pa.Table) -> list[tuple[dict[str, Any] | None, str | None]]:
    """Each message of a collected micro-batch (`decoded_frame`) as a record in the push
    path's JSON form, or the reason it is not one."""
    records = raw.column("record").to_pylist()
    values = raw.column("value").to_pylist()
    out: list[tuple[dict[str, Any] | None, str | None]] = []
    for rec, value in zip(records, values, strict=True):
        if value is None:
            out.append((None, "the message has no value"))
        elif rec is None or all(v is None for v in rec.values()):
            out.append((None, NOT_AVRO))
        else:
            out.append(({k: _jsonable(v) for k, v in rec.items() if v is not None}, None))
    return out

