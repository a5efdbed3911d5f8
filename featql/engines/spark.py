"""Spark: the scale-out engine. One SparkSession per process; bound to 127.0.0.1 when local.

Spark has no ASOF join: row-level views are joined with a window plan (see `pit_sql`). Local
files are read by Spark; S3 sources are read by pyarrow (no hadoop-aws jars are bundled) and
handed over as Arrow, which suits the small data sets S3 is used with in tests.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa

from featql.core.ir import Source
from featql.dialects.pit import RID, PointInTimeJoin
from featql.dialects.pit_sql import SPINE, spark_sql
from featql.engines.engine import EngineName
from featql.engines.sources import source_input
from featql.semantics.types import conform, spark_type

_LOCK = threading.Lock()
_SESSION: Any = None


def spark_session(master: str = "local[*]", conf: dict[str, str] | None = None) -> Any:
    """The process's SparkSession, created on first use (later calls reuse it as is)."""
    global _SESSION
    with _LOCK:
        if _SESSION is not None:
            return _SESSION
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.master(master).appName("featql")
        if master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            builder = (builder.config("spark.driver.bindAddress", "127.0.0.1")
                       .config("spark.driver.host", "127.0.0.1"))
        defaults = {"spark.ui.enabled": "false", "spark.sql.session.timeZone": "UTC",
                    "spark.ui.showConsoleProgress": "false",
                    "spark.sql.shuffle.partitions": "8",
                    "spark.sql.execution.arrow.pyspark.enabled": "true"}
        for key, value in {**defaults, **(conf or {})}.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        _SESSION = session
        return session


class SparkEngine:
    name: EngineName = "spark"

    def __init__(self, master: str = "local[*]", conf: dict[str, str] | None = None) -> None:
        self.spark = spark_session(master, conf)
        from featql.semantics.sketches import register_spark_udfs

        register_spark_udfs(self.spark)  # the sketch functions' Python UDFs (featql's merge)
        self._views: list[str] = []
        self._tmp: str | None = None

    def _view(self, name: str, df: Any) -> None:
        df.createOrReplaceTempView(name)
        self._views.append(name)

    def register_source(self, source: Source, root: Path) -> None:
        files, table = source_input(source, root)
        if table is not None:
            self.register_arrow(source.name, table)
            return
        reader = self.spark.read
        fmt = source.batch.format
        if fmt == "parquet":
            df = reader.parquet(*files)
        elif fmt == "csv":
            df = reader.option("header", "true").csv(files)
        else:
            df = reader.json(files)
        if source.schema_from == "ddl" and fmt != "parquet":
            df = df.selectExpr(*(f"CAST(`{c.name}` AS {spark_type(c.type)}) AS `{c.name}`"
                                 for c in source.columns))
        self._view(source.name, df)

    def register_arrow(self, name: str, table: pa.Table) -> None:
        table = _naive(table)
        if table.num_rows > 50_000:  # a local relation this big would travel inside the plan
            import pyarrow.parquet as pq

            if self._tmp is None:
                self._tmp = tempfile.mkdtemp(prefix="featql-spark-")
            path = os.path.join(self._tmp, f"{len(self._views)}-{name}.parquet")
            pq.write_table(table, path, compression="zstd", compression_level=1)
            self._view(name, self.spark.read.parquet(path))
            return
        if table.num_rows == 0:
            from pyspark.sql.pandas.types import from_arrow_schema

            df = self.spark.createDataFrame([], from_arrow_schema(table.schema))
        else:
            df = self.spark.createDataFrame(table)
        self._view(name, df)

    def register_parquet(self, name: str, files: list[str], schema: pa.Schema) -> None:
        if not files:
            self.register_arrow(name, schema.empty_table())
            return
        self._view(name, self.spark.read.parquet(*files).select(*schema.names))

    def register_sql(self, name: str, sql: str) -> None:
        self._view(name, self.spark.sql(sql))

    def query(self, sql: str) -> pa.Table:
        return self.spark.sql(sql).toArrow()

    def point_in_time(self, node: PointInTimeJoin, spine: pa.Table) -> pa.Table:
        self.register_arrow(SPINE, spine)
        out = self.spark.sql(spark_sql(node)).toArrow()
        out = out.sort_by(RID)  # cheaper in Arrow than a global sort in Spark
        return conform(out, {f.column: f.type for v in node.views for f in v.features})

    def close(self) -> None:
        for name in self._views:
            self.spark.catalog.dropTempView(name)
        self._views.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _naive(table: pa.Table) -> pa.Table:
    """Spark reads zone-less Arrow timestamps in the session zone (UTC): keep them naive, in us."""
    cols = []
    for col in table.columns:
        if pa.types.is_timestamp(col.type) and col.type.unit == "ns":
            col = col.cast(pa.timestamp("us", col.type.tz), safe=False)
        cols.append(col)
    return pa.table(cols, names=table.column_names)
