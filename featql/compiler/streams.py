"""Can a stream view run incrementally? (issue 13, PRODUCT §2 "Streams")

A *stream view* is a view over a source that declares `stream = ...`. `featql stream` and the
push path run its SQL over each batch of new events (a Spark micro-batch, a pushed request)
with the batch semantics, then merge the result into the online store and the offline log. That
gives the batch answer only when the query's value for an event depends on that event alone:

- it reads its stream source and nothing else: a join to another source or view would be a
  join over time that one batch of events cannot see (`E902`);
- no view reads a stream view: the stream job and the push path run the views over the source
  itself, so a view over a stream view would be stale (`E902`);
- no window function (`OVER`): it would see only the events of its own batch (`E902`).

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


def stream_source_of(deps: list[str], sources: Mapping[str, Source]) -> Source | None:
    return next((sources[d] for d in deps if d in sources and sources[d].stream is not None),
                None)


def check_incremental(f: ParsedFile, name: str, deps: list[str], refs: list[exp.Table],
                      sources: Mapping[str, Source], views: Mapping[str, FeatureView],
                      stream_views: set[str], diags: Diagnostics) -> bool:
    """False (with a positioned `E902`) when `name` reads a stream but cannot run on batches
    of its events; True for every other view."""
    assert f.decl is not None
    whole = f.decl.span

    def at(table: str) -> Span:
        return next((node_span(f.src, t) for t in refs if t.name.lower() == table), whole)

    upstream_stream = [d for d in deps if d in stream_views]
    if upstream_stream:
        up = upstream_stream[0]
        src = stream_source_of(list(views[up].depends_on), sources)
        diags.error("E902", f"feature view '{name}' reads stream view '{up}': stream views "
                    "are updated one batch of events at a time, so a view over one would be "
                    "stale", at(up),
                    hint=f"read the source '{src.name if src else up}' directly, as '{up}' "
                    "does")
        return False
    stream = stream_source_of(deps, sources)
    if stream is None:
        return True
    others = [d for d in deps if d != stream.name]
    if others:
        other = others[0]
        what = "stream source" if other in sources and sources[other].stream else (
            "source" if other in sources else "feature view")
        diags.error("E902", f"stream view '{name}' joins {what} '{other}' to stream source "
                    f"'{stream.name}': a batch of new events cannot see the other side's "
                    "history, so the view cannot run incrementally", at(other),
                    hint=f"read only '{stream.name}' here and put '{other}' in a view of its "
                    "own; combine them in a feature service or a request transform")
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
