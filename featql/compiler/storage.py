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

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlglot import exp

from featql.compiler.fingerprint import digest, source_fingerprint
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


def stored_groups(typed: TypedView, shared: str,
                  upstream: Callable[[str], list[tuple[str, str]]],
                  projection: Callable[[str], str]) -> tuple[tuple[str, str], ...]:
    """(group, identity) per aggregation (aggregate views) or feature (row views), in stored
    order; `shared` is the view's context SQL (its query with only keys [and time] kept),
    `upstream(name)` the inputs as that group reads them (`group_upstream`), `projection(name)`
    the canonical SQL of a projection (`fingerprint.projection_sql`)."""
    keys = [(k.name, k.type) for k in typed.keys]
    if typed.aggregations:
        return tuple((a.name, digest(
            "tiles", shared, keys, typed.timestamp, typed.slide, a.function,
            projection(a.name), a.input_type, a.type,
            list(getattr(a, "args", ())), upstream(a.name))) for a in typed.aggregations)
    return tuple((c.name, digest("rows", shared, keys, typed.timestamp,
                                 projection(c.name), c.type, upstream(c.name)))
                 for c in typed.features)


def group_upstream(canonical: exp.Expr, keep: Sequence[str], deps: Sequence[str],
                   views: Mapping[str, FeatureView], sources: Mapping[str, Source],
                   whole: list[tuple[str, str]]) -> Callable[[str], list[tuple[str, str]]]:
    """Per stored group, its inputs' storage identities over the columns that group reads: the
    query's context (FROM, WHERE, GROUP BY, the `keep` projections) plus its own projection, so
    an aggregation over a column read by no other group changes no other group's identity.
    `whole` (the view's) for a query that is not one SELECT."""
    reads = _reads(canonical, keep)
    if reads is None:
        return lambda name: whole
    context, own = reads

    def upstream(name: str) -> list[tuple[str, str]]:
        mine = own.get(name, {})
        read = {t: context.get(t, set()) | mine.get(t, set()) for t in set(context) | set(mine)}
        return storage_upstream(deps, read, views, sources)

    return upstream


def _reads(canonical: exp.Expr, keep: Sequence[str],
           ) -> tuple[dict[str, set[str]], dict[str, dict[str, set[str]]]] | None:
    """(table -> columns) read by the context, and by each other projection on its own."""
    if not isinstance(canonical, exp.Select):
        return None
    tables = {n.alias_or_name.lower(): n.name.lower() for n in canonical.find_all(exp.Table)}
    own: dict[str, dict[str, set[str]]] = {}
    in_projection: set[int] = set()
    for p in canonical.selects:
        name = p.alias_or_name.lower()
        if name in keep:
            continue
        columns = list(p.find_all(exp.Column))
        in_projection.update(id(c) for c in columns)
        own[name] = _by_table(columns, tables)
    context = [c for c in canonical.find_all(exp.Column) if id(c) not in in_projection]
    return _by_table(context, tables), own


def _by_table(columns: list[exp.Column], tables: Mapping[str, str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for col in columns:
        table = tables.get(col.table.lower())
        if table is not None:
            out.setdefault(table, set()).add(col.name.lower())
    return out


def storage_fingerprint(sql: str, header: Mapping[str, Any], upstream: list[tuple[str, str]],
                        created: str | None) -> str:
    stored_header = {k: v for k, v in header.items() if k not in READ_TIME}
    return digest("storage", sql, stored_header, upstream, created)
