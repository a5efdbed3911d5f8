"""What a SELECT reads: its FROM/JOIN relations, their column types, and the created column.

Small lookups over the canonical query (every column qualified by its table alias, see
`featql.compiler.fingerprint`), used by `stages.py` to avoid casts that change nothing, to find
an aggregate view's timestamp column and to carry a source's `created` column up to the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from featql.core.diagnostics import Span
from featql.core.ir import FeatureView, Manifest, Source
from featql.dialects.contract import CREATED
from featql.dialects.errors import refuse


@dataclass(frozen=True)
class Names:
    """A manifest's views and sources by name: `Manifest.view`/`.source` scan, once per call."""

    manifest: Manifest
    views: dict[str, FeatureView]
    sources: dict[str, Source]


_names: Names | None = None  # of the manifest lowered last (lowering goes manifest by manifest)


def names(manifest: Manifest) -> Names:
    """The index of `manifest` (the first object of a name wins, as in `Manifest.view`)."""
    global _names
    if _names is None or _names.manifest is not manifest:
        views: dict[str, FeatureView] = {}
        sources: dict[str, Source] = {}
        for v in manifest.views:
            views.setdefault(v.name, v)
        for s in manifest.sources:
            sources.setdefault(s.name, s)
        _names = Names(manifest, views, sources)
    return _names


@dataclass
class Scope:
    manifest: Manifest
    view: FeatureView
    span: Span
    ctes: dict[str, exp.Query] = field(default_factory=dict)  # the view's own CTEs, by name

    def relations(self, sel: exp.Select) -> list[tuple[str, exp.Expr]]:
        """(alias, relation) of the FROM clause and each JOIN, in order."""
        from_ = sel.args.get("from_")
        nodes = ([from_.this] if from_ is not None else []) + [
            j.this for j in sel.args.get("joins") or []]
        return [(n.alias_or_name.lower(), n) for n in nodes]

    def relation_columns(self, rel: exp.Expr) -> dict[str, exp.Expr | str]:
        """Column name → featql type (tables) or defining expression (subqueries, CTEs)."""
        query: exp.Expr | None = None
        if isinstance(rel, exp.Table):
            name = rel.name.lower()
            if name in self.ctes and not rel.db:
                query = self.ctes[name]
            else:
                return self._table_columns(name)
        elif isinstance(rel, exp.Subquery):
            query = rel.this
        if isinstance(query, exp.Select):
            return {p.alias_or_name.lower(): (p.this if isinstance(p, exp.Alias) else p)
                    for p in query.selects}
        if isinstance(query, exp.Query):
            return {n.lower(): "UNKNOWN" for n in query.named_selects}
        return {}

    def _table_columns(self, name: str) -> dict[str, exp.Expr | str]:
        index = names(self.manifest)
        source = index.sources.get(name)
        if source is not None:
            return {c.name.lower(): c.type for c in source.columns}
        view = index.views.get(name)
        if view is not None:
            return {c.name.lower(): c.type for c in view.output_columns}
        return {}

    def known_type(self, expr: exp.Expr, sel: exp.Select, depth: int = 0) -> str | None:
        """featql type of `expr` when every engine agrees on it, else None.

        That is a plain column reference we can follow to a typed table column, or a predicate
        (comparison, IN, IS, LIKE, AND/OR/NOT, TRUE/FALSE), which is BOOLEAN everywhere.
        """
        if isinstance(expr, exp.Predicate | exp.Connector | exp.Not | exp.Boolean):
            return "BOOLEAN"
        if not isinstance(expr, exp.Column) or not expr.table or depth > 8:
            return None
        for alias, rel in self.relations(sel):
            if alias != expr.table.lower():
                continue
            found = self.relation_columns(rel).get(expr.name.lower())
            if isinstance(found, str):
                return None if found == "UNKNOWN" else found
            inner = rel.this if isinstance(rel, exp.Subquery) else self.ctes.get(rel.name.lower())
            if found is not None and isinstance(inner, exp.Select):
                return self.known_type(found, inner, depth + 1)
        return None

    def input_column(self, sel: exp.Select, name: str) -> exp.Column | None:
        """`name` qualified by the first FROM/JOIN relation that has it (as type-check does)."""
        for alias, rel in self.relations(sel):
            if name.lower() in self.relation_columns(rel):
                return exp.column(name, table=alias)
        return None

    def carry_created(self, query: exp.Expr, source: str, column: str) -> None:
        """Add `<source>.<column> AS _featql_created` to the query, through derived tables.

        Only where adding a column cannot change the rows: no UNION, GROUP BY, DISTINCT,
        aggregate or JOIN on the way down to the one SELECT that reads the source.
        """
        sel: exp.Expr | None = query
        outer: list[tuple[exp.Select, str]] = []
        while True:
            if not isinstance(sel, exp.Select) or not _row_preserving(sel):
                raise refuse(f"cannot carry the created column '{source}.{column}' of source "
                             f"'{source}' through the query of feature view '{self.view.name}'",
                             self.span, code="E702", hint="read the source in a plain "
                             "SELECT ... FROM <source> [WHERE ...]")
            [(alias, rel)] = self.relations(sel)
            if isinstance(rel, exp.Table) and rel.name.lower() == source and not (
                    rel.name.lower() in self.ctes and not rel.db):
                sel.select(exp.alias_(exp.column(column, table=alias), CREATED), copy=False)
                break
            outer.append((sel, alias))
            sel = rel.this if isinstance(rel, exp.Subquery) else self.ctes.get(rel.name.lower())
        for parent, alias in outer:
            parent.select(exp.alias_(exp.column(CREATED, table=alias), CREATED), copy=False)


def _row_preserving(sel: exp.Select) -> bool:
    if sel.args.get("group") or sel.args.get("distinct") or sel.args.get("joins"):
        return False
    if sel.args.get("from_") is None:
        return False
    return not any(p.find(exp.AggFunc) is not None and p.find(exp.Window) is None
                   for p in sel.selects)
