"""Request-transform outputs are checked against their declared types, identically online
(a 422 naming the transform and the output) and in training sets (a user error naming the row);
a hook that raises names its own line (issue 15 item 4)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

import featql
from featql.cli import main
from featql.compiler.project import compile_project
from featql.online.lookup import RequestError
from featql.registry import apply_now
from featql.transforms import TransformError, apply_transforms, compile_transforms

HOOKS = '''
from featql import request_transform


@request_transform(request={"amount": "DOUBLE"}, inputs=["user_profile.credit_limit"],
                   outputs={"ratio": "DOUBLE"})
def text_for_double(amount, credit_limit):
    return {"ratio": "oops"}


@request_transform(request={"amount": "DOUBLE"}, inputs=["user_profile.credit_limit"],
                   outputs={"tags": "ARRAY<STRING>"})
def set_for_array(amount, credit_limit):
    return {"tags": {"a"}}


@request_transform(request={"amount": "DOUBLE"}, inputs=["user_profile.credit_limit"],
                   outputs={"big": "BOOLEAN", "small": "BOOLEAN"})
def omits_an_output(amount, credit_limit):
    return {"big": True}


@request_transform(request={"amount": "DOUBLE"}, inputs=["user_profile.credit_limit"],
                   outputs={"share": "DOUBLE"})
def divides_by_zero(amount, credit_limit):
    zero = 0
    return {"share": amount / zero}


@request_transform(request={"amount": "DOUBLE"}, inputs=["user_profile.credit_limit"],
                   outputs={"fine": "DOUBLE", "count": "BIGINT"})
def well_typed(amount, credit_limit):
    return {"fine": 1, "count": 2}
'''

EXPECTED = {
    "text_for_double": "transform text_for_double failed: output 'ratio' is str 'oops', but is "
                       "declared DOUBLE",
    "set_for_array": "transform set_for_array failed: output 'tags' is set {'a'}, but is "
                     "declared ARRAY<STRING>",
    "omits_an_output": "transform omits_an_output failed: result lacks output(s) small",
    "divides_by_zero": "transform divides_by_zero failed: ZeroDivisionError: float division by "
                       "zero (at hooks/typed.py:27)",
}


@pytest.fixture(scope="module")
def project(serve_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("typed") / "features"
    shutil.copytree(serve_project, root, ignore=shutil.ignore_patterns(".featql", "target"))
    (root / "hooks" / "typed.py").write_text(HOOKS)
    (root / "services" / "typed.sql").write_text(
        "-- @feature_service(name = typed, features = [user_profile.country, text_for_double])\n")
    return root


def _table() -> pa.Table:
    return pa.table({"amount": pa.array([4.0, 8.0], pa.float64()),
                     "user_profile__credit_limit": pa.array([100.0, 50.0], pa.float64())})


@pytest.mark.parametrize("name", list(EXPECTED))
def test_the_same_error_online_and_offline(name: str, project: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    m = compile_project(project).manifest
    assert m is not None
    [online] = compile_transforms(m, project, [name]).values()
    with pytest.raises(TransformError) as got_online:
        online({"request.amount": 4.0, "user_profile.credit_limit": 100.0})
    assert str(got_online.value) == EXPECTED[name]
    with pytest.raises(TransformError) as got_offline:
        apply_transforms(m, project, _table(), [name])
    assert str(got_offline.value) == f"transform {name} failed: row 0: {EXPECTED[name]}"


def test_well_typed_outputs_pass_and_ints_become_doubles(project: Path) -> None:
    m = compile_project(project).manifest
    assert m is not None
    out = apply_transforms(m, project, _table(), ["well_typed"])
    assert out.column("well_typed__fine").to_pylist() == [1.0, 1.0]
    assert out.column("well_typed__count").type == pa.int64()


def test_online_lookup_answers_422_naming_the_transform(project: Path) -> None:
    m = compile_project(project).manifest
    assert m is not None
    apply_now(project, m)
    p = featql.Project(project)
    p.materialize(views=["user_profile"], online=True)
    with pytest.raises(RequestError) as got:
        p.online("typed", [{"user_id": 1}], request=[{"amount": 3.0}], at="2024-02-15T00:00:00")
    assert got.value.status == 422
    assert str(got.value) == f"{EXPECTED['text_for_double']} (entities[0])"


def test_training_set_exits_1_naming_the_row(project: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import datetime as dt

    import pyarrow.parquet as pq

    spine = tmp_path / "spine.parquet"
    pq.write_table(pa.table({"user_id": pa.array([1, 2], pa.int64()), "amount": [1.0, 2.0],
                             "ts": pa.array([dt.datetime(2024, 1, 20)] * 2,
                                            pa.timestamp("us"))}), spine)
    code = main(["training-set", "typed", "--project", str(project), "--spine", str(spine),
                 "--out", str(tmp_path / "t.parquet"), "--working-tree"])
    assert code == 1
    assert (f"error: transform text_for_double failed: row 0: {EXPECTED['text_for_double']}"
            in capsys.readouterr().err)
