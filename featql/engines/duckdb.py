"""DuckDB, in-process: the default engine (PRODUCT §3 lowered with `ASOF LEFT JOIN`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from featql.core.ir import Source
from featql.dialects.pit import RID, PointInTimeJoin
from featql.dialects.pit_sql import SPINE, duckdb_sql, duckdb_twins_sql
from featql.engines.engine import EngineName
from featql.engines.sources import source_input
from featql.semantics.sketches import register_udfs
from featql.semantics.types import conform, duckdb_type


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


class DuckDBEngine:
    name: EngineName = "duckdb"

    def __init__(self, threads: int | None = None, memory_limit: str | None = None) -> None:
        """`memory_limit` (else env FEATQL_DUCKDB_MEMORY_LIMIT, else DuckDB's default of 80% of
        RAM) bounds DuckDB's buffers; larger joins spill to disk."""
        import os

        import duckdb

        memory_limit = memory_limit or os.environ.get("FEATQL_DUCKDB_MEMORY_LIMIT")
        self.con: Any = duckdb.connect()
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.con.execute(f"SET memory_limit = {_lit(memory_limit)}")
        self.con.execute("SET TimeZone = 'UTC'")
        register_udfs(self.con)  # the sketch functions' Python UDFs (DuckDB has no DataSketches)
        self._keep: dict[str, pa.Table] = {}

    def register_source(self, source: Source, root: Path) -> None:
        files, table = source_input(source, root)
        if table is not None:
            self.register_arrow(source.name, table)
            return
        listing = "[" + ", ".join(_lit(f) for f in files) + "]"
        fmt = source.batch.format
        if fmt == "parquet":
            reader = f"read_parquet({listing}, union_by_name = true)"
        elif fmt == "csv":
            reader = f"read_csv({listing}, header = true, union_by_name = true)"
        else:
            reader = f"read_json({listing}, format = 'auto', union_by_name = true)"
        if source.schema_from == "ddl" and fmt != "parquet":
            cols = ", ".join(f"CAST({_q(c.name)} AS {duckdb_type(c.type)}) AS {_q(c.name)}"
                             for c in source.columns)
            sql = f"SELECT {cols} FROM {reader}"
        else:
            sql = f"SELECT * FROM {reader}"
        self.con.execute(f"CREATE OR REPLACE VIEW {_q(source.name)} AS {sql}")

    def register_arrow(self, name: str, table: pa.Table) -> None:
        self._keep[name] = table
        self.con.register(name, table)

    def register_parquet(self, name: str, files: list[str], schema: pa.Schema) -> None:
        if not files:
            self.register_arrow(name, schema.empty_table())
            return
        listing = "[" + ", ".join(_lit(f) for f in files) + "]"
        cols = ", ".join(_q(n) for n in schema.names)
        self.con.execute(f"CREATE OR REPLACE VIEW {_q(name)} AS SELECT {cols} FROM "
                         f"read_parquet({listing}, union_by_name = true)")

    def register_sql(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE VIEW {_q(name)} AS {_strip(sql)}")

    def query(self, sql: str) -> pa.Table:
        return _arrow(self.con.sql(sql))

    def point_in_time(self, node: PointInTimeJoin, spine: pa.Table) -> pa.Table:
        """The join; views marked `verify` are joined without deduplication, then checked:
        when a row some spine row got has a twin on (keys, ts), the join is run again with
        that view deduplicated, and the result's schema metadata `featql.ties` names it."""
        self.register_arrow(SPINE, spine)
        types = {f.column: f.type for v in node.views for f in v.features}
        if not any(v.verify for v in node.views):
            return conform(_arrow(self.con.sql(duckdb_sql(node))), types)
        result = "_featql_pit_result"
        out = _arrow(self.con.sql(duckdb_sql(node)))
        self.register_arrow(result, out)
        try:
            twins = [v.view for i, v in enumerate(node.views) if v.verify and self.con.sql(
                duckdb_twins_sql(v, i, result)).fetchall()[0][0] > 0]
        finally:
            self.con.unregister(result)
            self._keep.pop(result, None)
        if twins:
            fixed = tuple(replace(v, verify=False, unique=v.unique and v.view not in twins)
                          for v in node.views)
            out = _arrow(self.con.sql(duckdb_sql(replace(node, views=fixed))))
        else:
            out = out.select([RID, *node.columns])
        out = conform(out, types)
        return out.replace_schema_metadata({b"featql.ties": ",".join(twins).encode()})

    def close(self) -> None:
        self.con.close()
        self._keep.clear()


def _strip(sql: str) -> str:
    """Drop full-line comments (a view body must not end inside a comment)."""
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def _arrow(rel: Any) -> pa.Table:
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
    table = fetch()
    return table if isinstance(table, pa.Table) else table.read_all()
