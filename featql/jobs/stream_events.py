"""One micro-batch of a stream, from raw messages to the events `ingest_events` applies.

`featql stream` collects each Spark micro-batch to the driver as Arrow (`value`, the raw
message text, and `origin`, where it came from: `partition:offset` of a Kafka topic or the file
it was read from; for a `format = avro` topic also `record`, the message decoded by Spark's
`from_avro`, and `value` is then its bytes in base64: `featql.jobs.stream_avro`).
`split_batch` sorts every message into events or dead letters, so none is dropped without a
word:

- **events**: decoded and checked against the source's schema by the push path's own checker
  (`featql.jobs.ingest_records.records_table`: one set of rules for pushes and streams);
- **dead letters**: messages that are not a JSON object (or not an Avro record of the
  source's schema), records missing the event time or the
  key, values of the wrong type, fields the source does not declare; each with the checker's
  reason (`record.amount must be DOUBLE, got string`). The stream job writes them as JSON
  lines, one file per batch named by the batch id (a replayed batch rewrites the same file).

It also counts the **late** events: event time more than the source's `lateness` behind the
*watermark*, the newest event time of the batches before this one (PRODUCT §2; the first batch
has no watermark, so nothing in it is late). Late events are applied all the same, like late
pushes (`featql.jobs.ingest`): they are in the offline log, so the training set counts them
too and online and offline agree; the count says how many arrived after their window was
served.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from featql.core.ir import Source
from featql.online.lookup import RequestError

if TYPE_CHECKING:
    import pyarrow as pa

_INDEX = re.compile(r"records\[(\d+)\]")
# a batch with more bad messages than this is checked one message at a time (the bisecting
# retry below costs one whole-batch check per bad message)
_RETRIES = 16
CSV_BAD_ROW = ("not a CSV row of the source's columns and types (a value that does not parse "
               "as its column's type, or a row with too few or too many fields)")


@dataclass(frozen=True)
class SetAside:
    origin: str  # partition:offset, or the file
    value: str | None  # the raw message
    reason: str


@dataclass
class Split:
    events: pa.Table | None  # the source's columns and types; None when no message is good
    dead: list[SetAside] = field(default_factory=list)
    late: int = 0
    oldest: dt.datetime | None = None  # event times of the batch's events
    newest: dt.datetime | None = None


def parquet_messages(raw: pa.Table) -> pa.Table:
    """A micro-batch of whole Parquet files (`content`, `origin`: the file) as messages: a
    JSON object per row (checked like any message by `split_batch`), and for a file that is
    not Parquet one message with the reason in `error` (a dead letter naming the file)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    values: list[str | None] = []
    origins: list[str] = []
    errors: list[str | None] = []
    for content, origin in zip(raw.column("content").to_pylist(),
                               raw.column("origin").to_pylist(), strict=True):
        try:
            rows = pq.read_table(io.BytesIO(content)).to_pylist()
        except Exception as e:  # pyarrow.ArrowInvalid and the like: the file, not the job
            values.append(None)
            origins.append(str(origin))
            errors.append(f"not a Parquet file: {str(e).splitlines()[0][:300]}")
            continue
        for rec in rows:
            values.append(json.dumps(rec, default=str))
            origins.append(str(origin))
            errors.append(None)
    return pa.table({"value": pa.array(values, pa.string()), "origin": origins,
                     "error": pa.array(errors, pa.string())})


def decode(value: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """A message as a JSON object, or the reason it is not one."""
    if value is None:
        return None, "the message has no value"
    try:
        rec = json.loads(value)
    except ValueError as e:
        return None, f"not JSON: {e}"
    if not isinstance(rec, dict):
        return None, f"not a JSON object (a {type(rec).__name__})"
    return rec, None


def _checked(source: Source, records: list[dict[str, Any]]) -> pa.Table:
    from featql.jobs.ingest_records import records_table

    return records_table(source, records, limit=max(len(records), 1))


def _reason(error: RequestError, index: int) -> str:
    """The checker's message about `records[i]`, about the message itself."""
    return _INDEX.sub("record", error.message, count=1) if index >= 0 else error.message


def check_records(source: Source, records: list[dict[str, Any]]
                  ) -> tuple[pa.Table | None, list[tuple[int, str]]]:
    """The good records as one table, and (index, reason) for each bad one."""
    alive = list(range(len(records)))
    bad: list[tuple[int, str]] = []
    for _ in range(_RETRIES):
        if not alive:
            return None, bad
        try:
            return _checked(source, [records[i] for i in alive]), bad
        except RequestError as e:
            match = _INDEX.search(e.field or e.message)
            if match is None or int(match.group(1)) >= len(alive):
                break  # not about one record: check them one by one
            i = int(match.group(1))
            bad.append((alive[i], _reason(e, i)))
            del alive[i]
    good: list[int] = []
    for i in alive:
        try:
            _checked(source, [records[i]])
            good.append(i)
        except RequestError as e:
            bad.append((i, _reason(e, 0)))
    if not good:
        return None, bad
    return _checked(source, [records[i] for i in good]), bad


def split_batch(source: Source, raw: pa.Table, watermark: dt.datetime | None,
                horizon: dt.datetime | None = None) -> Split:
    """Sort a micro-batch (`value`, `origin`) into events and dead letters; count the late.
    Events older than `horizon` (the ingest ledger's retention: their key may be forgotten,
    `featql.jobs.ingest_log`) are dead letters too: set aside, never applied twice."""
    values = raw.column("value").to_pylist()
    origins = raw.column("origin").to_pylist()
    errors = raw.column("error").to_pylist() if "error" in raw.column_names \
        else [None] * raw.num_rows
    errors = [CSV_BAD_ROW if e == "csv" else e for e in errors]
    records: list[dict[str, Any]] = []
    at: list[int] = []  # message index of each record
    out = Split(None)
    if "record" in raw.column_names:  # format = avro: decoded by Spark
        from featql.jobs.stream_avro import decode_batch

        decoded = decode_batch(raw)
    else:
        decoded = [(None, e) if e is not None else decode(v)
                   for v, e in zip(values, errors, strict=True)]
    for i, (rec, why) in enumerate(decoded):
        value = values[i]
        if rec is None:
            out.dead.append(SetAside(str(origins[i]), value, why or "not a record"))
            continue
        records.append(rec)
        at.append(i)
    table, bad = check_records(source, records)
    for j, reason in sorted(bad):
        out.dead.append(SetAside(str(origins[at[j]]), values[at[j]], reason))
    if table is None:
        return out
    if horizon is not None:
        bad_at = {j for j, _ in bad}
        kept = [j for j in range(len(records)) if j not in bad_at]  # the table's rows
        stamps = table.column(source.timestamp).to_pylist()
        old = [r for r, t in enumerate(stamps) if t is not None and t < horizon]
        for r in old:
            j = at[kept[r]]
            out.dead.append(SetAside(str(origins[j]), values[j], expired_reason(
                source, stamps[r], horizon)))
        if old:
            import pyarrow as pa

            gone = set(old)
            table = table.take(pa.array([r for r in range(table.num_rows) if r not in gone],
                                        pa.int64()))
            if table.num_rows == 0:
                return out
    out.events = table
    times = [t for t in table.column(source.timestamp).to_pylist() if t is not None]
    if times:
        out.oldest, out.newest = min(times), max(times)
    if watermark is not None and source.lateness_seconds is not None:
        limit = watermark - dt.timedelta(seconds=source.lateness_seconds)
        out.late = sum(1 for t in times if t < limit)
    return out


def expired_reason(source: Source, ts: Any, horizon: Any) -> str:
    return (f"event time {ts} is before {horizon}, the ingest ledger's retention behind the "
            f"newest event of source '{source.name}': its key may be forgotten, so it is set "
            "aside rather than risk counting it twice (featql.jobs.ingest_log)")


def set_aside_lines(items: list[SetAside]) -> str:
    return "".join(json.dumps({"origin": a.origin, "value": a.value, "reason": a.reason},
                              sort_keys=True) + "\n" for a in items)
