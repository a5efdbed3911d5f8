"""`featql workspace create|list|delete|select [NAME]`: isolated namespaces (dev, prod, ...).

Each workspace has its own applied definitions, history, offline data (`<offline path>/<name>/`)
and online tables. The selected workspace (kept in `.featql/workspace`) is the default of every
`--workspace` option; "dev" until another is selected.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from featql.cli.commands._common import project_root
from featql.cli.commands._registry import registry_for
from featql.cli.console import UserError, console

if TYPE_CHECKING:
    from featql.registry import SqliteRegistry

ACTIONS = ("create", "list", "delete", "select")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS, help="what to do")
    p.add_argument("name", nargs="?", help="workspace name (create, delete, select)")
    p.add_argument("--yes", "-y", action="store_true", help="delete without asking")


def run(args: argparse.Namespace) -> int:
    from featql.registry import DEFAULT_WORKSPACE
    from featql.registry import workspaces as ws

    root = project_root(args.project)
    if args.action != "list" and not args.name:
        raise UserError(f"featql workspace {args.action} needs a workspace NAME")
    out = console()
    with registry_for(root) as reg:
        current = ws.selected(root)
        if args.action == "list":
            reg_names = {w.name: w for w in reg.workspaces()}
            names = sorted(set(reg_names) | {DEFAULT_WORKSPACE})
            offline = _offline_path(root)
            for name in names:
                info = reg_names.get(name)
                mark = "*" if name == current else " "
                head = (f"apply #{info.head}, {info.applies} applies" if info and info.head
                        else "nothing applied")
                out.print(f"{mark} {name:<16} {head:<28} offline: {offline}/{name}/",
                          markup=False)
            return 0
        name = ws.check_name(args.name)
        if args.action == "create":
            reg.create_workspace(name)
            out.print(f"Created workspace '{name}'. Select it with `featql workspace select "
                      f"{name}` or pass --workspace {name}.", markup=False)
        elif args.action == "select":
            if not reg.has_workspace(name) and name != DEFAULT_WORKSPACE:
                ws.resolve(root, name, reg, create_default=False)  # raises with a hint
            ws.select(root, name)
            out.print(f"Selected workspace '{name}'.", markup=False)
        else:
            _delete(root, reg, name, current, args.yes)
    return 0


def _delete(root: Path, reg: SqliteRegistry, name: str, current: str, yes: bool) -> None:
    from featql.registry import workspaces as ws

    if name == current:
        raise UserError(f"workspace '{name}' is selected; select another one before deleting it")
    ws.resolve(root, name, reg, create_default=False)
    state = reg.applied(name)
    if state is not None:
        m = state.manifest
        guarded = [f"{k} '{o.name}'" for k, objs in
                   (("source", m.sources), ("feature view", m.views), ("service", m.services))
                   for o in objs if o.prevent_destroy]
        if guarded:
            raise UserError(f"refusing to delete workspace '{name}': it holds "
                            f"{', '.join(guarded)} marked prevent_destroy = true")
    if not yes:
        if not sys.stdin.isatty():
            raise UserError(f"deleting workspace '{name}' needs confirmation: rerun with --yes")
        if input(f"Delete workspace '{name}' and its history? [y/N] ").strip().lower() not in (
                "y", "yes"):
            console().print("Cancelled.")
            return
    reg.delete_workspace(name)
    console().print(f"Deleted workspace '{name}' from the registry. Its offline data "
                    f"({_offline_path(root)}/{name}/) and online tables are left in place.",
                    markup=False)


def _offline_path(root: Path) -> str:
    from featql.core.config import CONFIG_FILE, load_config
    from featql.core.diagnostics import Diagnostics

    return load_config(root, str(root / CONFIG_FILE), Diagnostics()).offline_path.rstrip("/")
