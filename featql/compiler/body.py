"""Parse a definition file's SQL body with sqlglot, over the whole file text.

Parsing the whole text (not the body cut out of it) keeps every sqlglot position file-relative.
Header comments are stripped from the tree so they never leak into generated SQL.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from featql.compiler.diagnostics import Diagnostics, SourceFile, Span

READ_DIALECT = "duckdb"

# what each kind of file may hold: (statement required?, allowed expression types, wording)
_EXPECTED: dict[str, tuple[bool, tuple[type, ...], str]] = {
    "source": (False, (exp.Create,), "a CREATE TABLE statement"),
    "entity": (False, (), "no SQL statement"),
    "feature_service": (False, (), "no SQL statement"),
    "feature_view": (True, (exp.Select, exp.Union), "a SELECT statement"),
    "request_transform": (True, (exp.Select,), "a SELECT statement"),
}


def node_span(src: SourceFile, node: exp.Expression) -> Span:
    """The file span of a node: its own token position, else its first positioned descendant."""
    meta = _first_meta(node)
    if meta is None:
        return Span(src.path, 1, 1)
    return src.span(meta["start"], meta["end"] + 1)


def _first_meta(node: exp.Expression) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for n in node.walk():
        m = n._meta if hasattr(n, "_meta") else None
        if m and "start" in m and (best is None or m["start"] < best["start"]):
            best = m
    return best


def parse_body(src: SourceFile, body_start: int, kind: str,
               diags: Diagnostics) -> exp.Expression | None:
    required, allowed, wording = _EXPECTED[kind]
    body = src.text[body_start:]
    if not body.strip():
        if required:
            diags.error("E203", f"@{kind} needs {wording} after its header",
                        src.span(len(src.text.rstrip())))
        return None
    try:
        statements = [s for s in sqlglot.parse(src.text, read=READ_DIALECT) if s is not None]
    except ParseError as e:
        _report_parse_error(src, e, diags)
        return None
    except TokenError as e:
        diags.error("E201", f"SQL syntax error: {e}", src.span(body_start))
        return None
    if not statements:
        if required:
            diags.error("E203", f"@{kind} needs {wording} after its header", src.span(body_start))
        return None
    if len(statements) > 1:
        second = _second_statement_offset(src.text)
        diags.error("E202", f"a definition file holds one SQL statement; found {len(statements)}",
                    src.span(second, second + 1), hint="move each statement to a file of its own")
        return None
    stmt = statements[0]
    if not allowed:
        diags.error("E204", f"@{kind} files hold no SQL statement", node_span(src, stmt),
                    hint="remove the statement after the header")
        return None
    if not isinstance(stmt, allowed) or (
        isinstance(stmt, exp.Create) and stmt.kind != "TABLE"
    ):
        diags.error("E205", f"@{kind} expects {wording}, found "
                    f"{stmt.key.upper().replace('_', ' ')}", node_span(src, stmt))
        return None
    for node in stmt.walk():
        node.comments = None
    return stmt


def _report_parse_error(src: SourceFile, e: ParseError, diags: Diagnostics) -> None:
    if not e.errors:
        diags.error("E201", f"SQL syntax error: {e}", Span(src.path, 1, 1))
        return
    err = e.errors[0]
    highlight = err.get("highlight") or ""
    line, col = int(err.get("line") or 1), int(err.get("col") or 1)
    start_col = max(1, col - len(highlight) + 1)
    desc = str(err.get("description") or "syntax error")
    if desc.startswith("Required keyword") or desc.startswith("Expected"):
        desc = f"incomplete {highlight.upper() or 'statement'}"
        if "<class" not in str(err.get("description")):
            desc = str(err.get("description"))
    elif desc.startswith("Invalid expression / Unexpected token"):
        desc = f"unexpected '{highlight}'"
    diags.error("E201", f"SQL syntax error: {desc}",
                src.line_col_span(line, start_col, max(1, len(highlight))))


def _second_statement_offset(text: str) -> int:
    from sqlglot.dialects.dialect import Dialect

    tokens = Dialect.get_or_raise(READ_DIALECT).tokenize(text)
    seen_statement = False
    after_semicolon = False
    for tok in tokens:
        if tok.token_type.name == "SEMICOLON":
            after_semicolon = seen_statement
            continue
        if after_semicolon:
            return int(tok.start)
        seen_statement = True
    return 0
