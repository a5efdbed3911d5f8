"""Column-level lineage: the last compiler stage, and the queries `featql lineage` runs on it.

In: the manifest and each view's qualified query (`TypedView.query.qualified`). Out: the manifest
with `lineage` filled, a sorted tuple of `LineageEdge(src, dst, kind)`.

Nodes are strings (all names are lowercase, as the compiler normalises them):
- `source.column` and `view.column`: a view's columns are its output columns (keys, the timestamp
  of a row view, features); a view's name carries its variant (`user_profile:v2.country`);
- `transform.output`, and `transform.request.field` for a request field a transform declares
  (the field belongs to the transform: two transforms may both declare `amount`);
- `service`, a feature service alone: it has no columns.
A CLI target is `NAME` or `NAME.COLUMN`, NAME being everything before the first dot.

Edge kinds: `value` (the column's value is computed from src), `filter` (WHERE, HAVING, QUALIFY,
ORDER BY under LIMIT: every output column of that SELECT depends on them), `join` (JOIN ON),
`group` (GROUP BY), `key` (the value of an entity key column), `time` (the value of a row view's
timestamp column; an aggregate view's timestamp input feeds every windowed feature), `service`
(a feature or transform output a service serves). Through a CTE, derived table or subquery a base
column keeps the role it plays in the SELECT that reads it, and only a pass-through value takes the
role of its outer use: a CTE column read in a JOIN ON makes the columns it is computed from join
columns, while the CTE's own WHERE columns stay filters.

Why not `sqlglot.lineage`: it follows projections only, so filter and join columns vanish; this
walk classifies every column a SELECT reads, scope by scope (CTEs, derived tables, subqueries,
set operations) down to base tables, which are sources or upstream views.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, build_scope

from featql.compiler.body import READ_DIALECT
from featql.core.diagnostics import did_you_mean
from featql.core.ir import FeatureView, LineageEdge, Manifest, RequestTransform, Source

if TYPE_CHECKING:
    from featql.compiler.typecheck import TypedView

EdgeKind = Literal["value", "filter", "join", "group", "key", "time", "service"]
Direction = Literal["upstream", "downstream"]
Dep = tuple[str, EdgeKind]  # (upstream node, how it is used)


def _compose(outer: EdgeKind, inner: EdgeKind) -> EdgeKind:
    """The kind of a base column read as `inner` by a derived column that is used as `outer`."""
    return outer if inner == "value" else inner


class _QueryWalk:
    """Dependencies of a qualified query's columns on its base tables' columns, memoised."""

    def __init__(self) -> None:
        self._outputs: dict[tuple[int, str], frozenset[Dep]] = {}
        self._clauses: dict[int, frozenset[Dep]] = {}

    def output(self, scope: Scope, name: str) -> frozenset[Dep]:
        """What output column `name` of `scope` depends on."""
        key = (id(scope), name)
        if key not in self._outputs:
            self._outputs[key] = frozenset()  # a recursive CTE reading itself stops here
            self._outputs[key] = self._output(scope, name)
        return self._outputs[key]

    def _output(self, scope: Scope, name: str) -> frozenset[Dep]:
        expr = scope.expression
        if scope.set_operation_scopes:  # UNION & co: column i of every branch, by position
            names = _names(expr)
            if name not in names:
                return frozenset()
            i = names.index(name)
            deps: set[Dep] = set()
            for branch in scope.set_operation_scopes:
                branch_names = _names(branch.expression)
                if i < len(branch_names):
                    deps |= self.output(branch, branch_names[i])
            return frozenset(deps)
        if not isinstance(expr, exp.Select):
            return frozenset()
        for proj in expr.selects:
            if proj.alias_or_name.lower() == name:
                return self.reads(scope, proj, "value") | self.clauses(scope)
        return frozenset()

    def clauses(self, scope: Scope) -> frozenset[Dep]:
        """What every output column of a SELECT depends on: its filters, joins and grouping."""
        if id(scope) not in self._clauses:
            expr = scope.expression
            parts: list[tuple[exp.Expr | None, EdgeKind]] = [
                (expr.args.get("where"), "filter"),
                (expr.args.get("having"), "filter"),
                (expr.args.get("qualify"), "filter"),
                (expr.args.get("group"), "group"),
            ]
            parts += [(j.args.get("on"), "join") for j in expr.args.get("joins") or []]
            if expr.args.get("limit") or expr.args.get("offset"):
                parts.append((expr.args.get("order"), "filter"))  # ORDER BY + LIMIT picks rows
            deps: set[Dep] = set()
            for node, kind in parts:
                if node is not None:
                    deps |= self.reads(scope, node, kind)
            self._clauses[id(scope)] = frozenset(deps)
        return self._clauses[id(scope)]

    def reads(self, scope: Scope, node: exp.Expr, kind: EdgeKind) -> frozenset[Dep]:
        """The base columns `node` (a part of `scope`) reads, used as `kind`."""
        own = scope.column_index  # columns of nested subqueries belong to their own scopes
        deps: set[Dep] = set()
        for col in node.find_all(exp.Column):
            if id(col) in own:
                deps |= self.column(scope, col, kind)
        for sub in scope.subquery_scopes:
            if _inside(sub.expression, node):
                for name in _names(sub.expression):
                    deps |= {(d, _compose(kind, k)) for d, k in self.output(sub, name)}
        return frozenset(deps)

    def column(self, scope: Scope, col: exp.Column, kind: EdgeKind) -> frozenset[Dep]:
        """Trace one qualified column to base columns, looking outwards for correlated ones."""
        source: exp.Table | Scope | None = None
        at: Scope | None = scope
        while at is not None and source is None:
            source = at.sources.get(col.table)
            at = at.parent
        name = col.name.lower()
        if isinstance(source, exp.Table):
            return frozenset({(f"{source.name.lower()}.{name}", kind)})
        if isinstance(source, Scope):
            return frozenset((d, _compose(kind, k)) for d, k in self.output(source, name))
        return frozenset()  # a table function or an unqualified pseudo-column: nothing to trace


def _names(expr: exp.Expr) -> list[str]:
    return [n.lower() for n in getattr(expr, "named_selects", [])]


def _inside(node: exp.Expr, ancestor: exp.Expr) -> bool:
    at: exp.Expr | None = node
    while at is not None:
        if at is ancestor:
            return True
        at = at.parent
    return False


def _relabel(deps: Iterable[Dep], kind: EdgeKind) -> set[Dep]:
    """Give the value edges of a key or timestamp column their own kind."""
    return {(d, kind if k == "value" else k) for d, k in deps}


def view_edges(view: FeatureView, query: exp.Expr,
               columns: Mapping[str, list[str]]) -> list[LineageEdge]:
    """The edges into `view`'s columns, from its qualified query (`TypedView.query.qualified`)
    or, equally, from its canonical SQL parsed again (`view.sql`: the same query with stable
    table aliases; `featql compile` computes lineage that way in its lowering worker).
    `columns`: table name → column names, for the sources and views it reads."""
    root = build_scope(query)
    if root is None:
        return []
    walk = _QueryWalk()
    keys = {k.name for k in view.keys}
    windowed = _time_deps(root, view.timestamp, columns, walk) if view.kind == "aggregate" else None
    per_column: dict[str, set[Dep]] = {}
    for col in view.output_columns:
        feature = view.feature(col.name)
        if windowed is not None and feature is not None:
            deps = set(walk.output(root, feature.aggregation or col.name)) | windowed
        else:
            deps = set(walk.output(root, col.name))
            if col.name in keys:
                deps = _relabel(deps, "key")
            elif col.name == view.timestamp:
                deps = _relabel(deps, "time")
        per_column[col.name] = deps
    return [LineageEdge(src, f"{view.name}.{name}", kind)
            for name, deps in per_column.items() for src, kind in deps]


def _time_deps(root: Scope, timestamp: str, columns: Mapping[str, list[str]],
               walk: _QueryWalk) -> frozenset[Dep]:
    """The input column an aggregate view windows over: the first FROM/JOIN source holding it."""
    for alias, (_, source) in root.selected_sources.items():
        if isinstance(source, exp.Table):
            names = columns.get(source.name.lower(), [])
        else:
            names = _names(source.expression)
        if timestamp in names:
            return walk.column(root, exp.column(timestamp, table=alias), "time")
    return frozenset()


def _sql_transform_reads(t: RequestTransform) -> dict[str, set[str]] | None:
    """Output -> nodes it reads, for a SQL transform; None when its SQL cannot be walked."""
    try:
        stmt = sqlglot.parse_one(t.sql or "", read=READ_DIALECT)
    except SqlglotError:
        return None
    if not isinstance(stmt, exp.Select):
        return None
    reads: dict[str, set[str]] = {}
    for proj in stmt.selects:
        nodes = reads.setdefault(proj.alias_or_name.lower(), set())
        for col in proj.find_all(exp.Column):
            table, name = col.table.lower(), col.name.lower()
            nodes.add(f"{t.name}.request.{name}" if table == "request" else f"{table}.{name}")
    return reads


def _transform_edges(t: RequestTransform) -> list[LineageEdge]:
    everything = {*t.inputs, *(f"{t.name}.request.{c.name}" for c in t.request)}
    reads = _sql_transform_reads(t) if t.language == "sql" else None
    edges: list[LineageEdge] = []
    for out in t.outputs:
        # Python code is opaque: every output may read every input and request field
        srcs = reads.get(out.name, everything) if reads is not None else everything
        edges.extend(LineageEdge(src, f"{t.name}.{out.name}", "value") for src in srcs)
    return edges


def table_columns(sources: Iterable[Source],
                  views: Iterable[FeatureView]) -> dict[str, list[str]]:
    """Table name → column names, for these sources and views (what `view_edges` reads)."""
    columns = {s.name: [c.name for c in s.columns] for s in sources}
    columns |= {v.name: [c.name for c in v.output_columns] for v in views}
    return columns


def build_lineage(manifest: Manifest, typed: Mapping[str, TypedView],
                  computed: Mapping[str, list[LineageEdge]] | None = None) -> Manifest:
    """The manifest with its column-level lineage edges, sorted by (dst, src, kind).
    `computed`: view name → its `view_edges`, already computed (elsewhere) for those views."""
    columns = table_columns(manifest.sources, manifest.views)
    computed = computed or {}
    edges: list[LineageEdge] = []
    for view in manifest.views:
        if view.name in computed:
            edges.extend(computed[view.name])
        elif view.name in typed:  # always, once compilation has no errors
            edges.extend(view_edges(view, typed[view.name].query.qualified, columns))
    for t in manifest.transforms:
        edges.extend(_transform_edges(t))
    transforms = {t.name: t for t in manifest.transforms}
    for s in manifest.services:
        served = [f"{r.view}.{r.feature}" for r in s.features]
        served += [f"{n}.{o.name}" for n in s.transforms if n in transforms
                   for o in transforms[n].outputs]
        edges.extend(LineageEdge(node, s.name, "service") for node in served)
    unique = sorted(set(edges), key=lambda e: (e.dst, e.src, e.kind))
    return replace(manifest, lineage=tuple(unique))


# -- queries: what `featql lineage NAME[.COLUMN] [--upstream|--downstream]` prints ---------------


@dataclass(frozen=True)
class LineageNode:
    """One node of a lineage tree.

    `kind` is how this node relates to its parent: one edge kind, or several joined by ", "
    (`filter, value`) when a column is used more than one way. The root's kind is its object
    kind (source, view, transform, service); the columns under a whole-object root have kind
    `column`. `repeated` marks a node whose subtree is shown earlier in the tree (or, for a
    malformed graph, a cycle): its children are left out.
    """

    name: str
    kind: str
    children: tuple[LineageNode, ...] = ()
    repeated: bool = False


ObjectKind = Literal["source", "view", "transform", "service"]


def _objects(manifest: Manifest) -> dict[str, tuple[ObjectKind, list[str]]]:
    """Traceable objects by name with their columns; sources, views, transforms win over a
    service of the same name (services live in their own namespace)."""
    objects: dict[str, tuple[ObjectKind, list[str]]] = {
        s.name: ("service", []) for s in manifest.services}
    objects |= {s.name: ("source", [c.name for c in s.columns]) for s in manifest.sources}
    objects |= {v.name: ("view", [c.name for c in v.output_columns]) for v in manifest.views}
    objects |= {t.name: ("transform", [c.name for c in t.outputs]
                         + [f"request.{c.name}" for c in t.request]) for t in manifest.transforms}
    return objects


def _split(objects: Mapping[str, object], target: str) -> tuple[str, str, bool]:
    """(NAME, COLUMN, has a column): NAME matched case-insensitively, COLUMN lowercased."""
    name, dot, column = target.strip().partition(".")
    if name not in objects:
        name = {n.lower(): n for n in objects}.get(name.lower(), name)
    return name, column.lower(), bool(dot)


def unknown_target(manifest: Manifest, target: str) -> str | None:
    """An error message (with a "did you mean") when `target` names nothing traceable."""
    objects = _objects(manifest)
    name, column, has_column = _split(objects, target)
    if name not in objects:
        if manifest.entity(name) is not None:
            return (f"'{name}' is an entity; trace a source, feature view, transform or service "
                    "that uses it")
        hint = did_you_mean(name, objects)
        return f"unknown source, feature view, transform or service '{name}'" + (
            f": {hint}" if hint else "")
    kind, cols = objects[name]
    if not has_column:
        return None
    if kind == "service":
        return f"service '{name}' has no columns: trace it as '{name}'"
    if column not in cols:
        hint = did_you_mean(column, cols)
        shown = "feature view" if kind == "view" else kind
        return f"{shown} '{name}' has no column '{column}'" + (
            f": {hint}" if hint else f"; its columns: {', '.join(cols)}")
    return None


def _graph(edges: Iterable[LineageEdge], direction: Direction) -> dict[str, list[tuple[str, str]]]:
    """Node -> sorted (neighbour, kinds) in `direction`, the kinds of parallel edges merged."""
    merged: dict[str, dict[str, set[str]]] = {}
    for e in edges:
        a, b = (e.dst, e.src) if direction == "upstream" else (e.src, e.dst)
        merged.setdefault(a, {}).setdefault(b, set()).add(e.kind)
    return {a: sorted((b, ", ".join(sorted(kinds))) for b, kinds in nbrs.items())
            for a, nbrs in merged.items()}


def _expand(node: str, kind: str, graph: Mapping[str, list[tuple[str, str]]],
            path: tuple[str, ...], expanded: set[str]) -> LineageNode:
    nbrs = graph.get(node, [])
    if node in path or (nbrs and node in expanded):
        return LineageNode(node, kind, (), repeated=True)
    expanded.add(node)
    inner = (*path, node)
    return LineageNode(node, kind, tuple(_expand(n, k, graph, inner, expanded) for n, k in nbrs))


def trace(manifest: Manifest, target: str, direction: Direction) -> LineageNode:
    """The lineage tree of `NAME` (all its columns) or `NAME.COLUMN`, upstream or downstream.

    Raises ValueError (with `unknown_target`'s message) when the target names nothing.
    """
    problem = unknown_target(manifest, target)
    if problem is not None:
        raise ValueError(problem)
    objects = _objects(manifest)
    name, column, has_column = _split(objects, target)
    kind, cols = objects[name]
    graph = _graph(manifest.lineage, direction)
    expanded: set[str] = set()
    if kind == "service":
        return _expand(name, kind, graph, (), expanded)
    if has_column:
        return _expand(f"{name}.{column}", kind, graph, (), expanded)
    # a transform as a whole is its outputs; its request fields are traced one by one
    whole = [c for c in cols if not c.startswith("request.")]
    return LineageNode(name, kind, tuple(
        _expand(f"{name}.{c}", "column", graph, (), expanded) for c in whole))


def render_tree(node: LineageNode) -> list[str]:
    """Plain-text lines with box-drawing connectors, the root first; no markup, no colour."""
    lines = [_label(node, root=True)]
    _render_children(node, "", lines)
    return lines


def _render_children(node: LineageNode, prefix: str, lines: list[str]) -> None:
    for i, child in enumerate(node.children):
        last = i == len(node.children) - 1
        lines.append(f"{prefix}{'└── ' if last else '├── '}{_label(child, root=False)}")
        _render_children(child, prefix + ("    " if last else "│   "), lines)


def _label(node: LineageNode, *, root: bool) -> str:
    label = node.name if root or node.kind == "column" else f"{node.name}  ({node.kind})"
    return f"{label}  (see above)" if node.repeated else label


__all__ = ["LineageNode", "build_lineage", "render_tree", "table_columns", "trace",
           "unknown_target", "view_edges"]
