"""What the aggregate-function tests (exact functions, sketch functions) share: a one-view
project selecting given aggregations, its typed aggregations, and the check that a bad call is
exactly one positioned error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from featql.compiler.project import CompileResult

AGG = ("-- @feature_view(name = g, entity = user, timestamp = event_ts,\n"
       "--               windows = ['1d', '7d'], slide = '1d', start = '2024-01-01')\n")

# the parameters of a bad-call case: (id, select, "line:col", code, message, the text at the
# position, hint (None: a hint starting with "CAST the input"))
BAD_FIELDS = ("case", "select", "where", "code", "message", "at", "hint")


def view(select: str) -> dict[str, str]:
    """Files of an aggregate view `g` over the base source txns (1d and 7d windows)."""
    return {"views/g.sql": AGG + f"SELECT user_id, {select} FROM txns GROUP BY user_id\n"}


def typed_aggregations(result: CompileResult) -> dict[str, tuple[str, str, tuple[Any, ...]]]:
    """View g's aggregations as {alias: (function, type, args)}; the project must compile."""
    assert result.ok, [d.headline() for d in result.diagnostics]
    return {a.name: (a.function, a.type, a.args) for a in result.manifest.view("g").aggregations}


def assert_one_positioned_error(result: CompileResult, root: Path, where: str, code: str,
                                message: str, at: str, hint: str | None) -> None:
    """Exactly one error, in views/g.sql at `where`, with this code, message and hint, whose
    span starts at the text `at`."""
    errors = result.diagnostics.errors
    assert [d.headline() for d in errors] == [f"views/g.sql:{where}: error[{code}]: {message}"]
    diag = errors[0]
    assert diag.hint == hint or (hint is None and diag.hint is not None
                                 and diag.hint.startswith("CAST the input"))
    line = (root / diag.span.path).read_text().split("\n")[diag.span.line - 1]
    assert line[diag.span.col - 1:].startswith(at), (line, diag.span.col)


def assert_misspelt(result: CompileResult, hint: str) -> None:
    """One error, an unknown function (E409), with this did-you-mean hint."""
    [diag] = result.diagnostics.errors
    assert diag.code == "E409" and diag.hint == hint
