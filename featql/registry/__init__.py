"""The registry: applied definitions per workspace, apply history, plans and backfill state.

`open_registry(root)` opens the embedded SQLite registry of a project; `build_plan` diffs a
compiled manifest against a workspace; `record` applies a plan atomically;
`load_applied(root, workspace)` is what runs (PRODUCT §3): the workspace's applied manifest and
hook sources. `selected(root)` is the workspace `featql workspace select` chose. See README.md.
"""

from __future__ import annotations

from pathlib import Path

from featql.core.ir import Manifest
from featql.registry.applied import (
    Applied,
    HookPathError,
    find_applied,
    load_applied,
    unapplied_changes,
    unapplied_warning,
    workspace_of,
)
from featql.registry.sqlite import SqliteRegistry, registry_path
from featql.registry.store import (
    DEFAULT_WORKSPACE,
    Registry,
    RegistryError,
    StalePlanError,
)
from featql.registry.workspaces import selected


def open_registry(root: Path, timeout: float | None = None) -> SqliteRegistry:
    return SqliteRegistry(registry_path(root), timeout)


def apply_now(root: Path, manifest: Manifest, workspace: str = DEFAULT_WORKSPACE) -> int:
    """Plan `manifest` against `workspace` and record it, without asking and without running
    its backfills (they stay pending for `featql materialize`); the apply's id. For scripts and
    test fixtures; `featql apply` is the command."""
    from featql.registry import workspaces
    from featql.registry.applier import build_plan, record

    reg = open_registry(root)
    try:
        ws = workspaces.resolve(root, workspace, reg, create_default=True)
        plan = build_plan(root, manifest, reg, ws)
        if not plan.has_changes and plan.base is not None:
            return plan.base.id
        return record(root, reg, plan)
    finally:
        reg.close()


__all__ = ["DEFAULT_WORKSPACE", "Applied", "HookPathError", "Registry", "RegistryError",
           "SqliteRegistry", "StalePlanError", "apply_now", "find_applied", "load_applied",
           "open_registry", "selected", "unapplied_changes", "unapplied_warning",
           "workspace_of"]
