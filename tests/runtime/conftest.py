"""Fixtures of the runtime tests: one Spark engine per test session (local[2], 127.0.0.1)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark_engine() -> Iterator[Any]:
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from featql.runtime.spark_engine import SparkEngine

    engine = SparkEngine("local[2]", {"spark.sql.shuffle.partitions": "4"})
    yield engine
    engine.close()
