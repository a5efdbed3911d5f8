"""Column resolution with exact positions: unknown and ambiguous columns.

sqlglot's own qualifier raises "could not resolve" without a position; this pass walks every
scope of the original (unqualified) tree, where every identifier still carries its file offset.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from featql.compiler.body import node_span
from featql.core.diagnostics import Diagnostics, SourceFile, did_you_mean

TableColumns = dict[str, dict[str, str]]  # table name -> column -> featql type


def _source_columns(source: object, tables: TableColumns, depth: int = 0) -> set[str] | None:
    """Columns a scope source exposes; None when unknowable (table functions, UNNEST)."""
    if isinstance(source, exp.Table):
        table = tables.get(source.name.lower())
        return set(table) if table is not None else None
    if isinstance(source, Scope) and depth < 64:
        expr = source.expression
        if isinstance(expr, exp.Select):
            out: set[str] = set()
            for proj in expr.selects:
                star = proj if isinstance(proj, exp.Star) else (
                    proj.this if isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star)
                    else None)
                if star is None:
                    out.add(proj.alias_or_name.lower())
                    continue
                qualifier = proj.table.lower() if isinstance(proj, exp.Column) else ""
                for alias, inner in source.sources.items():
                    if qualifier and alias.lower() != qualifier:
                        continue
                    inner_cols = _source_columns(inner, tables, depth + 1)
                    if inner_cols is None:
                        return None
                    out |= inner_cols
            return out
        if isinstance(expr, exp.Union):
            if any(isinstance(s, exp.Star) for s in getattr(expr, "selects", [])):
                return None
            return {n.lower() for n in expr.named_selects}
    return None


def check_columns(src: SourceFile, stmt: exp.Expression, tables: TableColumns,
                  diags: Diagnostics) -> bool:
    """Report unknown/ambiguous column references; True when all resolve."""
    ok = True
    try:
        scopes = traverse_scope(stmt)
    except Exception:  # sqlglot rejects some shapes (e.g. duplicate aliases); typing reports them
        return True
    for scope in scopes:
        visible: dict[str, set[str] | None] = {
            alias.lower(): _source_columns(s, tables) for alias, s in scope.sources.items()
        }
        # names given with AS (duckdb lets later expressions and clauses use them)
        select_aliases = {p.alias.lower() for p in getattr(scope.expression, "selects", [])
                          if isinstance(p, exp.Alias)}
        for col in scope.columns:
            # sqlglot lists a subquery's unqualified columns in its parent scope too (they might
            # be correlated); each column is judged once, in the scope whose SELECT holds it
            if _owning_query(col) is not scope.expression:
                continue
            if not _check_column(src, col, scope, visible, select_aliases, tables, diags):
                ok = False
    return ok


def _owning_query(col: exp.Column) -> exp.Expr | None:
    node = col.parent
    while node is not None and not isinstance(node, exp.Select | exp.SetOperation):
        node = node.parent
    return node


def _outer_has(scope: Scope, name: str, tables: TableColumns) -> bool:
    parent = scope.parent
    while parent is not None:
        for s in parent.sources.values():
            cols = _source_columns(s, tables)
            if cols is None or name in cols:
                return True
        parent = parent.parent
    return False


def _check_column(src: SourceFile, col: exp.Column, scope: Scope,
                  visible: dict[str, set[str] | None], select_aliases: set[str],
                  tables: TableColumns, diags: Diagnostics) -> bool:
    name = col.name.lower()
    if not name or col.args.get("db") is not None:
        return True
    qualifier = col.table.lower()
    if qualifier:
        if qualifier not in visible:
            if _outer_has(scope, name, tables):
                return True
            diags.error("E401", f"unknown table or alias '{col.table}' in '{col.sql()}'",
                        node_span(src, col.args["table"]),
                        hint=did_you_mean(qualifier, visible)
                        or f"tables in scope: {', '.join(sorted(visible)) or 'none'}")
            return False
        cols = visible[qualifier]
        if cols is None or name in cols:
            return True
        diags.error("E401", f"unknown column '{col.name}' in {_and([qualifier])}",
                    node_span(src, col.this), hint=did_you_mean(name, cols)
                    or f"columns of '{qualifier}': {', '.join(sorted(cols))}")
        return False
    owners = [alias for alias, cols in visible.items() if cols is not None and name in cols]
    unknowable = any(cols is None for cols in visible.values())
    if len(owners) == 1 or (not owners and unknowable):
        return True
    if len(owners) > 1:
        diags.error("E402", f"ambiguous column '{col.name}': it is in {_and(owners)}",
                    node_span(src, col), hint=f"qualify it, for example {owners[0]}.{name}")
        return False
    if name in select_aliases or _outer_has(scope, name, tables):
        return True
    everything = {c for cols in visible.values() if cols for c in cols}
    where = f"in {_and(list(visible))}" if visible else "(the query reads no table)"
    diags.error("E401", f"unknown column '{col.name}' {where}", node_span(src, col),
                hint=did_you_mean(name, everything))
    return False


def _and(names: list[str]) -> str:
    quoted = [f"'{n}'" if n else "the subquery" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
