"""One `Diagnostic` type for every user-facing problem, and the collection stages report into.

A diagnostic always carries a span in a file (path, 1-based line and column, and the character
offsets that let the renderer underline the source). Stages never raise for user mistakes: they
append to a `Diagnostics` and carry on, so that one `featql check` shows every mistake at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from featql.core.errors import UserError


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Span:
    """A place in a definition file. `start`/`end` are character offsets into the file text."""

    path: str
    line: int
    col: int
    start: int = -1
    end: int = -1

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"

    @staticmethod
    def whole_file(path: str) -> Span:
        return Span(path, 1, 1)


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    severity: Severity = Severity.ERROR
    hint: str | None = None

    def headline(self) -> str:
        """The one-line form every tool can parse: `path:line:col: error[CODE]: message`."""
        return f"{self.span}: {self.severity.value}[{self.code}]: {self.message}"

    def render(self, source: str | None = None) -> str:
        """Headline, the offending source line with a caret underline, and the hint."""
        lines = [self.headline()]
        if source is not None:
            snippet = _snippet(source, self.span)
            if snippet:
                lines.extend(snippet)
        if self.hint:
            lines.append(f"  = help: {self.hint}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "path": self.span.path,
            "line": self.span.line,
            "col": self.span.col,
            "hint": self.hint,
        }


def _snippet(source: str, span: Span) -> list[str]:
    src_lines = source.splitlines()
    if not 1 <= span.line <= len(src_lines):
        return []
    text = src_lines[span.line - 1].expandtabs(1)
    width = 1
    if span.start >= 0 and span.end > span.start:
        width = max(1, min(span.end - span.start, len(text) - span.col + 1))
    gutter = f"{span.line:>4} | "
    return [gutter + text, " " * (len(gutter) + span.col - 1) + "^" * width]


@dataclass
class Diagnostics:
    """An ordered, de-duplicated collection of diagnostics."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diag: Diagnostic) -> None:
        if diag not in self.items:
            self.items.append(diag)

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.add(Diagnostic(code, message, span, Severity.ERROR, hint))

    def warning(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.add(Diagnostic(code, message, span, Severity.WARNING, hint))

    def extend(self, diags: Iterable[Diagnostic]) -> None:
        for d in diags:
            self.add(d)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.WARNING]

    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=lambda d: (d.span.path, d.span.line, d.span.col, d.code))

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.sorted())

    def __len__(self) -> int:
        return len(self.items)


class FeatqlError(UserError):
    """Raised at an API boundary when a stage reported errors; carries the diagnostics."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(d.headline() for d in self.diagnostics))


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean" hint for `word` among `candidates`, or None when nothing is close."""
    pool = sorted(set(candidates))
    lowered = {c.lower(): c for c in pool}
    matches = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    if matches:
        return f"did you mean '{lowered[matches[0]]}'?"
    return None


def offset_to_line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset (clamped to the text)."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    last_nl = text.rfind("\n", 0, offset)
    return line, offset - last_nl


class SourceFile:
    """A definition file's text with fast offset → span conversion."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        self._line_starts = [0]
        at = text.find("\n")
        while at >= 0:
            self._line_starts.append(at + 1)
            at = text.find("\n", at + 1)

    def span(self, start: int, end: int | None = None) -> Span:
        import bisect

        start = max(0, min(start, len(self.text)))
        idx = bisect.bisect_right(self._line_starts, start) - 1
        return Span(self.path, idx + 1, start - self._line_starts[idx] + 1, start,
                    start if end is None else end)

    def line_col_span(self, line: int, col: int, length: int = 1) -> Span:
        line = max(1, min(line, len(self._line_starts)))
        start = self._line_starts[line - 1] + col - 1
        return Span(self.path, line, col, start, start + length)
