"""The Python API (PRODUCT §6): `featql.Project(path, workspace=...)`.

What runs is what was applied (PRODUCT §3): `online` and `materialize` use the definitions
applied to the workspace (its manifest and hook sources in the registry), never unapplied edits
of the working tree; an `UnappliedChangesWarning` says when the working tree differs.
`training_set` uses them too when something is applied; otherwise, or with
`working_tree=True`, it computes from the sources with the working tree's definitions and says
so (`WorkingTreeWarning`). The workspace defaults to the selected one
(`featql workspace select`), else dev; an unknown workspace raises a `RegistryError`.
"""

from __future__ import annotations

import warnings
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featql.compiler.project import CompileResult, compile_project
from featql.core.diagnostics import FeatqlError
from featql.core.ir import Manifest

if TYPE_CHECKING:
    import datetime as dt

    import pyarrow as pa

    from featql.core.config import ProjectConfig
    from featql.jobs.materialize import MaterializeReport
    from featql.online.lookup import OnlineService
    from featql.registry import Applied


class UnappliedChangesWarning(UserWarning):
    """The working tree differs from what is applied; the applied definitions run."""


class WorkingTreeWarning(UserWarning):
    """A training set computed from the sources with the working tree's definitions."""


class Project:
    """A feature repository on disk. `workspace=None`: the selected one (else dev)."""

    def __init__(self, path: str | Path = ".", workspace: str | None = None):
        from featql.registry import workspace_of

        self.root = Path(path)
        self.workspace = workspace_of(self.root, workspace)

    @cached_property
    def compiled(self) -> CompileResult:
        """The working tree, compiled (what `featql check` / `plan` see)."""
        return compile_project(self.root)

    @property
    def manifest(self) -> Manifest:
        """The working tree's manifest; raises FeatqlError carrying every diagnostic on errors.
        What runs is `applied.manifest`."""
        result = self.compiled
        if not result.ok or result.manifest is None:
            raise FeatqlError(result.diagnostics.errors)
        return result.manifest

    @cached_property
    def applied(self) -> Applied:
        """The workspace's applied definitions (RegistryError when the workspace does not exist
        or has nothing applied); warns once when the working tree differs from them."""
        from featql.registry import load_applied, unapplied_changes, unapplied_warning

        applied = load_applied(self.root, self.workspace)
        result = self.compiled
        if result.ok and result.manifest is not None:
            message = unapplied_warning(applied, unapplied_changes(applied.manifest,
                                                                   result.manifest))
        else:
            message = f"the project does not compile; using {applied.label}"
        if message:
            warnings.warn(message, UnappliedChangesWarning, stacklevel=3)
        return applied

    @property
    def config(self) -> ProjectConfig:
        return self.compiled.config

    @cached_property
    def _online(self) -> OnlineService:
        from featql.online.lookup import OnlineService
        from featql.online.stores import open_store

        manifest = self.applied.run_manifest
        store = open_store(self.config, self.root, self.workspace, create=False)
        return OnlineService(manifest, store, self.root)

    def online(self, service: str, entities: list[dict[str, Any]],
               request: list[dict[str, Any]] | dict[str, Any] | None = None,
               at: dt.datetime | str | None = None) -> list[dict[str, Any]]:
        """Feature vectors from the online store, exactly as `POST /v1/features/<service>`
        returns them (same code path, the applied definitions): one dict per entity,
        `"<view>.<feature>"` and `"<transform>.<output>"` keys. `at` (naive UTC) replays a
        lookup at another time. Raises `featql.online.lookup.RequestError` (a ValueError)
        for bad input."""
        from featql.online.codec import to_micros
        from featql.online.lookup import parse_time

        now = parse_time(at) if isinstance(at, str) else None if at is None else to_micros(at)
        rows, _meta = self._online.lookup(service, entities, request, now)
        return rows

    def training_set(self, service: str, spine: Any, *, timestamp: str | None = None,
                     engine: str | None = None, working_tree: bool = False) -> pa.Table:
        """Point-in-time-correct training data for `service` (PRODUCT §3) as a pyarrow Table:
        one row per spine row, in spine order, spine columns kept, then `<view>__<feature>`
        and `<transform>__<output>` columns. `spine` is a pyarrow Table, a pandas DataFrame or a
        path (Parquet, CSV, JSON lines); `timestamp` names its time column when it has several;
        `engine` is "duckdb" or "spark" (default: `[offline] engine`).

        The workspace's applied definitions run (views read from the offline store where
        materialized); with `working_tree=True`, or while nothing is applied, the working
        tree's definitions are computed from the sources (a WorkingTreeWarning says so)."""
        from featql.jobs.training import training_set
        from featql.registry import find_applied

        applied = None if working_tree else find_applied(self.root, self.workspace)
        if applied is not None:
            manifest = self.applied.run_manifest
        else:
            from featql.registry.applied import check_hook_paths

            manifest = self.manifest
            check_hook_paths(self.root, manifest)
            why = "working_tree=True" if working_tree else \
                f"nothing is applied to workspace '{self.workspace}'"
            warnings.warn(f"training set computed from the sources with the working tree's "
                          f"definitions ({why})", WorkingTreeWarning, stacklevel=2)
        return training_set(self.root, manifest, self.config, service, spine,
                            engine=engine, timestamp=timestamp, workspace=self.workspace,
                            use_store=applied is not None)

    def materialize(self, views: list[str] | None = None, start: str | None = None,
                    end: str | None = None, overwrite: bool = False,
                    engine: str | None = None, online: bool = False) -> MaterializeReport:
        """Batch materialization of the applied definitions into this workspace's offline
        store (`featql materialize`); `online=True` then loads the online store."""
        from featql.jobs.materialize import materialize

        return materialize(self.root, self.applied.run_manifest, self.workspace, views, start,
                           end, overwrite, engine, config=self.config, online=online)
