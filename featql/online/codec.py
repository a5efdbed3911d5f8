"""What the online cells hold: row-level values and tile sets, and how they are read back.

- Row-level view cell: orjson `[event_us, created_us, [feature values...]]`, versioned by
  (event time, created, digest). TTL is applied when read, by `featql.semantics.rows.visible`
  (the lookup's row decoder).
- Aggregate view cell: a packed tile set versioned by the end of the materialized interval
  (`featql.online.tiles`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson

from featql.core.ir import FeatureView

_EPOCH = dt.datetime(1970, 1, 1)


def cell_name(view: FeatureView) -> str:
    """The store's name for a view's cells: a redefined view (new fingerprint) starts afresh."""
    return f"{view.name}@{view.fingerprint[:12]}"


def item_key(entity: str, keys: Sequence[Any]) -> str:
    """The store key of one entity instance: `user#[42]`, `pair#[1,"x"]`."""
    return entity + "#" + orjson.dumps(list(keys)).decode()


def to_micros(value: Any) -> int:
    """Microseconds since the epoch of a naive-UTC datetime (or an aware one), date, or int."""
    if isinstance(value, int):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, dt.date):
        return (value - _EPOCH.date()).days * 86_400_000_000
    raise TypeError(f"not a timestamp: {value!r}")


def from_micros(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)


def plain(value: Any) -> Any:
    """A JSON-ready value: timestamps as ISO strings, decimals as floats, NaN as NULL."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return plain(value.item())
    return str(value)


# -- row-level ---------------------------------------------------------------------------------
def encode_row(event_us: int, created_us: int | None, values: Sequence[Any]) -> bytes:
    return orjson.dumps([event_us, created_us, [plain(v) for v in values]])


def decode_row(payload: bytes) -> tuple[int, int | None, list[Any]]:
    event_us, created_us, values = orjson.loads(payload)
    return event_us, created_us, values

