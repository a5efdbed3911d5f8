"""Fingerprints from canonical SQL: reformatting or renaming a table alias changes nothing.

The canonical form is the qualified query with every table alias renamed to a stable name
(the table's own name, numbered when a scope reads it twice; derived tables `_q1`, `_q2`, ...),
comparisons written with the constant on the right (`0 < amount` is `amount > 0`), `COUNT` of a
non-NULL constant written `COUNT(*)`, printed without comments in one normalised dialect. A
view's fingerprint also covers the header fields that change meaning (entity keys, timestamp,
TTL, windows, slide) and its inputs' fingerprints, so a change upstream changes everything
downstream.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.optimizer.scope import Scope, traverse_scope

from featql.compiler.body import READ_DIALECT
from featql.core.ir import FeatureView, Source
from featql.core.treecopy import light_copy

_DIALECT = Dialect.get_or_raise(READ_DIALECT)  # one instance (a name builds one per call)


def digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def canonicalize(q: exp.Expr) -> exp.Expr:
    """A copy of a qualified query with stable table aliases, constants on the right of
    comparisons, `COUNT(*)` for `COUNT(1)` (and no comments)."""
    q = light_copy(q)
    for scope in traverse_scope(q):
        _rename_scope(scope)
    return _normalize(q)


# a comparison with its operands swapped keeps its meaning under the mirrored operator
_MIRROR: dict[type[exp.Expr], type[exp.Binary]] = {
    exp.LT: exp.GT, exp.GT: exp.LT, exp.LTE: exp.GTE, exp.GTE: exp.LTE, exp.EQ: exp.EQ,
    exp.NEQ: exp.NEQ,
}


def _normalize(q: exp.Expr) -> exp.Expr:
    """Spellings of one meaning brought to one form, so a plan does not call them breaking."""
    swaps = [n for n in q.walk() if isinstance(n, exp.Binary) and type(n) in _MIRROR
             and _constant(n.left) and not _constant(n.right)]
    for node in swaps:
        mirrored = _MIRROR[type(node)](this=node.right, expression=node.left)
        if node is q:
            q = mirrored
        else:
            node.replace(mirrored)
    for count in q.find_all(exp.Count):
        arg = count.this
        if _constant(arg) and not isinstance(arg, exp.Null) and not (
                isinstance(arg, exp.Cast) and isinstance(arg.this, exp.Null)):
            count.set("this", exp.Star())
    return q


def _constant(node: exp.Expr | None) -> bool:
    """A literal, possibly negated or cast: the same value on every row."""
    while isinstance(node, exp.Neg | exp.Cast | exp.Paren):
        node = node.this
    return isinstance(node, exp.Literal | exp.Boolean | exp.Null)


def _rename_scope(scope: Scope) -> None:
    counts = Counter(s.name.lower() for _, s in scope.selected_sources.values()
                     if isinstance(s, exp.Table))
    used: Counter[str] = Counter()
    derived = 0
    renames: dict[str, str] = {}
    for alias, (node, source) in scope.selected_sources.items():
        if isinstance(source, exp.Table):
            base = source.name.lower()
            used[base] += 1
            new = base if counts[base] == 1 else f"{base}_{used[base]}"
        elif isinstance(node, exp.CTE):
            continue
        else:
            derived += 1
            new = f"_q{derived}"
        renames[alias] = new
        target = node if isinstance(node, exp.Table) else node.parent
        if isinstance(target, exp.Table | exp.Subquery):
            target.set("alias", exp.TableAlias(this=exp.to_identifier(new)))
    for col in scope.columns:
        if col.table in renames:
            col.set("table", exp.to_identifier(renames[col.table]))


def canonical_sql(q: exp.Expr) -> str:
    return canonicalize(q).sql(dialect=READ_DIALECT, normalize=True, comments=False, copy=False)


def context_sql(canonical: exp.Expr, keep: list[str]) -> str:
    """The query with only `keep` projected: what every feature of the view shares.

    The projections are swapped out of `canonical` for the time of one copy and put back,
    rather than copying the whole query first; SQL is generated from the copy.
    """
    if not isinstance(canonical, exp.Select):
        return _sql(canonical)
    projections = canonical.args.get("expressions") or []
    canonical.set("expressions", [p for p in projections if p.alias_or_name.lower() in keep])
    try:
        copy = light_copy(canonical)
    finally:
        canonical.set("expressions", projections)
    return _sql(copy, copy=False)


def projection_sql(canonical: exp.Expr, name: str) -> str:
    if isinstance(canonical, exp.Select):
        for p in canonical.selects:
            if p.alias_or_name.lower() == name:
                inner = p.this if isinstance(p, exp.Alias) else p
                return _sql(inner)
    # set operations and the like: every feature depends on the whole query
    return _sql(canonical)


def _sql(tree: exp.Expr, *, copy: bool = True) -> str:
    """Canonical SQL text of `tree`; generation may change the tree it reads, so unless told
    otherwise it reads a copy (a light one: `Expression.sql` would deep-copy)."""
    return (light_copy(tree) if copy else tree).sql(dialect=_DIALECT, normalize=True,
                                                     copy=False)


def columns_read(canonical: exp.Expr) -> dict[str, set[str]]:
    """table name -> the columns a (canonical, qualified) query reads from it."""
    alias_to_table: dict[str, str] = {}
    columns: list[exp.Column] = []
    for node in canonical.walk():  # one walk, in the order find_all would visit
        if isinstance(node, exp.Table):
            alias_to_table[node.alias_or_name.lower()] = node.name.lower()
        elif isinstance(node, exp.Column):
            columns.append(node)
    out: dict[str, set[str]] = {}
    for col in columns:
        table = alias_to_table.get(col.table.lower())
        if table is not None:
            out.setdefault(table, set()).add(col.name.lower())
    return out


def source_fingerprint(source: Source, columns: set[str] | None) -> str:
    """What a source means to a view reading `columns` of it: its data location, time columns
    and the types of those columns; not where it is declared, its metadata or other columns."""
    cols = sorted((c.name, c.type) for c in source.columns
                  if columns is None or c.name in columns)
    # known_at only when set: fingerprints of sources without it stay as they were
    known = ({"known_at": source.known_at},) if source.known_at is not None else ()
    # the stream settings likewise (kafka's topic and bootstrap are not in StreamSpec's repr)
    streams: list[dict[str, object]] = []
    if source.stream is not None and source.stream.topic is not None:
        streams.append({"kafka": [source.stream.topic, source.stream.bootstrap]})
    if source.key is not None or source.lateness_seconds is not None:
        streams.append({"key": source.key, "lateness": source.lateness_seconds})
    return digest(source.name, source.timestamp, source.created, source.batch, source.stream,
                  cols, *known, *streams)


def upstream_view_fingerprint(view: FeatureView, columns: set[str] | None) -> str:
    """What an upstream view means to a view reading `columns` of it: the fingerprints of
    those features (each covers the view's filters, keys, TTL and its own upstream)."""
    feats = sorted((f.name, f.fingerprint) for f in view.features
                   if columns is None or f.name in columns)
    if not feats:  # reads keys / time only
        return view.fingerprint
    keys = [(k.name, k.type) for k in view.keys]
    return digest(view.name, keys, view.timestamp, view.ttl_seconds, feats)
