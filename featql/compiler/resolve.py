"""Resolve names: every table a view reads maps to a source or a feature view; build the DAG.

Duplicate names, unknown tables (with a suggestion) and dependency cycles (naming the whole
cycle) are reported here. The result orders views so each comes after everything it reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlglot import exp

from featql.compiler.body import node_span
from featql.compiler.loader import ParsedFile
from featql.core.diagnostics import Diagnostics, Span, did_you_mean


def view_name(f: ParsedFile) -> str:
    assert f.decl is not None
    variant = f.decl.get("variant")
    return f"{f.decl.name}:{variant}" if variant else f.decl.name


@dataclass
class Resolved:
    """Objects by name, and the views in dependency order with the tables each reads."""

    by_kind: dict[str, dict[str, ParsedFile]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # views, upstream first
    reads: dict[str, list[str]] = field(default_factory=dict)  # view -> sources/views it reads
    table_refs: dict[str, list[exp.Table]] = field(default_factory=dict)
    # names of objects whose declaration failed (reported there): references to them are
    # skipped in silence, so one mistake gives one error rather than one per reader
    unbuilt: set[str] = field(default_factory=set)

    def views(self) -> dict[str, ParsedFile]:
        return self.by_kind.get("feature_view", {})


def table_references(stmt: exp.Expression) -> list[exp.Table]:
    """Tables a query reads, excluding its own CTE names and table functions."""
    ctes: set[str] = set()
    tables: list[exp.Table] = []
    for node in stmt.walk():  # one walk for both
        if isinstance(node, exp.Table):
            tables.append(node)
        elif isinstance(node, exp.CTE):
            ctes.add(node.alias_or_name.lower())
    out = []
    for t in tables:
        if not t.name or isinstance(t.this, exp.Func):
            continue
        if t.name.lower() in ctes and not t.db:
            continue
        out.append(t)
    return out


# the name a failed header most likely declares: `@<kind>(name = x` (quoted or not)
_TENTATIVE = re.compile(r"--\s*@\w+\s*\(\s*name\s*=\s*['\"]?([A-Za-z_]\w*)")


def resolve(files: list[ParsedFile], diags: Diagnostics) -> Resolved:
    res = Resolved()
    first_seen: dict[str, ParsedFile] = {}
    for f in files:
        if f.decl is None:
            tentative = _TENTATIVE.search(f.src.text)
            if tentative:
                res.unbuilt.add(tentative.group(1).lower())
            continue
        name = view_name(f) if f.decl.kind == "feature_view" else f.decl.name
        # sources, views and transforms share one namespace: SQL and services name them bare
        space = "entity" if f.decl.kind == "entity" else (
            "service" if f.decl.kind == "feature_service" else "table")
        key = f"{space}:{name}"
        if key in first_seen:
            prev = first_seen[key]
            assert prev.decl is not None
            diags.error("E303", f"'{name}' is already defined at {prev.decl.span}",
                        f.decl.at("name"), hint="names of sources, views and transforms are unique")
            continue
        first_seen[key] = f
        res.by_kind.setdefault(f.decl.kind, {})[name] = f
    sources = res.by_kind.get("source", {})
    views = res.views()
    known = list(sources) + list(views)
    broken: set[str] = set()  # views reading an unknown table or themselves: not type-checked
    for vname, f in views.items():
        if f.statement is None:
            continue
        refs = table_references(f.statement)
        res.table_refs[vname] = refs
        reads: list[str] = []
        for t in refs:
            tname = t.name.lower()
            if tname in sources or tname in views:
                if tname == vname:
                    diags.error("E302", f"feature view '{vname}' reads itself",
                                node_span(f.src, t),
                                hint="read the source it is computed from instead")
                    broken.add(vname)
                    continue
                reads.append(tname)
            elif tname in res.unbuilt:
                broken.add(vname)  # its declaration failed, and said so
            else:
                hint = did_you_mean(tname, known)
                diags.error("E301", f"unknown table '{t.name}': not a source or feature view",
                            node_span(f.src, t),
                            hint=hint or (f"known: {_listing(known)}" if known else
                                          "define it with a @source file"))
                broken.add(vname)
        res.reads[vname] = list(dict.fromkeys(reads))
    res.order = [v for v in _topological(res, diags) if v not in broken]
    return res


def _listing(names: list[str], limit: int = 12) -> str:
    shown = sorted(names)
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def _topological(res: Resolved, diags: Diagnostics) -> list[str]:
    views = res.views()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    order: list[str] = []
    reported: set[frozenset[str]] = set()

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        path.append(name)
        for dep in res.reads.get(name, []):
            if dep not in views:
                continue
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep):], dep]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    _report_cycle(res, cycle, diags)
            elif state.get(dep) is None:
                visit(dep, path)
        path.pop()
        state[name] = 2
        order.append(name)

    for name in sorted(views):
        if state.get(name) is None:
            visit(name, [])
    cyclic = {n for key in reported for n in key}
    return [n for n in order if n not in cyclic]


def _report_cycle(res: Resolved, cycle: list[str], diags: Diagnostics) -> None:
    first = cycle[0]
    f = res.views()[first]
    span: Span = f.decl.span if f.decl else Span(f.src.path, 1, 1)
    for t in res.table_refs.get(first, []):
        if t.name.lower() == cycle[1]:
            span = node_span(f.src, t)
            break
    diags.error("E302", f"dependency cycle: {' -> '.join(cycle)}", span,
                hint="a feature view cannot read, directly or not, a view that reads it")
