"""The registry interface: what is applied in each workspace, its history, and backfill state.

`Registry` is a Protocol so a shared server database can back it for teams; `SqliteRegistry`
(sqlite.py) is the embedded default at `<project>/.featql/registry.db`. Everything stored is
data (manifest JSON from `featql.core.manifest.dumps`), never pickled code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from featql.core.errors import UserError
from featql.core.ir import Manifest

DEFAULT_WORKSPACE = "dev"


class RegistryError(UserError):
    """A registry operation the user must act on (missing workspace, stale plan, lock held)."""


class StalePlanError(RegistryError):
    """The workspace changed between the plan and the apply."""


@dataclass(frozen=True)
class WorkspaceInfo:
    name: str
    created_at: str
    head: int | None  # id of the last apply, None when nothing is applied yet
    applies: int


@dataclass(frozen=True)
class ApplyRecord:
    id: int
    workspace: str
    applied_at: str  # ISO UTC
    user: str
    git_commit: str | None
    summary: str  # one line: "+2 ~1 !1 -0"
    changes: str  # JSON list of the plan's changes


@dataclass(frozen=True)
class AppliedState:
    apply_id: int
    manifest: Manifest
    record: ApplyRecord


@dataclass(frozen=True)
class BackfillRecord:
    id: int
    apply_id: int
    workspace: str
    view: str
    fingerprint: str
    status: str  # pending | running | done | failed
    message: str
    updated_at: str


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class NewApply:
    """What `Registry.record_apply` writes, atomically."""

    workspace: str
    manifest_json: str
    base_apply: int | None  # the head the plan was computed against
    user: str
    git_commit: str | None
    summary: str
    changes_json: str
    backfills: tuple[tuple[str, str], ...]  # (view, fingerprint) to backfill
    hooks: tuple[tuple[str, str], ...] = ()  # (module path, source text) of Python hooks


class Registry(Protocol):
    def workspaces(self) -> list[WorkspaceInfo]: ...

    def has_workspace(self, name: str) -> bool: ...

    def create_workspace(self, name: str) -> None: ...

    def ensure_workspace(self, name: str) -> None: ...

    def delete_workspace(self, name: str) -> None: ...

    def applied(self, workspace: str) -> AppliedState | None: ...

    def record_apply(self, new: NewApply) -> int: ...

    def history(self, workspace: str) -> list[ApplyRecord]: ...

    def manifest_of(self, apply_id: int) -> Manifest: ...

    def hooks_of(self, apply_id: int) -> dict[str, str]: ...

    def backfills(self, workspace: str) -> list[BackfillRecord]: ...

    def set_backfill(self, backfill_id: int, status: str, message: str = "") -> None: ...

    def materialized(self, workspace: str, view: str, fingerprint: str) -> list[Interval]: ...

    def close(self) -> None: ...
