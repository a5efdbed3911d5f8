"""Can a stream view run incrementally? (issue 13, PRODUCT §2 "Streams")

A *stream view* is a view over a source that declares `stream = ...`. `featql stream` and the
push path run its SQL over each batch of new events (a Spark micro-batch, a pushed request)
with the batch semantics, then merge the result into the online store and the offline log. That
gives the batch answer only when the query's value for an event depends on that event alone:

- it reads one stream (its stream source, or a row-level stream view over it) and nothing
  else: a join to another source or view would be a join over time that one batch of events
  cannot see (`E902`);
- no window function (`OVER`): it would see only the events of its own batch (`E902`).

A view over a stream view is a stream view too: the write path runs each view over the events
its upstream rows came from (`featql.jobs.ingest.views_over`).

Reading an aggregate view is refused for every view (`E419`). Each refusal is positioned at
the table or the window and says what to do instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from featql.compiler.body import node_span
from featql.compiler.loader import ParsedFile
from featql.core.diagnostics import Diagnostics, Span
from featql.core.ir import FeatureView, Source


def check_incremental(f: ParsedFile, name: str, deps: list[str], refs: list[exp.Table],
                      sources: Mapping[str, Source], views: Mapping[str, FeatureView],
                      stream_views: set[str], diags: Diagnostics) -> bool:
    """False (with a positioned `E902`) when `name` reads a stream (a stream source or a
    stream view) but cannot run on batches of its events; True for every other view."""
    assert f.decl is not None
    whole = f.decl.span

    def at(table: str) -> Span:
        return next((node_span(f.src, t) for t in refs if t.name.lower() == table), whole)

    streamed = [d for d in deps if d in stream_views
                or (d in sources and sources[d].stream is not None)]
    if not streamed:
        return True
    stream = streamed[0]
    kind = "stream view" if stream in stream_views else "stream source"
    others = [d for d in deps if d != stream]
    if others:
        other = others[0]
        what = ("stream view" if other in stream_views else "stream source"
                if other in sources and sources[other].stream else
                "source" if other in sources else "feature view")
        diags.error("E902", f"stream view '{name}' joins {what} '{other}' to {kind} "
                    f"'{stream}': a batch of new events cannot see the other side's history, "
                    "so the view cannot run incrementally", at(other),
                    hint=f"read only '{stream}' here and put '{other}' in a view of its own; "
                    "combine them in a feature service or a request transform")
        return False
    stmt = f.statement
    window = next(iter(stmt.find_all(exp.Window)), None) if stmt is not None else None
    if window is not None:
        diags.error("E902", f"stream view '{name}' uses a window function (OVER): over a batch "
                    "of new events it would see only that batch",
                    node_span(f.src, window.this, node_span(f.src, window)),
                    hint="use an aggregate view with windows (windows = [...], slide = ...), "
                    "or compute it without OVER")
        return False
    return True
