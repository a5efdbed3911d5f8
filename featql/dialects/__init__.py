"""Dialects and lowering: a compiled feature view → the SQL computing its rows on DuckDB or Spark.

See README.md in this folder for the stage's inputs, outputs and contract.
"""

from featql.dialects.compat import require_pure_sqlglot

require_pure_sqlglot()  # before anything builds a dialect: a clear error, not a crash later

# ruff: noqa: E402

from featql.dialects.contract import CREATED, TILE_START, lowered_columns, tile_partials
from featql.dialects.duckdb import FeatqlDuckDB
from featql.dialects.errors import TARGETS, LoweringError, Target
from featql.dialects.expressions import TimeFloor
from featql.dialects.lower import lower_all, lower_view
from featql.dialects.render import generate, transpile
from featql.dialects.spark import FeatqlSpark

__all__ = [
    "CREATED",
    "TARGETS",
    "TILE_START",
    "FeatqlDuckDB",
    "FeatqlSpark",
    "LoweringError",
    "Target",
    "TimeFloor",
    "generate",
    "lower_all",
    "lower_view",
    "lowered_columns",
    "tile_partials",
    "transpile",
]
