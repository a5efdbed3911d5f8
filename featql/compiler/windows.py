"""Leakage through window functions: a feature computed at event time t may read only events
at or before t.

A window function in a feature query sees the other rows of its partition. It stays on the
right side of time only when it is ordered by the view's event time, ascending, and its frame
ends at the current row. This pass reports, once per window:

- E602 `LEAD` ordered by time (or `LAG` ordered by time descending): it returns a later event;
- E603 a frame that reaches `FOLLOWING` rows (or `PRECEDING` rows when ordered descending);
- E604 a window not ordered by the event time, ascending: with no ORDER BY an aggregate or a
  value function spans the whole partition, and ordered by anything else its rows come from
  any time;
- E605 `NTILE`, `PERCENT_RANK`, `CUME_DIST`: they depend on the size of the whole partition.
"""

from __future__ import annotations

from sqlglot import exp

from featql.compiler.body import node_span
from featql.core.diagnostics import Diagnostics, SourceFile, Span

_PARTITION_SIZED: dict[type, str] = {
    exp.Ntile: "NTILE", exp.PercentRank: "PERCENT_RANK", exp.CumeDist: "CUME_DIST",
}
_NULLS = (exp.IgnoreNulls, exp.RespectNulls)
_AFTER = "the feature at event time t would use events from after t"


def lint_windows(src: SourceFile, stmt: exp.Expression, timestamp: str | None,
                 diags: Diagnostics) -> None:
    """Report window functions of a feature query that can read later events."""
    for window in stmt.find_all(exp.Window):
        func = window.this
        while isinstance(func, _NULLS):
            func = func.this
        at = node_span(src, func, node_span(src, window))
        problem = _problem(window, func, timestamp)
        if problem is None:
            continue
        code, message, hint = problem
        if code == "E603":
            at = _keyword_after(src, "FOLLOWING" if "FOLLOWING rows:" in message else "DESC",
                                at) or at
        elif code == "E604" and window.args.get("order"):
            first = window.args["order"].expressions[0]
            at = node_span(src, first.this, at)
        diags.error(code, message, at, hint=hint)


def _problem(window: exp.Window, func: exp.Expr, timestamp: str | None
             ) -> tuple[str, str, str] | None:
    for cls, name in _PARTITION_SIZED.items():
        if isinstance(func, cls):
            return ("E605", f"{name} depends on the size of the whole partition, later events "
                    "included", "compute it from earlier events: COUNT(*) OVER (... ORDER BY "
                    f"{timestamp or 'the event time'}) counts the events so far")
    order = window.args.get("order")
    keys = order.expressions if order else []
    by_time = bool(keys) and _is_column(keys[0].this, timestamp)
    descending = bool(keys) and bool(keys[0].args.get("desc"))
    shown = timestamp or "the event time"
    if isinstance(func, (exp.Lead, exp.Lag)) and by_time:
        later = isinstance(func, exp.Lead) != descending
        if not later:
            return None
        name = "LEAD" if isinstance(func, exp.Lead) else "LAG"
        return ("E602", f"{name} reads a later row: {_AFTER}",
                f"use LAG(...) OVER (... ORDER BY {shown}), the previous event, or an "
                "aggregate view with windows")
    if not by_time:
        what = ("window has no ORDER BY: it spans every event of its partition, later ones "
                "included" if not keys else
                f"window is not ordered by the event time '{shown}': its rows can come from "
                "after the event")
        return ("E604", what, f"order the window by {shown} (ascending), with a frame that "
                "ends at CURRENT ROW")
    if descending:
        return ("E603", f"window ordered by {shown} DESC reaches PRECEDING rows, which are later "
                f"events: {_AFTER}", f"order by {shown} ascending")
    spec = window.args.get("spec")
    if spec is not None and "FOLLOWING" in (spec.args.get("start_side"),
                                             spec.args.get("end_side")):
        return ("E603", f"window frame reaches FOLLOWING rows: {_AFTER}",
                "end the frame at CURRENT ROW: ROWS BETWEEN n PRECEDING AND CURRENT ROW")
    return None


def _is_column(node: exp.Expr, name: str | None) -> bool:
    return isinstance(node, exp.Column) and name is not None and node.name.lower() == name.lower()


def _keyword_after(src: SourceFile, keyword: str, after: Span) -> Span | None:
    """The first `keyword` at or after a span's start (frame keywords carry no position)."""
    import re

    hit = re.compile(rf"(?i)\b{keyword}\b").search(src.text, after.start)
    return src.span(hit.start(), hit.end()) if hit else None
