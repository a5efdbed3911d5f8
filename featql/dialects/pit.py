"""The point-in-time join node: what a training set asks of an engine (PRODUCT §3).

`build_pit_join(manifest, service, spine_schema, timestamp)` turns a feature service and a
spine's schema into one `PointInTimeJoin`; each engine lowers it (DuckDB: `ASOF LEFT JOIN`,
Spark: a window plan). The node names relations, not files: the runtime registers, per view, a
relation holding the view's rows (row-level views) or its tiles (aggregate views), read either
from the sources (through the dialect's SQL) or from the offline store.

Semantics every lowering implements (defined in `featql.semantics`: `rows` for the tie-break and
TTL, `time` for floor(t, S) and the windows, `aggregates` for each function's merge):
- row-level view: the row with the greatest event time `ts < t`, ties on `ts` broken by the
  greatest `_featql_created`, then by the greatest feature tuple (features in declaration
  order; NULL is the smallest value at every position); its features are returned when
  `t - ts <= ttl`, else NULL. A NULL in that row stays NULL.
  A `known_at` view (PRODUCT §3 "as known at") sees only rows with `_featql_created <= t`
  (a NULL created: never); among them the same rule.
- aggregate view: tiles with `floor(t, S) - W <= _tile_start < floor(t, S)` merged; COUNT of an
  empty window is 0, every other function NULL; avg = sum / count.
  A `known_at` view's tiles have several partials per tile, keyed by `_featql_known` (when
  its events were known: the tile's end, or a later created; NULL created: never); those with
  `_featql_known <= t` are merged, in (`_tile_start`, `_featql_known`) order.
- rows of the spine whose key or timestamp is NULL get NULL features; no spine row is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from featql.core.diagnostics import did_you_mean
from featql.core.errors import UserError
from featql.core.ir import FeatureService, Manifest

RID = "_featql_rid"
"""Spine row number (0-based): the engines return feature columns in this order."""
SPINE_TS = "_featql_t"
"""The spine timestamp as TIMESTAMP (microseconds, no zone), the time each row asks about."""
CREATED = "_featql_created"
TILE_START = "_tile_start"
KNOWN = "_featql_known"


@dataclass(frozen=True)
class OutputFeature:
    """One output column: a view feature (row-level) or an aggregation over a window."""

    feature: str
    column: str  # <view>__<feature>
    type: str  # featql type
    function: str | None = None  # aggregate views: count | sum | avg | min | max
    aggregation: str | None = None  # aggregate views: the tile partial prefix
    window_seconds: int | None = None
    args: tuple[int | float, ...] = ()  # aggregate views: the function's constant arguments


@dataclass(frozen=True)
class ViewJoin:
    """How one view joins the spine."""

    view: str
    kind: str  # row | aggregate
    relation: str  # registered relation name: rows or tiles of the view
    keys: tuple[str, ...]  # join keys, named identically in the spine and the relation
    timestamp: str  # row-level: the relation's event-time column; aggregate: _tile_start
    features: tuple[OutputFeature, ...]
    tiebreak: tuple[str, ...] = ()  # row-level: every feature of the view, in order
    ttl_seconds: int | None = None
    slide_seconds: int | None = None
    unique: bool = False  # row-level: at most one row per (keys, ts) (the offline store's rows)
    verify: bool = False  # row-level, with unique: not known; check the matched rows afterwards
    # a row (row-level) or a tile's partial (aggregate: its `_featql_known`) is visible at t
    # only when created (known) <= t
    known_at: bool = False


@dataclass(frozen=True)
class PointInTimeJoin:
    """One training-set query: the spine (RID, keys, SPINE_TS) joined to each view."""

    keys: tuple[str, ...]
    views: tuple[ViewJoin, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.column for v in self.views for f in v.features)


def relation_name(view: str, kind: str) -> str:
    """The relation a view's rows (or tiles) are registered under for a training set."""
    return f"_featql_{'tiles' if kind == 'aggregate' else 'rows'}_{view.replace(':', '_')}"


def build_pit_join(manifest: Manifest, service: FeatureService,
                       extra: tuple[tuple[str, str], ...] = ()) -> PointInTimeJoin:
    """The join node of a service; `extra` adds (view, feature) pairs (request-transform inputs)
    that are fetched as well (their columns are named like any other)."""
    wanted: dict[str, list[tuple[str, str]]] = {}
    seen: set[tuple[str, str]] = set()
    for ref in service.features:
        pair = (ref.view, ref.feature)
        if pair not in seen:
            seen.add(pair)
            wanted.setdefault(ref.view, []).append(pair)
    for pair in extra:
        if pair not in seen:
            seen.add(pair)
            wanted.setdefault(pair[0], []).append(pair)
    joins: list[ViewJoin] = []
    for view_name, pairs in wanted.items():
        view = manifest.view(view_name)
        if view is None:
            raise UserError(f"service '{service.name}' needs unknown view '{view_name}'")
        outs: list[OutputFeature] = []
        aggs = {a.name: a for a in view.aggregations}
        for _, fname in pairs:
            feat = view.feature(fname)
            if feat is None:
                raise UserError(f"view '{view_name}' has no feature '{fname}'")
            column = f"{view_name.replace(':', '_')}__{fname}"
            if view.kind == "aggregate":
                agg = aggs[feat.aggregation or ""]
                outs.append(OutputFeature(fname, column, feat.type, agg.function, agg.name,
                                          feat.window_seconds, agg.args))
            else:
                outs.append(OutputFeature(fname, column, feat.type))
        keys = tuple(k.name for k in view.keys)
        if view.kind == "aggregate":
            joins.append(ViewJoin(view.name, "aggregate", relation_name(view.name, "aggregate"),
                                  keys, TILE_START, tuple(outs),
                                  slide_seconds=view.slide_seconds or view.schedule_seconds,
                                  known_at=view.known_at))
        else:
            joins.append(ViewJoin(view.name, "row", relation_name(view.name, "row"), keys,
                                  view.timestamp, tuple(outs),
                                  tiebreak=tuple(f.name for f in view.features),
                                  ttl_seconds=view.ttl_seconds, known_at=view.known_at))
    keys = tuple(dict.fromkeys(k for j in joins for k in j.keys))
    return PointInTimeJoin(keys, tuple(joins))


def spine_timestamp(schema: pa.Schema, keys: tuple[str, ...], named: str | None) -> str:
    """The spine's timestamp column: `named`, or its only timestamp/date column."""
    names = list(schema.names)
    if named is not None:
        if named not in names:
            raise UserError(f"the spine has no column '{named}'"
                            + _hint(did_you_mean(named, names)))
        return named
    candidates = [f.name for f in schema
                  if (pa.types.is_timestamp(f.type) or pa.types.is_date(f.type))
                  and f.name not in keys]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise UserError("the spine has no timestamp column; it needs one TIMESTAMP column "
                        "(the time each row asks about)")
    raise UserError(f"the spine has several timestamp columns ({', '.join(candidates)}); "
                    "name the one to use with --timestamp COL (timestamp= in Python)")


def check_spine(schema: pa.Schema, node: PointInTimeJoin) -> None:
    names = list(schema.names)
    for key in node.keys:
        if key not in names:
            raise UserError(f"the spine lacks the key column '{key}' the service joins on"
                            + _hint(did_you_mean(key, names)))
    clash = [c for c in node.columns if c in names]
    if clash:
        raise UserError(f"the spine already has a column named '{clash[0]}', which the "
                        "training set would add; rename it")
    internal = [n for n in names if n.startswith("_featql_")]
    if internal:
        raise UserError(f"spine column '{internal[0]}' uses the reserved prefix _featql_")


def _hint(h: str | None) -> str:
    return f" ({h})" if h else ""
