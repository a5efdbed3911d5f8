"""Which stored columns a new definition of a view can take from data stored for an older one.

Stored data is keyed by the view's storage fingerprint (`FeatureView.stored_as`). A new
definition with another storage fingerprint needs its own data, but not always computed from
scratch: each stored column group has an identity (`FeatureView.stored`, see
`featql.compiler.storage`), and a group whose identity is unchanged holds the same values.

- **Aggregate views** store tiles: one row per (keys, tile start), with the partial columns of
  every aggregation. The rows a tile set has depend only on the view's FROM, WHERE and GROUP BY
  (which every group identity covers), so when some groups are unchanged, an interval of the
  new definition is the old interval's tiles (those groups' columns) joined by (keys, tile
  start) with the partials of the other groups, computed alone (`featql.jobs.reuse`).
- **Row-level views** store one row per (keys, event time): the tie winner, by `created` and
  then by the whole feature tuple (`featql.semantics.rows`). A new column is part of that tuple
  and its value is the winning row's, which only a query over every column can find, so a
  row-level view is always recomputed whole (`ROW_VIEW_REASON`, which the plan prints).

The plan (`featql.registry.planner`) and the offline engine (`featql.jobs.reuse`) decide with
`reuse_from`, from the same identities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from featql.core.ir import FeatureView

ROW_VIEW_REASON = (
    "a row-level view keeps one row per (keys, time), the tie winner by created and then the "
    "whole feature tuple, so an added column's value comes from the winning row, which only "
    "a query over every column finds")


@dataclass(frozen=True)
class Reuse:
    """Compute `computed` and take `kept` from the data stored under `base`."""

    view: str
    base: str  # the storage fingerprint whose stored data is read
    kept: tuple[str, ...]  # column groups (aggregations) read from it
    computed: tuple[str, ...]  # column groups computed from the sources
    kept_features: tuple[str, ...] = ()  # the new definition's features of those groups
    computed_features: tuple[str, ...] = ()


def reuse_from(new: FeatureView, base: str, base_kind: str,
               base_stored: Sequence[tuple[str, str]]) -> Reuse | str | None:
    """How `new` can be computed from data stored under `base` (whose column groups are
    `base_stored`): a `Reuse`, a reason why it cannot (a row-level view), or None when the two
    share no stored column (or are the same data)."""
    if base == new.stored_as or not new.stored or not base_stored:
        return None
    old = dict(base_stored)
    kept = tuple(g for g, ident in new.stored if old.get(g) == ident)
    if not kept:
        return None
    if new.kind != "aggregate" or base_kind != "aggregate":
        return ROW_VIEW_REASON
    computed = tuple(g for g, _ in new.stored if g not in kept)
    return Reuse(new.name, base, kept, computed, _features(new, kept), _features(new, computed))


def _features(view: FeatureView, groups: Sequence[str]) -> tuple[str, ...]:
    return tuple(f.name for f in view.features if (f.aggregation or f.name) in groups)
