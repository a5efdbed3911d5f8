"""apply_transforms: the serving closures over Arrow batches, for training sets."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pytest

from featql.compiler.project import compile_project
from featql.transforms import TransformError, apply_transforms, compile_transforms

from .conftest import copy_with_boom


@pytest.fixture(scope="module")
def project(serve_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_with_boom(serve_project, tmp_path_factory.mktemp("tx") / "features")


def _table(amounts: list[float | None]) -> pa.Table:
    n = len(amounts)
    return pa.table({
        "amount": pa.array(amounts, pa.float64()),
        "user_txn_aggs__amount_avg_7d": pa.array([2.0, 0.0, None, 4.0][:n], pa.float64()),
        "user_txn_aggs__amount_max_30d": pa.array([1.0, 5.0, 3.0, None][:n], pa.float64()),
        "user_txn_aggs__amount_avg_30d": pa.array([1.0, 0.0, 2.0, 3.0][:n], pa.float64()),
        "user_profile__credit_limit": pa.array([100.0, None, 0.0, 50.0][:n], pa.float64()),
    })


def test_columns_equal_the_online_closures(project: Path) -> None:
    m = compile_project(project).manifest
    assert m is not None
    table = _table([4.0, 3.0, None, 8.0])
    out = apply_transforms(m, project, table, ["amount_vs_avg", "amount_features"])
    assert out.column_names[:5] == table.column_names  # input columns kept, in order
    assert out.schema.field("amount_vs_avg__exceeds_max_30d").type == pa.bool_()
    online = compile_transforms(m, project, ["amount_vs_avg", "amount_features"])
    for i, row in enumerate(table.to_pylist()):
        env = {"request.amount": row["amount"]}
        env.update({k.replace("__", ".", 1): v for k, v in row.items() if "__" in k})
        for name, ct in online.items():
            for col, value in ct(env).items():
                got = out.column(f"{name}__{col}")[i].as_py()
                assert got == value or (isinstance(got, float) and math.isnan(got)
                                        and math.isnan(value)), (i, name, col)
    assert out.column("amount_vs_avg__amount_vs_avg_7d").to_pylist()[:3] == [2.0, None, None]


def test_a_raising_hook_names_the_row(project: Path) -> None:
    m = compile_project(project).manifest
    assert m is not None
    with pytest.raises(TransformError, match=r"boom failed: row 2: .*negative amount"):
        apply_transforms(m, project, _table([1.0, 2.0, -1.0, 3.0]), ["boom"])


def test_missing_input_column_is_named(project: Path) -> None:
    m = compile_project(project).manifest
    assert m is not None
    with pytest.raises(TransformError, match="user_profile__credit_limit"):
        apply_transforms(m, project, _table([1.0]).drop_columns(["user_profile__credit_limit"]),
                         ["boom"])
