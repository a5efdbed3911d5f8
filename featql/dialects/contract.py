"""The columns a lowered view outputs: the contract between the generated SQL and the runtime.

- Row-level view: entity keys, the view's timestamp column (its own name), `_featql_created`
  (the source's `created` column, or a NULL TIMESTAMP), then the features in declaration order.
- Aggregate view: entity keys, `_tile_start` (the event time floored to the slide), then per
  aggregation, in declaration order, its mergeable partials `<agg>__<partial>`, as
  `featql.semantics.aggregates` defines them (count → `count`; sum → `sum`, `count` (non-NULL
  inputs, so an all-NULL window sums to NULL); avg → `sum` (DOUBLE), `count`; min → `min`;
  max → `max`). A `known_at` aggregate view has `_featql_known` after `_tile_start`: its
  tiles are keyed by (keys, `_tile_start`, `_featql_known`).
"""

from __future__ import annotations

from featql.core.ir import Column, FeatureView
from featql.semantics.aggregates import tile_columns, tile_partials

CREATED = "_featql_created"
TILE_START = "_tile_start"
KNOWN = "_featql_known"
"""A `known_at` aggregate view's tiles: when the partial became known (see stages.py)."""

__all__ = ["CREATED", "KNOWN", "TILE_START", "lowered_columns", "tile_partials"]


def lowered_columns(view: FeatureView) -> tuple[Column, ...]:
    """The output columns of `lower_view(..., view.name, ...)`, with their featql types."""
    if view.kind == "row":
        return (*view.keys, Column(view.timestamp, "TIMESTAMP"), Column(CREATED, "TIMESTAMP"),
                *(Column(f.name, f.type) for f in view.features))
    tiles = [Column(c, t) for c, t in tile_columns(view)]
    known = (Column(KNOWN, "TIMESTAMP"),) if view.known_at else ()
    return (*view.keys, Column(TILE_START, "TIMESTAMP"), *known, *tiles)
