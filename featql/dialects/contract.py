"""The columns a lowered view outputs: the contract between the generated SQL and the runtime.

- Row-level view: entity keys, the view's timestamp column (its own name), `_featql_created`
  (the source's `created` column, or a NULL TIMESTAMP), then the features in declaration order.
- Aggregate view: entity keys, `_tile_start` (the event time floored to the slide), then per
  aggregation, in declaration order, its mergeable partials: count → `<agg>__count`;
  sum → `<agg>__sum`, `<agg>__count` (non-NULL inputs, so an all-NULL window sums to NULL);
  avg → `<agg>__sum` (DOUBLE), `<agg>__count`; min → `<agg>__min`; max → `<agg>__max`.
"""

from __future__ import annotations

from featql.core.ir import Aggregation, Column, FeatureView

CREATED = "_featql_created"
TILE_START = "_tile_start"


def tile_partials(agg: Aggregation) -> tuple[tuple[str, str], ...]:
    """(partial, featql type) pairs of one aggregation, in output order."""
    if agg.function == "count":
        return (("count", "BIGINT"),)
    if agg.function == "sum":
        return (("sum", agg.type), ("count", "BIGINT"))
    if agg.function == "avg":
        return (("sum", "DOUBLE"), ("count", "BIGINT"))
    return ((agg.function, agg.type),)


def partial_column(agg: Aggregation, partial: str) -> str:
    return f"{agg.name}__{partial}"


def lowered_columns(view: FeatureView) -> tuple[Column, ...]:
    """The output columns of `lower_view(..., view.name, ...)`, with their featql types."""
    if view.kind == "row":
        return (*view.keys, Column(view.timestamp, "TIMESTAMP"), Column(CREATED, "TIMESTAMP"),
                *(Column(f.name, f.type) for f in view.features))
    tiles = [Column(partial_column(a, p), t) for a in view.aggregations
             for p, t in tile_partials(a)]
    return (*view.keys, Column(TILE_START, "TIMESTAMP"), *tiles)
