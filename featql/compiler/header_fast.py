"""A fast path for well-formed decorator headers: a small recursive-descent parser.

It accepts a subset of `header.lark` (the same tokens, the same rules) and builds exactly the
values the lark path builds, with the same spans; on anything it does not accept it returns None
and `header.parse_header` parses with lark, which reports the error. Headers are parsed once
per definition file, so on a large project this halves the time spent on them and lark's parser
is only built when a header has a mistake. `tests/compiler/test_fuzz.py` checks that both paths
agree.
"""

from __future__ import annotations

import bisect
import re
from typing import Any

from featql.core.diagnostics import Span

_TOKEN = re.compile(r"""
    (?P<WS>[ \t\f\r\n]+)
  | (?P<NAME>[A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z0-9_]+)?(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|\*))*)
  | (?P<NUMBER>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<STRING>'(?:[^'\\\n]|\\.|'')*'|"(?:[^"\\\n]|\\.)*")
  | (?P<PUNCT>[@()\[\],=<>])
""", re.VERBOSE)


class _Reject(Exception):
    """The fast path does not accept this header; lark will parse it (and report errors)."""


class _Parser:
    def __init__(self, text: str, span: Any):
        self.span = span  # (line, col, length) -> Span, header coordinates
        self.line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
        self.toks: list[tuple[str, str, int, int]] = []  # kind, text, start, end
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise _Reject
            kind = m.lastgroup or ""
            if kind != "WS":
                value = m.group()
                self.toks.append((value if kind == "PUNCT" else kind, value, pos, m.end()))
            pos = m.end()
        self.i = 0

    # -- tokens ----------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> str:
        j = self.i + ahead
        return self.toks[j][0] if j < len(self.toks) else "$END"

    def take(self, kind: str) -> tuple[str, str, int, int]:
        if self.peek() != kind:
            raise _Reject
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def at(self, start: int, end: int) -> Span:
        line = bisect.bisect_right(self.line_starts, start)
        col = start - self.line_starts[line - 1] + 1
        return self.span(line, col, max(1, end - start))

    # -- rules -----------------------------------------------------------------------------

    def decorators(self) -> list[Any]:
        from featql.compiler.header import Decorator

        out = []
        while self.peek() != "$END":
            at = self.take("@")
            name = self.take("NAME")
            args: tuple[Any, ...] = ()
            kwargs: tuple[Any, ...] = ()
            has_parens = self.peek() == "("
            if has_parens:
                self.take("(")
                if self.peek() != ")":
                    args, kwargs = self.arglist()
                self.take(")")
            out.append(Decorator(name[1], self.at(at[2], at[2] + 1 + len(name[1])), args,
                                 kwargs, has_parens=has_parens))
        return out

    def arglist(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        from featql.compiler.header import KeyArg

        args: list[Any] = []
        kwargs: list[Any] = []
        while True:
            if self.peek() == "NAME" and self.peek(1) == "=":
                key = self.take("NAME")
                self.take("=")
                kwargs.append(KeyArg(key[1], self.at(key[2], key[3]), self.value()))
            else:
                args.append(self.value())
            if self.peek() != ",":
                return tuple(args), tuple(kwargs)
            self.take(",")
            if self.peek() == ")":
                return tuple(args), tuple(kwargs)

    def value(self) -> Any:
        from featql.compiler.header import Bool, Call, Ident, ListV, Num, Str, Typed, _unquote

        kind, text, start, end = self.toks[self.i] if self.i < len(self.toks) else ("$END",
                                                                                  "", 0, 0)
        if kind == "STRING":
            self.i += 1
            return Str(self.at(start, end), _unquote(text))
        if kind == "NUMBER":
            self.i += 1
            is_int = not any(c in text for c in ".eE")
            return Num(self.at(start, end), int(text) if is_int else float(text))
        if kind == "[":
            self.i += 1
            items = []
            while self.peek() != "]":
                items.append(self.value())
                if self.peek() != ",":
                    break
                self.take(",")
            close = self.take("]")
            return ListV(self.at(start, close[3]), tuple(items))
        if kind != "NAME":
            raise _Reject
        self.i += 1
        if self.peek() == "NAME":  # `user_id BIGINT`, `tags ARRAY<STRING>`
            type_tok = self.take("NAME")
            type_text, last = type_tok[1].upper(), type_tok[3]
            if self.peek() == "<":
                self.take("<")
                inner = self.take("NAME")
                last = self.take(">")[3]
                type_text += f"<{inner[1].upper()}>"
            return Typed(self.at(start, last), text, type_text)
        if self.peek() == "(":
            self.take("(")
            args: tuple[Any, ...] = ()
            kwargs: tuple[Any, ...] = ()
            if self.peek() != ")":
                args, kwargs = self.arglist()
            close = self.take(")")
            return Call(self.at(start, close[3]), text, args, kwargs)
        if text.lower() in ("true", "false"):
            return Bool(self.at(start, end), text.lower() == "true")
        return Ident(self.at(start, end), text)


def parse_fast(text: str, span: Any) -> list[Any] | None:
    """The decorators of a header, or None when the fast path does not accept it."""
    try:
        parser = _Parser(text, span)
        return parser.decorators()
    except (_Reject, RecursionError):
        return None
