"""The Python API (PRODUCT §6): `featql.Project(path, workspace=...)`."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featql.compiler.project import CompileResult, compile_project
from featql.core.diagnostics import FeatqlError
from featql.core.ir import Manifest

if TYPE_CHECKING:
    import datetime as dt

    import pyarrow as pa

    from featql.jobs.materialize import MaterializeReport
    from featql.online.lookup import OnlineService


class Project:
    """A feature repository on disk, compiled on first use."""

    def __init__(self, path: str | Path = ".", workspace: str = "dev"):
        self.root = Path(path)
        self.workspace = workspace

    @cached_property
    def compiled(self) -> CompileResult:
        return compile_project(self.root)

    @property
    def manifest(self) -> Manifest:
        """The compiled manifest; raises FeatqlError carrying every diagnostic on errors."""
        result = self.compiled
        if not result.ok or result.manifest is None:
            raise FeatqlError(result.diagnostics.errors)
        return result.manifest

    @cached_property
    def _online(self) -> OnlineService:
        from featql.online.lookup import OnlineService
        from featql.online.stores import open_store

        config = self.compiled.config
        store = open_store(config, self.root, self.workspace, create=False)
        return OnlineService(self.manifest, store, self.root)

    def online(self, service: str, entities: list[dict[str, Any]],
               request: list[dict[str, Any]] | dict[str, Any] | None = None,
               at: dt.datetime | str | None = None) -> list[dict[str, Any]]:
        """Feature vectors from the online store, exactly as `POST /v1/features/<service>`
        returns them (same code path): one dict per entity, `"<view>.<feature>"` and
        `"<transform>.<output>"` keys. `at` (naive UTC) replays a lookup at another time.
        Raises `featql.online.lookup.RequestError` (a ValueError) for bad input."""
        from featql.online.codec import to_micros
        from featql.online.lookup import parse_time

        now = parse_time(at) if isinstance(at, str) else None if at is None else to_micros(at)
        rows, _meta = self._online.lookup(service, entities, request, now)
        return rows

    def training_set(self, service: str, spine: Any, *, timestamp: str | None = None,
                     engine: str | None = None) -> pa.Table:
        """Point-in-time-correct training data for `service` (PRODUCT §3) as a pyarrow Table:
        one row per spine row, in spine order, spine columns kept, then `<view>__<feature>`
        and `<transform>__<output>` columns. `spine` is a pyarrow Table, a pandas DataFrame or a
        path (Parquet, CSV, JSON lines); `timestamp` names its time column when it has several;
        `engine` is "duckdb" or "spark" (default: `[offline] engine`)."""
        from featql.jobs.training import training_set

        return training_set(self.root, self.manifest, self.compiled.config, service, spine,
                            engine=engine, timestamp=timestamp, workspace=self.workspace)

    def materialize(self, views: list[str] | None = None, start: str | None = None,
                    end: str | None = None, overwrite: bool = False,
                    engine: str | None = None) -> MaterializeReport:
        """Batch materialization into this workspace's offline store (`featql materialize`)."""
        from featql.jobs.materialize import materialize

        return materialize(self.root, self.manifest, self.workspace, views, start, end,
                           overwrite, engine, config=self.compiled.config)
