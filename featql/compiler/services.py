"""Request transforms (SQL and Python) and feature services: references and types.

A SQL transform reads `request.<field>` and `<view>.<feature>` and has no FROM; it is typed by
attaching those as tables. Python transforms come from `pyhooks` and are checked the same way.
A service may only name existing features and transforms; its keys are the union of the entity
keys of every view it reads (through features or through transforms' inputs).
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet

from sqlglot import exp

from featql.compiler.body import node_span
from featql.compiler.catalog import location_of
from featql.compiler.columns import TableColumns
from featql.compiler.decorators import Decl
from featql.compiler.fingerprint import canonical_sql, digest
from featql.compiler.leakage import lint_leakage
from featql.compiler.loader import ParsedFile
from featql.compiler.pyhooks import PyHook
from featql.compiler.typecheck import type_query
from featql.core.diagnostics import Diagnostics, Span, did_you_mean
from featql.core.ir import (
    Column,
    FeatureRef,
    FeatureService,
    FeatureView,
    Location,
    RequestTransform,
)
from featql.core.types import ALL_TYPES, UNKNOWN, from_sql_text


def _request_fields(fields: list[tuple[str, str | None, Span]],
                    diags: Diagnostics) -> list[Column] | None:
    out: list[Column] = []
    for name, type_text, span in fields:
        ftype = from_sql_text(type_text) if type_text else UNKNOWN
        if ftype == UNKNOWN:
            diags.error("E305", f"request field '{name}' needs a featql type"
                        + (f", found {type_text}" if type_text else ""), span,
                        hint=f"for example {name} DOUBLE; types: {', '.join(ALL_TYPES)}")
            return None
        out.append(Column(name, ftype))
    return out


def build_sql_transform(f: ParsedFile, views: dict[str, FeatureView], diags: Diagnostics,
                        unbuilt: AbstractSet[str] = frozenset()) -> RequestTransform | None:
    decl = f.decl
    stmt = f.statement
    assert decl is not None
    if not isinstance(stmt, exp.Select):
        return None
    request = _request_fields(decl.get("request"), diags)
    if request is None:
        return None
    if stmt.args.get("from_") is not None or stmt.args.get("joins"):
        diags.error("E420", "a request transform reads request.<field> and <view>.<feature>; "
                    "it has no FROM", node_span(f.src, stmt.args.get("from_") or stmt))
        return None
    lint_leakage(f.src, stmt, "a request transform", diags)
    tables: TableColumns = {"request": {c.name: c.type for c in request}}
    ok = True
    for col in stmt.find_all(exp.Column):
        qualifier = col.table.lower()
        if not qualifier:
            diags.error("E421", f"column '{col.name}' must be qualified: request.{col.name} or "
                        f"<view>.{col.name}", node_span(f.src, col))
            ok = False
        elif qualifier != "request" and qualifier not in tables:
            if qualifier in views:
                tables[qualifier] = {ft.name: ft.type for ft in views[qualifier].features}
            elif qualifier in unbuilt:
                ok = False  # the view's own mistake is reported where it is defined
            else:
                diags.error("E503", f"unknown feature view '{col.table}' in '{col.sql()}'",
                            node_span(f.src, col.args["table"]),
                            hint=did_you_mean(qualifier, [*views, "request"])
                            or _known("feature views", list(views)))
                ok = False
    if not ok:
        return None
    query = stmt.copy()
    query.from_("request", copy=False)
    for t in tables:
        if t != "request":
            query.join(t, join_type="cross", copy=False)
    typed = type_query(f.src, query, tables, diags)
    if typed is None or not _evaluable(f, stmt, tables, diags):
        return None
    inputs = sorted({f"{c.table.lower()}.{c.name.lower()}" for c in stmt.find_all(exp.Column)
                     if c.table.lower() != "request"})
    return RequestTransform(
        name=decl.name, location=location_of(f.rel, decl), language="sql",
        request=tuple(request), inputs=tuple(inputs), outputs=tuple(typed.columns),
        sql=stmt.sql(dialect="duckdb"), fingerprint=digest(canonical_sql(stmt)), meta=decl.meta,
    )


def _evaluable(f: ParsedFile, stmt: exp.Select, tables: TableColumns,
               diags: Diagnostics) -> bool:
    """The serving evaluator (featql.transforms) can run the transform: each function or
    construct it does not support is an error where it is written (else it would pass check
    and fail only when the server starts)."""
    from featql.transforms import SUPPORTED_FUNCTIONS, UnsupportedSql, check_sql_transform

    types = {f"{t}.{c}": ctype for t, cols in tables.items() for c, ctype in cols.items()}
    errors = check_sql_transform(stmt, types)
    for e in errors:
        if not isinstance(e, UnsupportedSql):
            diags.error("E508", f"{e}", node_span(f.src, stmt))
            continue
        span = node_span(f.src, e.node, fallback=node_span(f.src, stmt))
        called = _called_name(f.src.text, span, e.node)
        if e.supported:  # a rule refuses this use: a type the evaluator does not take
            why = f"is not supported {e.why}" if e.why.startswith("(") else e.why
            diags.error("E508", f"'{e.node.sql(dialect='duckdb')[:60]}' {why} in request "
                        "transforms", span)
        elif called is not None:
            diags.error("E507", f"function {called} is not supported in request transforms",
                        span, hint=_ALTERNATIVES.get(called)
                        or did_you_mean(called, SUPPORTED_FUNCTIONS)
                        or f"supported functions: {', '.join(sorted(SUPPORTED_FUNCTIONS))}")
        else:
            what = _CONSTRUCTS.get(type(e.node).__name__) \
                or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", type(e.node).__name__).lower()
            diags.error("E507", f"{what} ({e.node.sql(dialect='duckdb')[:40]}) is not "
                        "supported in request transforms", span,
                        hint="request transforms support arithmetic, comparisons, AND/OR/NOT, "
                        "CASE, IN, BETWEEN, LIKE, IS [NOT] NULL and the functions "
                        + ", ".join(sorted(SUPPORTED_FUNCTIONS)))
    return not errors


# what to write instead, for functions no supported name is spelled like
_REGEX = "did you mean LIKE? (no regular expressions; LIKE matches % and _ patterns)"
_ALTERNATIVES = {"REGEXP_MATCHES": _REGEX, "REGEXP_LIKE": _REGEX, "REGEXP_FULL_MATCH": _REGEX,
                 "RLIKE": _REGEX, "STRPOS": "did you mean CONTAINS?",
                 "INSTR": "did you mean CONTAINS?", "POSITION": "did you mean CONTAINS?",
                 "SUFFIX": "did you mean LIKE '%...'?", "ENDS_WITH": "did you mean LIKE '%...'?",
                 "PREFIX": "did you mean STARTS_WITH?", "LOG": "did you mean LN?",
                 "ISNULL": "did you mean IS NULL?"}

_CONSTRUCTS = {"Bracket": "a subscript", "Subquery": "a subquery", "Window": "a window function",
               "Interval": "an INTERVAL", "Star": "*", "Exists": "EXISTS",
               "Lambda": "a lambda", "Dot": "a field access", "Array": "an array",
               "Struct": "a struct", "Placeholder": "a placeholder"}


def _called_name(text: str, span: Span, node: exp.Expression) -> str | None:
    """The function name as written at the start of a call node (`REGEXP_MATCHES(`)."""
    if not isinstance(node, exp.Func) or span.start < 0:
        return None
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", text[span.start:span.start + 200])
    return m.group(1).upper() if m else None


def build_py_transform(hook: PyHook, views: dict[str, FeatureView], project_root: str,
                       diags: Diagnostics, unbuilt: AbstractSet[str] = frozenset()
                       ) -> RequestTransform | None:
    request = _request_fields([(n, t, hook.span) for n, t in hook.request], diags)
    outputs = _request_fields([(n, t, hook.span) for n, t in hook.outputs], diags)
    if request is None or outputs is None:
        return None
    ok = True
    for ref, span in hook.inputs:
        view, _, feature = ref.partition(".")
        if view in unbuilt:
            ok = False  # the view's own mistake is reported where it is defined
        elif view not in views:
            diags.error("E503", f"unknown feature view '{view}' in input '{ref}'",
                        sub_span(span, 0, len(view)),
                        hint=did_you_mean(view, views) or _known("feature views", list(views)))
            ok = False
        elif views[view].feature(feature) is None:
            diags.error("E503", f"feature view '{view}' has no feature '{feature}'",
                        sub_span(span, len(view) + 1, len(feature)),
                        hint=did_you_mean(feature, [x.name for x in views[view].features]))
            ok = False
    if ok:
        ok = _check_params(hook, [c.name for c in request] +
                           [r.partition(".")[2] for r, _ in hook.inputs], diags)
    if not ok:
        return None
    return RequestTransform(
        name=hook.name, location=Location(hook.module, hook.span.line, hook.span.col),
        language="python", request=tuple(request), inputs=tuple(r for r, _ in hook.inputs),
        outputs=tuple(outputs), module=hook.module, function=hook.function,
        # the inputs' names, not their spans: a span holds the file's display path, which
        # depends on where the project is (a copied project must not show a changed hook)
        fingerprint=digest(hook.module, hook.function, hook.request,
                           tuple(r for r, _ in hook.inputs), hook.outputs, hook.code),
    )


def _check_params(hook: PyHook, names: list[str], diags: Diagnostics) -> bool:
    """One parameter per request field and per input feature, by name, in any order."""
    ok = True
    for param, span in zip(hook.params, hook.param_spans or [hook.span] * len(hook.params),
                           strict=True):
        if param not in names:
            diags.error("E504", f"parameter '{param}' of '{hook.function}' is not a request "
                        "field or input feature", span,
                        hint=did_you_mean(param, names)
                        or f"its request fields and inputs: {', '.join(names)}")
            ok = False
    missing = [n for n in names if n not in hook.params]
    if ok and missing:
        diags.error("E504", f"'{hook.function}' has no parameter for "
                    f"{', '.join(repr(m) for m in missing)}", hook.name_span or hook.span,
                    hint="name one parameter per request field and per input feature")
        ok = False
    return ok


def build_service(f: ParsedFile, views: dict[str, FeatureView],
                  transforms: dict[str, RequestTransform], diags: Diagnostics,
                  failed: set[str]) -> FeatureService | None:
    decl: Decl | None = f.decl
    assert decl is not None
    refs: list[FeatureRef] = []
    used_transforms: list[str] = []
    ok = True
    for ref, span in decl.get("features"):
        if ref.split(".")[0] in failed:
            ok = False  # already reported where it is defined
            continue
        got = _resolve_ref(ref, span, views, transforms, diags)
        if got is None:
            ok = False
        elif isinstance(got, str):
            if got in used_transforms:
                diags.error("E505", f"transform '{got}' is listed twice", span)
                ok = False
            used_transforms.append(got)
        else:
            for r in got:
                if r in refs:
                    diags.error("E505", f"feature '{r.view}.{r.feature}' is listed twice", span)
                    ok = False
                refs.append(r)
    if not ok:
        return None
    for view in dict.fromkeys(r.view for r in refs):
        v = views[view]
        if v.deprecated:
            diags.warning("W801", f"service '{decl.name}' uses deprecated feature view '{view}'"
                          + (f"; use '{v.replacement}'" if v.replacement else ""), decl.at("name"))
    keys: dict[str, Column] = {}
    needed = [r.view for r in refs] + [i.split(".")[0] for t in used_transforms
                                       for i in transforms[t].inputs]
    for view in dict.fromkeys(needed):
        for k in views[view].keys:
            if k.name in keys and keys[k.name].type != k.type:
                diags.error("E506", f"key '{k.name}' is {keys[k.name].type} in one view and "
                            f"{k.type} in '{view}'", decl.at("features"))
                return None
            keys.setdefault(k.name, k)
    return FeatureService(decl.name, location_of(f.rel, decl), tuple(refs),
                          tuple(used_transforms), tuple(keys.values()), decl.meta,
                          prevent_destroy=bool(decl.get("prevent_destroy", False)),
                          max_read_kb=decl.get("max_read_kb"))


def _resolve_ref(ref: str, span: Span, views: dict[str, FeatureView],
                 transforms: dict[str, RequestTransform],
                 diags: Diagnostics) -> list[FeatureRef] | str | None:
    if "." not in ref:
        if ref in transforms:
            return ref
        if ref in views:
            diags.error("E501", f"'{ref}' is a feature view; name its features", span,
                        hint=f"use {ref}.* for all of them, or {ref}.<feature>")
            return None
        diags.error("E502", f"unknown feature view or transform '{ref}'", span,
                    hint=did_you_mean(ref, [*views, *transforms])
                    or _known("feature views and transforms", [*views, *transforms]))
        return None
    view, _, feature = ref.rpartition(".")
    if view not in views:
        diags.error("E502", f"unknown feature view '{view}' in '{ref}'",
                    sub_span(span, 0, len(view)),
                    hint=did_you_mean(view, views) or _known("feature views", list(views)))
        return None
    v = views[view]
    if feature == "*":
        return [FeatureRef(view, ft.name, ft.type) for ft in v.features]
    ft = v.feature(feature)
    if ft is None:
        diags.error("E501", f"feature view '{view}' has no feature '{feature}'",
                    sub_span(span, len(view) + 1, len(feature)),
                    hint=did_you_mean(feature, [x.name for x in v.features])
                    or f"its features: {_listing([x.name for x in v.features])}")
        return None
    return [FeatureRef(view, ft.name, ft.type)]


def sub_span(span: Span, offset: int, length: int) -> Span:
    """Part of a one-line span: `offset` characters in, `length` long."""
    if span.start < 0:
        return span
    return Span(span.path, span.line, span.col + offset, span.start + offset,
                span.start + offset + length)


def _known(what: str, names: list[str]) -> str | None:
    return f"known {what}: {_listing(names)}" if names else None


def _listing(names: list[str], limit: int = 12) -> str:
    shown = sorted(names)
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more
