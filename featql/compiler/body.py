"""Parse a definition file's SQL body with sqlglot, over the whole file text.

Parsing the whole text (not the body cut out of it) keeps every sqlglot position file-relative.
Header comments are stripped from the tree so they never leak into generated SQL.
"""

from __future__ import annotations

import bisect
import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from featql.core.diagnostics import Diagnostics, SourceFile, Span
from featql.semantics.calls import mentions, recognize

READ_DIALECT = "duckdb"
MAX_SQL_NESTING = 32  # sqlglot's parser and optimizer recurse about 20 frames per level
MIN_RECURSION_LIMIT = 4_000


@contextmanager
def deep_stack() -> Iterator[None]:
    """Room on the Python stack for sqlglot's recursion over a query nested up to the cap."""
    old = sys.getrecursionlimit()
    if old < MIN_RECURSION_LIMIT:
        sys.setrecursionlimit(MIN_RECURSION_LIMIT)
    try:
        yield
    finally:
        if old < MIN_RECURSION_LIMIT:
            sys.setrecursionlimit(old)

# what each kind of file may hold: (statement required?, allowed expression types, wording)
_EXPECTED: dict[str, tuple[bool, tuple[type, ...], str]] = {
    "source": (False, (exp.Create,), "a CREATE TABLE statement"),
    "entity": (False, (), "no SQL statement"),
    "feature_service": (False, (), "no SQL statement"),
    "feature_view": (True, (exp.Select, exp.Union), "a SELECT statement"),
    "request_transform": (True, (exp.Select,), "a SELECT statement"),
}


def node_span(src: SourceFile, node: exp.Expr, fallback: Span | None = None) -> Span:
    """The file span of a node, from its first token to its last.

    sqlglot records positions only on some nodes (identifiers, literals, some functions); the
    span of any other node is the union of its positioned descendants, widened over the keywords
    and brackets that open and close it (`MAX(`, `CASE WHEN`, `GROUP BY`, `)`), found in the
    file's token stream. A node with no positioned part (a bare NULL) gets `fallback`.
    """
    bounds = _bounds(_tokens(src), node)
    if bounds is None:
        return fallback or Span(src.path, 1, 1)
    return src.span(bounds[0], bounds[1] + 1)


def statement_span(src: SourceFile) -> Span:
    """The first token of the file's statement (the header is comments, so: its first token)."""
    toks = _tokens(src)
    if not toks.starts:
        return Span(src.path, 1, 1)
    return src.span(toks.starts[0], toks.ends[0] + 1)


class _Tokens:
    def __init__(self, text: str):
        from sqlglot.dialects.dialect import Dialect

        try:
            tokens = Dialect.get_or_raise(READ_DIALECT).tokenize(text)
        except Exception:  # an untokenizable file: positions fall back to node metadata
            tokens = []
        self.starts = [t.start for t in tokens]
        self.ends = [t.end for t in tokens]
        self.types = [t.token_type.name for t in tokens]

    def index_at(self, offset: int) -> int | None:
        i = bisect.bisect_left(self.starts, offset)
        return i if i < len(self.starts) and self.starts[i] == offset else None


_TOKEN_CACHE: weakref.WeakKeyDictionary[SourceFile, _Tokens] = weakref.WeakKeyDictionary()


def _tokens(src: SourceFile) -> _Tokens:
    toks = _TOKEN_CACHE.get(src)
    if toks is None:
        toks = _TOKEN_CACHE[src] = _Tokens(src.text)
    return toks


# token types that open a node, read backwards from its first positioned part
_OPENERS: dict[type, tuple[tuple[str, ...], ...]] = {
    exp.Group: (("GROUP_BY",),),
    exp.Order: (("ORDER_BY",),),
    exp.Having: (("HAVING",),),
    exp.Qualify: (("QUALIFY",),),
    exp.Limit: (("LIMIT",),),
    exp.Offset: (("OFFSET",),),
    exp.Where: (("WHERE",),),
    exp.From: (("FROM",),),
    exp.Paren: (("L_PAREN",),),
    exp.Subquery: (("L_PAREN",),),
    exp.Not: (("NOT",),),
    exp.Neg: (("DASH",),),
    exp.Distinct: (("DISTINCT",),),
    exp.Case: (("CASE",), ("WHEN", "")),  # in text order; "" marks an optional token
    exp.Select: (("SELECT",), ("DISTINCT", "")),
}
_CLOSERS: dict[type, str] = {exp.Paren: "R_PAREN", exp.Subquery: "R_PAREN", exp.Case: "END"}


def _bounds(toks: _Tokens, node: exp.Expr, depth: int = 0) -> tuple[int, int] | None:
    meta = node._meta if hasattr(node, "_meta") else None
    spans = []
    if meta and "start" in meta:
        spans.append((int(meta["start"]), int(meta["end"])))
    if depth < 200:
        for child in node.iter_expressions():
            b = _bounds(toks, child, depth + 1)
            if b is not None:
                spans.append(b)
    if not spans:
        return None
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    if not toks.starts:
        return start, end
    i = toks.index_at(start)
    called = bool(meta and "start" in meta and isinstance(node, exp.Func))
    if i is not None and not (meta and "start" in meta):
        if isinstance(node, exp.Alias) and _bounds(toks, node.this, depth + 1) is None:
            # `NULL AS x`: the expression is the keyword token before the (optional) AS
            j = i - 1 - int(i >= 1 and toks.types[i - 1] == "ALIAS")
            i = j if j >= 0 else i
        elif isinstance(node, exp.Case) or type(node) in _OPENERS:
            for wanted in reversed(_OPENERS[exp.Case if isinstance(node, exp.Case)
                                           else type(node)]):
                if i >= 1 and toks.types[i - 1] in wanted:
                    i -= 1
                elif "" not in wanted:
                    break
        elif isinstance(node, exp.Func) and i >= 2 and toks.types[i - 1] == "L_PAREN":
            i -= 2  # `MAX(`, `CAST(`: the function name and its bracket
            called = True
        start = toks.starts[i]
    closer = _CLOSERS.get(type(node), "R_PAREN" if called else "")
    j = bisect.bisect_left(toks.starts, end + 1)
    if closer and j < len(toks.types) and toks.types[j] == closer:
        end = toks.ends[j]
    return start, end


def parse_body(src: SourceFile, body_start: int, kind: str,
               diags: Diagnostics) -> exp.Expression | None:
    required, allowed, wording = _EXPECTED[kind]
    body = src.text[body_start:]
    if not body.strip():
        if required:
            diags.error("E203", f"@{kind} needs {wording} after its header",
                        src.span(len(src.text.rstrip())))
        return None
    too_deep = _too_deep(src.text, body_start)
    if too_deep is not None:
        diags.error("E201", f"SQL nests brackets deeper than {MAX_SQL_NESTING} levels",
                    src.span(too_deep, too_deep + 1), hint="split the query into feature views")
        return None
    try:
        with deep_stack():
            statements = [s for s in sqlglot.parse(src.text, read=READ_DIALECT) if s is not None]
            if mentions(src.text):  # LAST_N(x, n), TOP_K(x, k): featql's aggregate calls
                statements = [recognize(s) for s in statements]
    except ParseError as e:
        _report_parse_error(src, e, diags)
        return None
    except TokenError as e:
        _report_token_error(src, body_start, e, diags)
        return None
    except RecursionError:
        diags.error("E201", "SQL is nested too deeply to parse", statement_span(src),
                    hint="split the query into feature views")
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
        diags.error("E204", f"@{kind} files hold no SQL statement", statement_span(src),
                    hint="remove the statement after the header")
        return None
    if not isinstance(stmt, allowed) or (
        isinstance(stmt, exp.Create) and stmt.kind != "TABLE"
    ):
        diags.error("E205", f"@{kind} expects {wording}, found "
                    f"{_statement_kind(stmt)}", statement_span(src))
        return None
    for node in stmt.walk():
        node.comments = None
    return cast(exp.Expression, stmt)


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


def _statement_kind(stmt: exp.Expr) -> str:
    if isinstance(stmt, exp.Create):
        return f"CREATE {stmt.kind or ''}".strip()
    return stmt.key.upper().replace("_", " ")


def _too_deep(text: str, start: int) -> int | None:
    """Offset of the first bracket nested deeper than MAX_SQL_NESTING (quotes and comments
    are not skipped: a rough bound that keeps the recursive parser within its stack)."""
    if text.count("(", start) <= MAX_SQL_NESTING:
        return None
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "(":
            depth += 1
            if depth > MAX_SQL_NESTING:
                return i
        elif ch == ")":
            depth = max(0, depth - 1)
    return None


def _report_token_error(src: SourceFile, body_start: int, e: TokenError,
                        diags: Diagnostics) -> None:
    """sqlglot's tokenizer fails mostly on unterminated strings and quoted names."""
    text = str(e)
    offset, quote, i = body_start, None, body_start
    while i < len(src.text):  # find the quote that is never closed, skipping -- comments
        ch = src.text[i]
        if quote is None and src.text.startswith("--", i):
            nl = src.text.find("\n", i)
            i = len(src.text) if nl < 0 else nl
        elif quote is None and ch in "'\"":
            quote, offset = ch, i
        elif ch == quote:
            quote = None
        i += 1
    if quote is not None:
        what = "string" if quote == "'" else "quoted name"
        diags.error("E201", f"SQL syntax error: unterminated {what}", src.span(offset, offset + 1),
                    hint=f"close it with {quote}")
        return
    diags.error("E201", f"SQL syntax error: {text.splitlines()[0] if text else 'bad token'}",
                statement_span(src))
