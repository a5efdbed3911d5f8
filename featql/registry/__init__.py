"""The registry: applied definitions per workspace, apply history, plans and backfill state.

`open_registry(root)` opens the embedded SQLite registry of a project; `build_plan` diffs a
compiled manifest against a workspace; `record` applies a plan atomically. See README.md.
"""

from __future__ import annotations

from pathlib import Path

from featql.registry.sqlite import SqliteRegistry, registry_path
from featql.registry.store import (
    DEFAULT_WORKSPACE,
    Registry,
    RegistryError,
    StalePlanError,
)


def open_registry(root: Path, timeout: float | None = None) -> SqliteRegistry:
    return SqliteRegistry(registry_path(root), timeout)


__all__ = ["DEFAULT_WORKSPACE", "Registry", "RegistryError", "SqliteRegistry", "StalePlanError",
           "open_registry"]
