"""Workspace names and the selected workspace (`.featql/workspace`, default "dev")."""

from __future__ import annotations

import re
from pathlib import Path

from featql.core.diagnostics import did_you_mean
from featql.registry.store import DEFAULT_WORKSPACE, Registry, RegistryError

SELECTED_FILE = "workspace"
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise RegistryError(f"invalid workspace name '{name}': use lowercase letters, digits, "
                            "'-' and '_', starting with a letter (at most 40 characters)")
    return name


def selected(root: Path) -> str:
    path = root / ".featql" / SELECTED_FILE
    try:
        name = path.read_text().strip()
    except OSError:
        return DEFAULT_WORKSPACE
    return name or DEFAULT_WORKSPACE


def select(root: Path, name: str) -> None:
    path = root / ".featql" / SELECTED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(name + "\n")
    tmp.replace(path)


def resolve(root: Path, arg: str | None, registry: Registry, *, create_default: bool) -> str:
    """The workspace a command acts on: --workspace, else the selected one, else "dev".

    "dev" springs into existence on first use (when `create_default`); any other workspace
    must be created with `featql workspace create NAME` first.
    """
    name = check_name(arg or selected(root))
    if registry.has_workspace(name):
        return name
    if name == DEFAULT_WORKSPACE:
        if create_default:
            registry.ensure_workspace(name)
        return name
    raise unknown_workspace(name, [w.name for w in registry.workspaces()])


def unknown_workspace(name: str, known: list[str]) -> RegistryError:
    """`workspace 'nope' does not exist; create it with ... (did you mean 'dev'?)`."""
    hint = did_you_mean(name, [*known, DEFAULT_WORKSPACE])
    return RegistryError(f"workspace '{name}' does not exist; create it with "
                         f"`featql workspace create {name}`" + (f" ({hint})" if hint else ""))
