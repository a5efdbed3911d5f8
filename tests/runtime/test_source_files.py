"""A source file that is corrupt, lacks a declared column or holds it with another type fails
with a user error naming the file and the column, never NULLs read in silence (issue 15 items
3 and 5)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featql.cli import main

FILE = "data/transactions/part-000.parquet"


@pytest.fixture
def project(example_project: Path, tmp_path: Path) -> Path:
    root = tmp_path / "features"
    shutil.copytree(example_project, root, ignore=shutil.ignore_patterns(".featql", "target"))
    spine = tmp_path / "spine.parquet"
    pq.write_table(pa.table({
        "user_id": pa.array([1, 2], pa.int64()), "merchant_id": pa.array([1, 2], pa.int64()),
        "amount": [1.0, 2.0], "ts": pa.array([dt.datetime(2024, 1, 20)] * 2,
                                             pa.timestamp("us"))}), spine)
    return root


def training_set(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["training-set", "fraud_detection", "--project", str(root),
                 "--spine", str(root.parent / "spine.parquet"),
                 "--out", str(root.parent / "out.parquet"), "--working-tree"])
    return code, capsys.readouterr().err.strip().splitlines()[-1]


def test_a_file_without_a_declared_column(project: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = project / FILE
    pq.write_table(pq.read_table(path).drop_columns(["amount"]), path)
    assert training_set(project, capsys) == (
        1, f"error: source 'transactions': {path} has no column 'amount' (declared DOUBLE in "
           "sources/transactions.sql)")


def test_a_column_of_another_type(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project / FILE
    table = pq.read_table(path)
    i = table.schema.get_field_index("amount")
    text = pa.array([str(v) for v in table.column("amount").to_pylist()])
    pq.write_table(table.set_column(i, "amount", text), path)
    assert training_set(project, capsys) == (
        1, f"error: source 'transactions': column 'amount' is STRING in {path}, but is declared "
           "DOUBLE in sources/transactions.sql")


def test_a_truncated_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project / FILE
    path.write_bytes(path.read_bytes()[:1000])
    code, line = training_set(project, capsys)
    assert code == 1
    assert line.startswith(f"error: source 'transactions': cannot read {path}: ")


def test_a_file_that_is_not_parquet(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = project / "sources" / "transactions.sql"
    src.write_text(src.read_text().replace("parquet('data/transactions/')",
                                           "parquet('/etc/passwd')"))
    code, line = training_set(project, capsys)
    assert code == 1
    assert line.startswith("error: source 'transactions': cannot read /etc/passwd: ")


def test_intact_files_still_work(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = training_set(project, capsys)
    assert code == 0
    assert pq.read_table(project.parent / "out.parquet").num_rows == 2
