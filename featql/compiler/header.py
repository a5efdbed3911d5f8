"""Parse a definition file's decorator header (`-- @name(key = value, ...)`) with lark.

The header is the run of `--` comment lines at the top of the file. Lines that start a decorator
(`@...`) or continue one whose brackets are still open are decorator text; other comment lines
are free prose and ignored. Every value keeps its file position, so later stages can point at
`ttl = '9x'` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from featql.core.diagnostics import Diagnostics, SourceFile, Span

MAX_HEADER_CHARS = 64_000
MAX_NESTING = 16


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class Value:
    span: Span


@dataclass(frozen=True)
class Ident(Value):
    name: str


@dataclass(frozen=True)
class Str(Value):
    value: str


@dataclass(frozen=True)
class Num(Value):
    value: float | int


@dataclass(frozen=True)
class Bool(Value):
    value: bool


@dataclass(frozen=True)
class Typed(Value):
    """`amount DOUBLE` or `tags ARRAY<STRING>` inside a list."""

    name: str
    type: str


@dataclass(frozen=True)
class ListV(Value):
    items: tuple[Value, ...]


@dataclass(frozen=True)
class KeyArg:
    key: str
    key_span: Span
    value: Value


@dataclass(frozen=True)
class Call(Value):
    name: str
    args: tuple[Value, ...]
    kwargs: tuple[KeyArg, ...]


@dataclass(frozen=True)
class Decorator:
    name: str
    span: Span
    args: tuple[Value, ...] = ()
    kwargs: tuple[KeyArg, ...] = ()
    has_parens: bool = True

    def kwarg(self, key: str) -> KeyArg | None:
        for k in self.kwargs:
            if k.key == key:
                return k
        return None


def describe(value: Value) -> str:
    """How a value is named in messages."""
    return {
        Ident: "a name",
        Str: "a string",
        Num: "a number",
        Bool: "a boolean",
        Typed: "a typed field",
        ListV: "a list",
        Call: "a call",
    }.get(type(value), "a value")


# ---------------------------------------------------------------------------------------------
# Header extraction


@dataclass
class HeaderText:
    """Decorator text with a map from its lines back to the file."""

    text: str
    # (file line, file column of the first character of this header line), 1-based
    origins: list[tuple[int, int]] = field(default_factory=list)
    body_start: int = 0  # character offset where the SQL body begins


def extract_header(text: str) -> HeaderText:
    lines = text.split("\n")
    out: list[str] = []
    origins: list[tuple[int, int]] = []
    depth = 0
    offset = 0
    body_start = len(text)
    for lineno, line in enumerate(lines, start=1):
        stripped = line.lstrip()
        if stripped and not stripped.startswith("--"):
            body_start = offset
            break
        if stripped.startswith("--"):
            lead = len(line) - len(stripped) + 2
            content = line[lead:]
            if depth > 0 or content.lstrip().startswith("@"):
                out.append(content)
                origins.append((lineno, lead + 1))
                depth = max(0, depth + _bracket_delta(content))
        offset += len(line) + 1
    return HeaderText("\n".join(out), origins, body_start)


def _bracket_delta(content: str) -> int:
    delta = 0
    quote: str | None = None
    for ch in content:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            delta += 1
        elif ch in ")]":
            delta -= 1
    return delta


# ---------------------------------------------------------------------------------------------
# Parsing


@lru_cache(maxsize=1)
def _parser() -> Any:
    from lark import Lark

    grammar = (Path(__file__).with_name("header.lark")).read_text()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


_TERMINAL_NAMES = {
    "RPAR": "')'",
    "LPAR": "'('",
    "RSQB": "']'",
    "LSQB": "'['",
    "COMMA": "','",
    "EQUAL": "'='",
    "AT": "'@'",
    "NAME": "a name",
    "STRING": "a string",
    "NUMBER": "a number",
    "LT": "'<'",
    "GT": "'>'",
    "$END": "end of header",
}


class _Mapper:
    def __init__(self, src: SourceFile, header: HeaderText):
        self.src = src
        self.header = header

    def span(self, line: int, col: int, length: int = 1) -> Span:
        idx = max(0, min(line - 1, len(self.header.origins) - 1))
        if not self.header.origins:
            return Span(self.src.path, 1, 1)
        file_line, file_col = self.header.origins[idx]
        return self.src.line_col_span(file_line, file_col + col - 1, length)


def parse_header(src: SourceFile, diags: Diagnostics, *,
                 fast: bool = True) -> tuple[list[Decorator], int]:
    """Decorators of the file and the offset where its SQL body starts. Well-formed headers
    take the fast path (`header_fast`); others, or `fast=False`, are parsed by lark."""
    header = extract_header(src.text)
    mapper = _Mapper(src, header)
    if not header.text.strip():
        return [], header.body_start
    if len(header.text) > MAX_HEADER_CHARS:
        first = _line_col(header.text, max(0, header.text.find("@")))
        diags.error("E110", f"decorator header is too large ({len(header.text)} characters, "
                    f"at most {MAX_HEADER_CHARS})", mapper.span(*first),
                    hint="move long lists into several services or views")
        return [], header.body_start
    depth_err = _check_nesting(header.text)
    if depth_err is not None:
        line, col = depth_err
        diags.error("E110", f"decorator header nests deeper than {MAX_NESTING} levels",
                    mapper.span(line, col))
        return [], header.body_start
    open_err = _unclosed(header.text)
    if open_err is not None:
        (line, col), ch = open_err
        if ch in ")]":
            diags.error("E101", f"unmatched '{ch}' in decorator header", mapper.span(line, col),
                        hint=f"remove it, or open it with '{'(' if ch == ')' else '['}'")
        else:
            diags.error("E101", f"unclosed '{ch}' in decorator header", mapper.span(line, col),
                        hint=f"close it with '{')' if ch == '(' else ']'}' before the SQL starts")
        return [], header.body_start

    if fast:
        from featql.compiler.header_fast import parse_fast

        decorators = parse_fast(header.text, mapper.span)
        if decorators is not None:
            return decorators, header.body_start

    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

    try:
        tree = _parser().parse(header.text)
    except UnexpectedCharacters as e:
        pos = e.pos_in_stream or 0
        ch = header.text[pos] if pos < len(header.text) else "?"
        diags.error("E101", f"unexpected character {ch!r} in decorator header",
                    mapper.span(e.line, e.column),
                    hint="values are names, 'strings', numbers, [lists] and calls such as "
                    "parquet('path/')")
        return [], header.body_start
    except UnexpectedEOF as e:
        diags.error("E101", "decorator header ends early" + _expected(e.expected),
                    mapper.span(len(header.origins), 1))
        return [], header.body_start
    except UnexpectedInput as e:
        token = getattr(e, "token", None)
        expected = getattr(e, "expected", None) or getattr(e, "accepts", None) or set()
        friendly = _explain(header.text, token, expected)
        if friendly is not None:
            pos, length, message, hint = friendly
            line, col = _line_col(header.text, pos)
            diags.error("E101", message, mapper.span(line, col, length), hint=hint)
            return [], header.body_start
        shown = "end of header" if token is None or token.type == "$END" else repr(str(token))
        diags.error("E101", f"unexpected {shown} in decorator header" + _expected(expected),
                    mapper.span(e.line if e.line > 0 else len(header.origins),
                                e.column if e.column > 0 else 1))
        return [], header.body_start
    return [_decorator(node, mapper) for node in tree.children], header.body_start


_STOP = " \t\n,()[]="


def _explain(text: str, token: Any, expected: Any) -> tuple[int, int, str, str] | None:
    """A plain-words account of the common header mistakes lark reports as a bare token:
    an unquoted duration or date, a missing value, a missing comma."""
    if token is None or token.type == "$END":
        return None
    pos = token.start_pos
    if pos > 0 and text[pos - 1] not in _STOP and token.type in ("NAME", "NUMBER"):
        start, end = pos, pos  # `ttl = 30d`, `start = 2024-01-01`: one word split in two
        while start > 0 and text[start - 1] not in _STOP:
            start -= 1
        while end < len(text) and text[end] not in _STOP:
            end += 1
        raw = text[start:end]
        return start, end - start, f"value {raw} must be quoted", f"write '{raw}'"
    if token.type in ("RPAR", "COMMA", "RSQB") and text[:pos].rstrip().endswith("="):
        eq = text[:pos].rstrip()
        key = eq[:-1].rstrip().split()[-1].lstrip("(,") if eq[:-1].strip() else ""
        return pos, 1, f"missing value after '{key} ='", f"write {key} = <value>"
    if token.type == "EQUAL":
        end = pos  # `entity = user timestamp = ts`: read as a typed field, then '='
        while end > 0 and text[end - 1] in " \t\n":
            end -= 1
        start = end
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
            start -= 1
        before = text[:start].rstrip()
        if start == end:
            return pos, 1, "missing key before '='", "write key = value"
        if not before or before[-1] in "(,[":
            return None
        return start, end - start, f"missing ',' before '{text[start:end]}'", _COMMA_HINT
    shown = str(token) if token.type == "STRING" else f"'{token}'"
    if token.type in ("NAME", "STRING", "NUMBER") and "COMMA" in expected:
        return pos, len(str(token)), f"missing ',' before {shown}", _COMMA_HINT
    if token.type in ("NAME", "STRING", "NUMBER") and "LPAR" in expected:
        at = text.rfind("@", 0, pos)
        name = text[at + 1:pos].strip() if at >= 0 else "decorator"
        return pos, len(str(token)), f"arguments of @{name} go in brackets", \
            f"write @{name}(key = value, ...)"
    return None


_COMMA_HINT = "separate arguments with commas: @name(key = value, key = value)"


def _line_col(text: str, pos: int) -> tuple[int, int]:
    return text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)


def _expected(expected: Any) -> str:
    names = sorted({_TERMINAL_NAMES.get(t, t) for t in expected or ()
                    if not str(t).startswith("__")})
    return f"; expected {', '.join(names)}" if names else ""


def _check_nesting(text: str) -> tuple[int, int] | None:
    depth, line, col, quote = 0, 1, 0, None
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, quote = line + 1, 0, None
            continue
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
            if depth > MAX_NESTING:
                return line, col
        elif ch in ")]":
            depth -= 1
    return None


def _unclosed(text: str) -> tuple[tuple[int, int], str] | None:
    stack: list[tuple[tuple[int, int], str]] = []
    line, col, quote = 1, 0, None
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, quote = line + 1, 0, None
            continue
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            stack.append(((line, col), ch))
        elif ch in ")]":
            if not stack:
                return (line, col), ch
            stack.pop()
    return stack[-1] if stack else None


# ---------------------------------------------------------------------------------------------
# Tree → values


def _tok_span(tok: Any, mapper: _Mapper) -> Span:
    return mapper.span(tok.line, tok.column, len(str(tok)))


def _decorator(node: Any, mapper: _Mapper) -> Decorator:
    name_tok, lpar, arglist = node.children
    args, kwargs = _arglist(arglist, mapper)
    span = mapper.span(node.meta.line, node.meta.column, 1 + len(name_tok))
    return Decorator(str(name_tok), span, args, kwargs, has_parens=lpar is not None)


def _arglist(node: Any, mapper: _Mapper) -> tuple[tuple[Value, ...], tuple[KeyArg, ...]]:
    if node is None:
        return (), ()
    args: list[Value] = []
    kwargs: list[KeyArg] = []
    for arg in node.children:
        if arg is None:
            continue
        if arg.data == "kwarg":
            key_tok, value = arg.children
            kwargs.append(KeyArg(str(key_tok), _tok_span(key_tok, mapper), _value(value, mapper)))
        else:
            args.append(_value(arg.children[0], mapper))
    return tuple(args), tuple(kwargs)


def _unquote(raw: str) -> str:
    quote = raw[0]
    body = raw[1:-1]
    if quote == "'":
        body = body.replace("''", "'")
    return body.replace("\\" + quote, quote).replace("\\\\", "\\")


def _value(node: Any, mapper: _Mapper) -> Value:
    kind = node.data
    span = mapper.span(node.meta.line, node.meta.column,
                       max(1, node.meta.end_pos - node.meta.start_pos))
    children = node.children
    if kind == "string":
        return Str(span, _unquote(str(children[0])))
    if kind == "number":
        raw = str(children[0])
        is_int = not any(c in raw for c in ".eE")
        return Num(span, int(raw) if is_int else float(raw))
    if kind == "name":
        name = str(children[0])
        if name.lower() in ("true", "false"):
            return Bool(span, name.lower() == "true")
        return Ident(span, name)
    if kind == "typed":
        name, type_name, lt, inner, _gt = children
        type_text = str(type_name).upper()
        if lt is not None:
            type_text += f"<{str(inner).upper()}>"
        return Typed(span, str(name), type_text)
    if kind == "call":
        name_tok, _lpar, arglist = children
        args, kwargs = _arglist(arglist, mapper)
        return Call(span, str(name_tok), args, kwargs)
    if kind == "list":
        return ListV(span, tuple(_value(c, mapper) for c in children[1:] if c is not None))
    raise AssertionError(f"unhandled header node {kind}")  # pragma: no cover - grammar bug
