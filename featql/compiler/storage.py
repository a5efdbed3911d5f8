"""Storage identities: what a view's stored offline data depends on, apart from its meaning.

A view's fingerprint changes whenever a feature's value can change, including through what
applies only when the data is *read*: the TTL (the point-in-time join and the online read drop
rows older than it) and, for an aggregate view, its windows (tiles are merged per window when
read). The stored rows and tiles depend on neither, so they are keyed by a separate
**storage fingerprint**: the canonical SQL, the header fields that shape the stored data (keys,
timestamp, slide, and whatever else the header carries) and the inputs' storage identities,
without the TTL and the windows. A TTL-only change keeps the stored data; so does a change
upstream that only changes what is read there.

Each stored column group gets an identity of its own (`FeatureView.stored`): per aggregation
of an aggregate view, the identity of its partial columns in every tile (the view's FROM,
WHERE and GROUP BY, keys, timestamp, slide, the function and its input, the inputs' storage
identities); per feature of a row-level view, its projection over the same context. Two
definitions whose groups have equal identities store equal values in those columns, which is
what lets an added aggregation be computed alone (`featql.registry.reuse`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlglot import exp

from featql.compiler.fingerprint import digest, projection_sql, source_fingerprint
from featql.compiler.typecheck import TypedView
from featql.core.ir import FeatureView, Source

READ_TIME = ("ttl", "windows")
"""Header fields applied when reading, never when storing."""


def upstream_storage(view: FeatureView, columns: set[str] | None) -> str:
    """What an upstream view's data means to a view reading `columns` of it: the stored
    identities of those features (read from its rows, never through its TTL)."""
    groups = dict(view.stored)
    feats = sorted((f.name, groups.get(f.aggregation or f.name, f.fingerprint))
                   for f in view.features if columns is None or f.name in columns)
    if not feats:  # reads keys / time only
        return view.stored_as
    keys = [(k.name, k.type) for k in view.keys]
    return digest("stored", view.name, keys, view.timestamp, feats)


def storage_upstream(deps: Sequence[str], read: Mapping[str, set[str]],
                     views: Mapping[str, FeatureView],
                     sources: Mapping[str, Source]) -> list[tuple[str, str]]:
    return sorted((d, upstream_storage(views[d], read.get(d)) if d in views
                   else source_fingerprint(sources[d], read.get(d))) for d in deps)


def stored_groups(canonical: exp.Expr, typed: TypedView, shared: str,
                  upstream: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """(group, identity) per aggregation (aggregate views) or feature (row views), in stored
    order; `shared` is the view's context SQL (its query with only keys [and time] kept)."""
    keys = [(k.name, k.type) for k in typed.keys]
    if typed.aggregations:
        return tuple((a.name, digest(
            "tiles", shared, keys, typed.timestamp, typed.slide, a.function,
            projection_sql(canonical, a.name), a.input_type, a.type,
            list(getattr(a, "args", ())), upstream)) for a in typed.aggregations)
    return tuple((c.name, digest("rows", shared, keys, typed.timestamp,
                                 projection_sql(canonical, c.name), c.type, upstream))
                 for c in typed.features)


def storage_fingerprint(sql: str, header: Mapping[str, Any], upstream: list[tuple[str, str]],
                        created: str | None) -> str:
    stored_header = {k: v for k, v in header.items() if k not in READ_TIME}
    return digest("storage", sql, stored_header, upstream, created)
