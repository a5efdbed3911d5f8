"""An aggregate view's *events*: its rows after FROM, joins and WHERE, before tiling.

The stream window rule (PRODUCT §3, `[floor(t,S) - W, t)`) needs the exact head of a window:
the input values of each event with its own event time, not only the tiles. `lower_events`
renders the view's `filtered_events` stage (the same tree `lower_view` tiles, so the same WHERE,
joins and input expressions) with the raw event time added, and selects it:

    keys · `_event_ts` (the view's timestamp) · `_tile_start` · `<agg>__input` per aggregation
    with an input (COUNT(*) has none: every event counts)

The push path (`featql.jobs.ingest`) runs it over a batch of records; training sets of stream
views run it over the source's log. Nothing here is golden: `lower_view` is unchanged.
"""

from __future__ import annotations

from sqlglot import exp

from featql.core.diagnostics import Span
from featql.core.ir import Manifest
from featql.dialects.contract import TILE_START
from featql.dialects.errors import Target
from featql.dialects.expressions import TimeFloor
from featql.dialects.lower import _render
from featql.dialects.scope import names
from featql.dialects.stages import Stage, Stages, stage_view

EVENT_TS = "_event_ts"


def input_column(aggregation: str) -> str:
    """The per-event input column of one aggregation (`<agg>__input`)."""
    return f"{aggregation}__input"


def lower_events(manifest: Manifest, view_name: str, target: Target = "duckdb") -> str:
    """The SQL of an aggregate view's per-event rows on `target` (see the module doc)."""
    view = names(manifest).views.get(view_name)
    if view is None:
        raise KeyError(f"no feature view {view_name!r} in the manifest")
    if view.kind != "aggregate":
        raise ValueError(f"feature view {view_name!r} is not an aggregate view")
    span = Span(view.location.path, view.location.line, view.location.col)
    plan = stage_view(manifest, view, span)
    stages = list(plan.stages)
    at = next(i for i, s in enumerate(stages) if s.name == "filtered_events")
    events = stages[at].query
    floor = next(e for e in events.expressions
                 if isinstance(e, exp.Alias) and e.alias == TILE_START)
    assert isinstance(floor.this, TimeFloor), "the tile start is a TimeFloor of the timestamp"
    ts = floor.this.this.copy()
    events.set("expressions", [*events.expressions, exp.alias_(ts, EVENT_TS)])
    final = exp.select("*").from_("filtered_events")
    kept = (*stages[:at + 1], Stage(None, "each event with its own time", final))
    return _render(Stages(kept, plan.recursive), view, target, span, last=True)
