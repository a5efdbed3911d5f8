"""Leakage lint: non-deterministic functions make training data depend on when it was computed."""

from __future__ import annotations

import re

from sqlglot import exp

from featql.compiler.body import node_span
from featql.core.diagnostics import Diagnostics, SourceFile, Span

_CLASSES: dict[type, str] = {
    exp.CurrentTimestamp: "CURRENT_TIMESTAMP",
    exp.CurrentDate: "CURRENT_DATE",
    exp.CurrentTime: "CURRENT_TIME",
    exp.CurrentDatetime: "CURRENT_DATETIME",
    exp.Rand: "RANDOM()",
    exp.Uuid: "UUID()",
}
_NAMES = {
    "now", "random", "rand", "uuid", "gen_random_uuid", "today", "get_current_timestamp",
    "current_timestamp", "current_date", "current_localtimestamp", "localtimestamp", "setseed",
    "transaction_timestamp", "statement_timestamp", "clock_timestamp", "unix_timestamp",
    "current_user", "getdate", "sysdate", "systimestamp", "uuidv4", "uuidv7", "random_uuid",
}


def _keyword_span(src: SourceFile, keyword: str, nth: int, fallback: Span) -> Span:
    """Keyword-only nodes (CURRENT_TIMESTAMP) carry no token position: find the keyword."""
    hits = [m.start() for m in re.finditer(rf"(?i)\b{keyword}\b", src.text)
            if not _in_comment(src.text, m.start())]
    if nth < len(hits):
        return src.span(hits[nth], hits[nth] + len(keyword))
    return fallback


def _in_comment(text: str, pos: int) -> bool:
    line_start = text.rfind("\n", 0, pos) + 1
    return "--" in text[line_start:pos]


def _label(node: exp.Expr) -> str | None:
    """How a non-deterministic function is named in messages; None for any other node."""
    if not isinstance(node, exp.Func):  # every class and name below is a function
        return None
    for cls, shown in _CLASSES.items():
        if isinstance(node, cls):
            return shown
    if isinstance(node, exp.Anonymous) and node.name.lower() in _NAMES:
        return f"{node.name.upper()}()"
    if isinstance(node, exp.Func) and not node.args.get("expressions") \
            and type(node).__name__.lower() in _NAMES:
        return f"{type(node).__name__.upper()}()"
    return None


def is_nondeterministic(node: exp.Expr) -> bool:
    """Whether an expression calls a function lint_leakage reports."""
    return any(_label(n) is not None for n in node.walk())


def lint_leakage(src: SourceFile, stmt: exp.Expression, what: str, diags: Diagnostics) -> None:
    seen: dict[str, int] = {}
    for node in stmt.walk():
        label = _label(node)
        if label is None:
            continue
        span = node_span(src, node)
        if not node.meta:
            keyword = label.rstrip("()")
            span = _keyword_span(src, keyword, seen.get(keyword, 0), span)
            seen[keyword] = seen.get(keyword, 0) + 1
        diags.error("E601", f"non-deterministic function {label} in {what}: training data "
                    "would depend on when it was computed", span,
                    hint="use the event timestamp column; featql evaluates features as of each "
                    "spine row's time")
