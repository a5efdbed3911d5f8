"""The engine interface: what the runtime needs from DuckDB and Spark alike.

An engine holds named relations (sources, view rows or tiles, offline-store scans, the spine)
and runs SQL in its own dialect over them. Training sets lower one `PointInTimeJoin` per
engine (`pit_sql`); materialization runs the dialect's view SQL (`featql.dialects.lower`).
`open_engine(name, config)` gives the engine of a project; Spark keeps one session per process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

import pyarrow as pa

from featql.core.config import ProjectConfig
from featql.core.errors import UserError
from featql.core.ir import Source
from featql.dialects.pit import PointInTimeJoin

EngineName = Literal["duckdb", "spark"]
ENGINES: tuple[EngineName, ...] = ("duckdb", "spark")


class Engine(Protocol):
    name: EngineName

    def register_source(self, source: Source, root: Path) -> None:
        """Expose a batch source under its name (files local or on S3)."""

    def register_arrow(self, name: str, table: pa.Table) -> None:
        """Expose an Arrow table under `name`."""

    def register_parquet(self, name: str, files: list[str], schema: pa.Schema) -> None:
        """Expose Parquet files (the offline store) under `name`; `schema` when there are none."""

    def register_sql(self, name: str, sql: str) -> None:
        """Expose the result of a query in the engine's dialect as a view `name`."""

    def query(self, sql: str) -> pa.Table:
        """Run a query in the engine's dialect; the result as Arrow."""

    def point_in_time(self, node: PointInTimeJoin, spine: pa.Table) -> pa.Table:
        """Spine (RID, keys, SPINE_TS) joined to every view: RID then feature columns, in RID
        order, one row per spine row."""

    def close(self) -> None:
        """Release what this engine holds (the Spark session is kept for the process)."""


def open_engine(name: str | None, config: ProjectConfig, *,
                deterministic: bool = False) -> Engine:
    """`deterministic`: DuckDB on one thread, so DOUBLE sums add in the same order every run
    (materialization writes byte-identical files)."""
    chosen = (name or config.offline_engine or "duckdb").lower()
    if chosen == "duckdb":
        from featql.engines.duckdb import DuckDBEngine

        return DuckDBEngine(threads=1 if deterministic else None)
    if chosen == "spark":
        from featql.engines.spark import SparkEngine

        return SparkEngine(config.spark_master, config.spark_conf)
    raise UserError(f"unknown engine '{chosen}'; choose duckdb or spark")
