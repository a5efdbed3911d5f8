"""The registry: applied definitions per workspace, apply history, plans and backfill state.

`open_registry(root)` opens the embedded SQLite registry of a project; `build_plan` diffs a
compiled manifest against a workspace; `record` applies a plan atomically. See README.md.
"""

from __future__ import annotations

from pathlib import Path

from featql.core.ir import Manifest
from featql.registry.sqlite import SqliteRegistry, registry_path
from featql.registry.store import (
    DEFAULT_WORKSPACE,
    Registry,
    RegistryError,
    StalePlanError,
)


def open_registry(root: Path, timeout: float | None = None) -> SqliteRegistry:
    return SqliteRegistry(registry_path(root), timeout)


def applied_manifest(root: Path, workspace: str = DEFAULT_WORKSPACE) -> Manifest | None:
    """What is applied to `workspace` (None when nothing is, or the project has no registry):
    the definitions the runtime and the server of that workspace should use."""
    from featql.registry.sqlite import registry_path as _path

    if not _path(root).exists():
        return None
    reg = open_registry(root)
    try:
        state = reg.applied(workspace)
    finally:
        reg.close()
    return state.manifest if state else None


__all__ = ["DEFAULT_WORKSPACE", "Registry", "RegistryError", "SqliteRegistry", "StalePlanError",
           "applied_manifest", "open_registry"]
