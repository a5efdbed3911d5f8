"""The online-store contract: a versioned key-value map, last-writer-wins per (entity, view).

Every store holds one *cell* per (entity item, view): an opaque payload plus a version string.
A write replaces the cell only when its version is strictly greater than the stored one, as one
atomic conditional operation, so the final state never depends on the order or concurrency of
writers. What the payload means (a row-level value, a tile set) is decided one layer up
(`featql.online.codec`); versions are fixed-width hex strings that compare like the tuple they
encode (see `version`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from featql.core.errors import UserError

# Offsets map signed 64-bit microseconds onto unsigned ones, so hex strings sort like numbers.
_OFFSET = 1 << 63
STATE_PREFIX = "__state__#"


def version(primary_us: int, secondary_us: int | None, payload: bytes) -> str:
    """A comparable version: (primary, secondary or lowest, payload digest) as fixed-width hex.

    For row-level values primary/secondary are the event time and the created time (NULL
    created sorts lowest); the digest makes full ties deterministic (the same winner whatever the
    order). For tile sets primary is the end of the materialized interval they cover.
    """
    second = 0 if secondary_us is None else secondary_us + _OFFSET
    digest = hashlib.blake2b(payload, digest_size=8).hexdigest()
    return f"{primary_us + _OFFSET:016x}{second:016x}{digest}"


@dataclass(frozen=True)
class Cell:
    """One conditional write: entity item key, view, version, payload."""

    item: str
    view: str
    version: str
    payload: bytes


@dataclass(frozen=True)
class WriteReport:
    written: int  # cells that replaced an older (or absent) value
    skipped: int  # cells whose version was not newer than the stored one
    by_view: dict[str, tuple[int, int]] = field(default_factory=dict)  # view -> (written, skipped)

    @staticmethod
    def of(outcomes: Iterable[tuple[str, bool]]) -> WriteReport:
        by_view: dict[str, list[int]] = {}
        for view, ok in outcomes:
            by_view.setdefault(view, [0, 0])[0 if ok else 1] += 1
        return WriteReport(sum(w for w, _ in by_view.values()),
                           sum(s for _, s in by_view.values()),
                           {v: (w, s) for v, (w, s) in by_view.items()})


class OnlineStoreError(UserError):
    """The store could not answer (unreachable, throttled beyond retries, misconfigured)."""


class OnlineStore(Protocol):
    """What the loader and the server need from a store."""

    kind: str

    def write(self, cells: Iterable[Cell]) -> WriteReport:
        """Write cells, each kept only if newer than what is stored (atomic per cell)."""
        ...

    def read(self, items: Sequence[str], views: Sequence[str],
             full: Collection[str] = ()) -> dict[str, dict[str, bytes]]:
        """Payloads of `views` for `items` in one round trip: item -> view -> payload.

        Absent items or views are simply missing from the answer; nothing is dropped silently
        (a store that cannot answer for a key raises OnlineStoreError). A store may answer an
        aggregate cell that carries values merged at load with its head only
        (`featql.online.tiles.split_merged`), which serves lookups in the slide after the load;
        views named in `full` are answered with their tiles.
        """
        ...

    def get_state(self, name: str) -> bytes | None:
        """Loader bookkeeping (e.g. how far a view was loaded), stored beside the data."""
        ...

    def put_state(self, name: str, payload: bytes) -> None: ...

    def drop(self) -> None:
        """Delete everything this store holds for its workspace."""
        ...

    def close(self) -> None: ...
