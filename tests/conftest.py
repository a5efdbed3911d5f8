"""Session-wide fixtures: the example project (features/) with small generated data, compiled.

Generic on purpose: any test that needs a real project with data can use them. Both are built
once per session in a temporary copy, so tests never write into the repository's features/.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from featql.compiler.project import CompileResult, compile_project
from featql.examples.generate import generate

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "features"
EXAMPLE_TRANSACTIONS = 20_000
EXAMPLE_DAYS = 30


@pytest.fixture(scope="session")
def example_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of features/ with freshly generated data (20k transactions over 30 days)."""
    root = tmp_path_factory.mktemp("example") / "features"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("data", "target", ".featql"))
    generate(root, transactions=EXAMPLE_TRANSACTIONS, days=EXAMPLE_DAYS)
    return root


@pytest.fixture(scope="session")
def example_compiled(example_project: Path) -> CompileResult:
    """`compile_project(example_project)`; fails the session's users if the example has errors."""
    result = compile_project(example_project)
    if not result.ok:
        problems = "\n".join(d.headline() for d in result.diagnostics)
        pytest.fail(f"the example project does not compile:\n{problems}")
    return result


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The test session's one SparkSession (local[2], bound to 127.0.0.1, UTC): Spark starts
    once for every suite (the runtime's `spark_engine` wraps this same session)."""
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from featql.engines import spark as spark_module

    session = spark_module.spark_session("local[2]", {"spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()
    spark_module._SESSION = None
