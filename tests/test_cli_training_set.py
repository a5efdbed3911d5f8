"""`featql training-set --out`: a bad output is refused before any work, as a user error."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import featql.jobs.training
from featql.cli import main


@pytest.fixture
def spine(tmp_path: Path) -> Path:
    path = tmp_path / "spine.parquet"
    pq.write_table(pa.table({
        "user_id": pa.array([1, 2], pa.int64()), "merchant_id": pa.array([1, 2], pa.int64()),
        "amount": [1.0, 2.0],
        "ts": pa.array([dt.datetime(2024, 1, 5)] * 2, pa.timestamp("us"))}), path)
    return path


@pytest.fixture
def never_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the training set was computed")

    monkeypatch.setattr(featql.jobs.training, "training_set", refuse)


@pytest.mark.parametrize(("out", "message"), [
    ("x.xlsx", "error: unknown output format '.xlsx' in --out {out}; use .parquet, .csv or "
               ".json"),
    ("/proc/x.parquet", "error: cannot write --out {out}: No such file or directory"),
])
def test_a_bad_out_is_refused_before_computing(out: str, message: str, example_project: Path,
                                               spine: Path, tmp_path: Path, never_computed: None,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    target = out if out.startswith("/") else str(tmp_path / out)
    code = main(["training-set", "fraud_detection", "--project", str(example_project),
                 "--spine", str(spine), "--out", target, "--working-tree"])
    assert code == 1
    assert message.format(out=target) in capsys.readouterr().err.replace("\n", " ")


def test_out_under_a_file_is_a_user_error(example_project: Path, spine: Path, tmp_path: Path,
                                          never_computed: None,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("x")
    target = str(tmp_path / "afile" / "t.parquet")
    code = main(["training-set", "fraud_detection", "--project", str(example_project),
                 "--spine", str(spine), "--out", target, "--working-tree"])
    assert code == 1
    assert f"error: cannot write --out {target}: " in capsys.readouterr().err.replace("\n", " ")


def test_a_good_out_is_written(example_project: Path, spine: Path, tmp_path: Path) -> None:
    target = tmp_path / "deep" / "t.csv"
    assert main(["training-set", "fraud_detection", "--project", str(example_project),
                 "--spine", str(spine), "--out", str(target), "--working-tree"]) == 0
    assert target.read_text().count("\n") == 3  # header + 2 rows
    assert not list(target.parent.glob(".*probe"))


def test_a_corrupt_spine_is_a_user_error(example_project: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    code = main(["training-set", "fraud_detection", "--project", str(example_project),
                 "--spine", str(bad), "--out", str(tmp_path / "t.parquet"), "--working-tree"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"\nerror: cannot read the spine {bad}: " in err
    assert "Parquet magic bytes not found" in err


@pytest.mark.parametrize("what", ["a-file", "under-a-file"])
def test_init_into_or_under_a_file_is_a_user_error(what: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("x")
    target = tmp_path / "afile" if what == "a-file" else tmp_path / "afile" / "p"
    assert main(["init", str(target), "--no-data"]) == 1
    expected = (f"error: '{target}' is a file; choose a new folder" if what == "a-file" else
                f"error: cannot create the project folder '{target}': Not a directory")
    assert capsys.readouterr().err.strip() == expected
