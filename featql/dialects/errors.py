"""`LoweringError`: a view (or a query) that cannot be generated correctly for an engine.

It carries one `Diagnostic` so the caller reports it like any other compile error, at the view's
file location. Codes: E701 for a construct an engine cannot run (or sqlglot cannot translate
faithfully), E702 for a view the offline lowering cannot express.
"""

from __future__ import annotations

from typing import Literal

from featql.core.diagnostics import Diagnostic, Span
from featql.core.errors import UserError

Target = Literal["duckdb", "spark"]
TARGETS: tuple[Target, ...] = ("duckdb", "spark")
ENGINE_NAMES: dict[Target, str] = {"duckdb": "DuckDB", "spark": "Spark"}

NO_SPAN = Span("<sql>", 1, 1)


class LoweringError(UserError):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic
        super().__init__(diagnostic.headline())


def refuse(message: str, span: Span = NO_SPAN, *, hint: str | None = None,
           code: str = "E701") -> LoweringError:
    """The error to raise; `raise refuse(...)` keeps the call site readable."""
    return LoweringError(Diagnostic(code, message, span, hint=hint))
