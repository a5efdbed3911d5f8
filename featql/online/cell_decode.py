"""A view's cells -> its entries for a lookup: TTL for row views, tiles merged for aggregate
views, then the values the service outputs and the values its transforms read.

`items_decoder(view, merge, cell, pick, pick_env)` is built once per view of a service
(`lookup.build_reads`); it decodes all distinct items of a request in one loop. Payloads are
immutable bytes, so what a payload decodes to is kept per view (`CACHE_BYTES` of payloads, then
the cache starts over): a row's decoded values and its entry; an aggregate cell's entry for the
slide it was merged at (its merge depends on the slide only, `TileMerger.__call__`, but for a
known_at view's and a pushed cell's, which are never kept). An entry is kept only when its
values are scalars (a list value could be changed by a transform's hook); TTL and known-at
checks run on every lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from featql.core.ir import FeatureView
from featql.online import codec
from featql.online.stream_cells import MAGIC as STREAM_MAGIC
from featql.online.tiles import TileMerger
from featql.semantics.rows import known as rows_known
from featql.semantics.rows import visible as rows_visible

# (output values, transform inputs, event time served) of one entity item for one view
Entry = tuple[tuple[Any, ...], tuple[Any, ...], "str | None"]
# (item -> cells, distinct items, now) -> (item -> Entry, items whose head is for another slide,
# or, for a row-level view, whose stored row is not before `now`)
DecodeItems = Callable[[Callable[[str, Any], Any], Iterable[str], int],
                       tuple[dict[str, Entry], list[str]]]
Pick = Callable[[list[Any]], tuple[Any, ...]]

EMPTY: dict[str, bytes] = {}
CACHE_BYTES = 4 << 20  # payload bytes whose decoding is kept, per view
_SCALARS = frozenset({int, float, str, bool, type(None)})
_ISO: dict[int, str] = {}  # event time (us) -> ISO text: hot entities repeat their times


def items_decoder(view: FeatureView, merge: TileMerger | None, cell: str, pick: Pick,
                  pick_env: Pick) -> DecodeItems:
    """A view's cells -> its feature values at a time (TTL for row views, tiles merged by
    `merge` for aggregate views) -> `pick`/`pick_env`, for all distinct items of a request in
    one loop (the per-cell work of a 100-entity lookup)."""
    if merge is not None:
        return _aggregates(merge, cell, pick, pick_env)
    return _rows(view, cell, pick, pick_env)


def _aggregates(merge: TileMerger, cell: str, pick: Pick, pick_env: Pick) -> DecodeItems:
    empty = merge(None, 0) or []
    absent: Entry = (pick(empty), pick_env(empty), None)
    # an aggregate cell gives the same values for every `now` of one slide, but a known_at
    # view's and a pushed one's (stream_cells: its exact head ends at `now`)
    kept: dict[bytes, tuple[int, Entry]] = {}
    size = [0]
    cache = not merge.known_at
    scalars = _SCALARS

    def aggregates(get: Callable[[str, Any], Any], items: Iterable[str], now: int,
                   ) -> tuple[dict[str, Entry], list[str]]:
        out: dict[str, Entry] = {}
        missed: list[str] = []
        hi = merge.slide_start(now)
        for item in items:
            payload = get(item, EMPTY).get(cell)
            if payload is None:
                out[item] = absent
                continue
            hit = kept.get(payload) if type(payload) is bytes else None
            if hit is not None and hit[0] == hi:
                out[item] = hit[1]
                continue
            vals = merge(payload, now)
            if vals is None:  # a head made for another slide: the tiles are read next
                missed.append(item)
                continue
            entry = out[item] = (pick(vals), pick_env(vals), None)
            if cache and type(payload) is bytes and payload[:4] != STREAM_MAGIC \
                    and scalars.issuperset(map(type, vals)):
                size[0] += len(payload)
                if size[0] > CACHE_BYTES:
                    kept.clear()
                    size[0] = len(payload)
                kept[payload] = (hi, entry)
        return out, missed
    return aggregates


def _rows(view: FeatureView, cell: str, pick: Pick, pick_env: Pick) -> DecodeItems:
    nulls = [None] * len(view.features)
    hidden: Entry = (pick(nulls), pick_env(nulls), None)
    ttl = view.ttl_seconds
    decode_row, visible, from_micros, iso_cache = (codec.decode_row, rows_visible,
                                                   codec.from_micros, _ISO)
    known_at = view.known_at
    # payload -> (event us, created us, its entry): the visibility checks still run per lookup
    decoded: dict[bytes, tuple[int, int | None, Entry]] = {}
    size = [0]
    scalars = _SCALARS

    def rows(get: Callable[[str, Any], Any], items: Iterable[str], now: int,
             ) -> tuple[dict[str, Entry], list[str]]:
        out: dict[str, Entry] = {}
        newer: list[str] = []
        for item in items:
            payload = get(item, EMPTY).get(cell)
            if payload is None:
                out[item] = hidden
                continue
            hit = decoded.get(payload) if type(payload) is bytes else None
            if hit is None:
                event_us, created_us, values = decode_row(payload)
                entry = None
            else:
                event_us, created_us, entry = hit
            if known_at and not rows_known(created_us, now):
                # the kept row had not arrived by `now`: the row a training set would use at
                # `now` (an older one, or none) is not in the store, so this is never a guess
                out[item] = hidden
                newer.append(item)
                continue
            if not visible(event_us, now, ttl):
                out[item] = hidden
                if event_us >= now:  # the store holds a newer row than the one asked for
                    newer.append(item)
                continue
            if entry is None:
                iso = iso_cache.get(event_us)
                if iso is None:
                    if len(iso_cache) >= 1 << 16:
                        iso_cache.clear()
                    iso = iso_cache[event_us] = from_micros(event_us).isoformat()
                entry = (pick(values), pick_env(values), iso)
                if type(payload) is bytes and scalars.issuperset(map(type, values)):
                    size[0] += len(payload)
                    if size[0] > CACHE_BYTES:
                        decoded.clear()
                        size[0] = len(payload)
                    decoded[payload] = (event_us, created_us, entry)
            out[item] = entry
        return out, newer
    return rows
