"""Helpers shared by plan, apply, workspace and history: open the registry, print plans.

The registry is imported when used: every command module is imported to build the CLI
parser, and `featql check` / `compile` should not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from featql.cli.console import UserError, console

if TYPE_CHECKING:
    from featql.registry import SqliteRegistry
    from featql.registry.planner import Plan


@contextmanager
def registry_for(root: Path) -> Iterator[SqliteRegistry]:
    """The project's registry; registry problems become user errors (exit code 1)."""
    from featql.registry import RegistryError, open_registry

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
    from featql.registry.render import plan_lines

    out = console()
    for text, style in plan_lines(plan):
        out.print(text, style=style or None, markup=False, highlight=False)
