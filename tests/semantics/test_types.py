"""The one type map: every featql type written as Arrow, DuckDB, Spark, sqlglot and Python."""

from __future__ import annotations

import pyarrow as pa
import pytest
from sqlglot import exp

from featql.core.types import ALL_TYPES, from_arrow, from_sqlglot
from featql.semantics.types import (
    arrow_type,
    conform,
    duckdb_type,
    python_accepts,
    python_value,
    spark_type,
    sql_type,
    sqlglot_type,
)

SPELLINGS = {  # featql: (DuckDB, Spark)
    "BIGINT": ("BIGINT", "BIGINT"), "INT": ("INTEGER", "INT"), "DOUBLE": ("DOUBLE", "DOUBLE"),
    "FLOAT": ("FLOAT", "FLOAT"), "STRING": ("VARCHAR", "STRING"),
    "BOOLEAN": ("BOOLEAN", "BOOLEAN"), "TIMESTAMP": ("TIMESTAMP", "TIMESTAMP"),
    "DATE": ("DATE", "DATE"), "ARRAY<STRING>": ("VARCHAR[]", "ARRAY<STRING>"),
    "ARRAY<BIGINT>": ("BIGINT[]", "ARRAY<BIGINT>"), "ARRAY<DOUBLE>": ("DOUBLE[]", "ARRAY<DOUBLE>"),
}


def test_every_type_has_each_spelling() -> None:
    assert set(SPELLINGS) == set(ALL_TYPES)
    for t, (duck, spark) in SPELLINGS.items():
        assert duckdb_type(t) == duck == sql_type("duckdb", t)
        assert spark_type(t) == spark == sql_type("spark", t)
        assert duckdb_type(t.lower()) == duck
    with pytest.raises(ValueError, match="unknown SQL dialect"):
        sql_type("postgres", "INT")


@pytest.mark.parametrize("t", ALL_TYPES)
def test_the_map_round_trips_through_the_recognizers(t: str) -> None:
    assert from_arrow(arrow_type(t)) == t
    assert from_sqlglot(sqlglot_type(t)) == t
    # what the lowering used before the one map (`to_sqlglot`): the same parsed type
    assert sqlglot_type(t) == exp.DataType.build(t.replace("STRING", "VARCHAR"), dialect="duckdb")


@pytest.mark.parametrize("t", ALL_TYPES)
def test_duckdb_returns_the_arrow_type_of_its_spelling(t: str) -> None:
    import duckdb

    con = duckdb.connect()
    try:
        rel = con.sql(f"SELECT CAST(NULL AS {duckdb_type(t)}) AS x")
        fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
        got = fetch().schema.field("x").type
    finally:
        con.close()
    want = arrow_type(t)
    if pa.types.is_list(want):
        assert pa.types.is_list(got) and got.value_type == want.value_type
    else:
        assert got == want


def test_python_values_and_acceptance() -> None:
    assert python_value(3.0, "BIGINT") == 3 and type(python_value(3.0, "BIGINT")) is int
    assert type(python_value(3, "DOUBLE")) is float
    assert python_value(1, "BOOLEAN") is True and python_value(0.0, "BOOLEAN") is False
    assert python_value(None, "DOUBLE") is None and python_value("x", "STRING") == "x"
    assert python_accepts(None, "BIGINT")
    assert python_accepts(1, "BIGINT") and not python_accepts(True, "BIGINT")
    assert not python_accepts(1.5, "INT") and python_accepts(1, "DOUBLE")
    assert not python_accepts(False, "DOUBLE") and python_accepts(2.5, "FLOAT")
    assert python_accepts("a", "STRING") and not python_accepts(1, "STRING")
    assert python_accepts(True, "BOOLEAN") and not python_accepts(1, "BOOLEAN")
    assert python_accepts("2024-01-01T00:00:00", "TIMESTAMP") and not python_accepts(1, "DATE")
    assert python_accepts({"any": 1}, "ARRAY<STRING>")  # not checked: anything goes


def test_conform_casts_zoned_timestamps_and_large_strings() -> None:
    table = pa.table({"t": pa.array([0], pa.timestamp("ns", "UTC")),
                      "s": pa.array(["a"], pa.large_string()), "x": pa.array([1], pa.int8())})
    out = conform(table, {"t": "TIMESTAMP", "s": "STRING"})
    assert out.schema == pa.schema([("t", pa.timestamp("us")), ("s", pa.string()),
                                    ("x", pa.int8())])
