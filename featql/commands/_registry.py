"""Helpers shared by plan, apply, workspace and history: open the registry, print plans."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from featql.console import UserError, console
from featql.registry import RegistryError, SqliteRegistry, open_registry
from featql.registry.planner import Plan
from featql.registry.render import plan_lines


@contextmanager
def registry_for(root: Path) -> Iterator[SqliteRegistry]:
    """The project's registry; registry problems become user errors (exit code 1)."""
    try:
        reg = open_registry(root)
    except RegistryError as e:
        raise UserError(str(e)) from e
    try:
        yield reg
    except RegistryError as e:
        raise UserError(str(e)) from e
    finally:
        reg.close()


def add_workspace_argument(p: object) -> None:
    p.add_argument("--workspace", "-w", metavar="W",  # type: ignore[attr-defined]
                   help="workspace (default: the selected one, see `featql workspace select`; "
                   "initially dev)")


def print_plan(plan: Plan) -> None:
    out = console()
    for text, style in plan_lines(plan):
        out.print(text, style=style or None, markup=False, highlight=False)
