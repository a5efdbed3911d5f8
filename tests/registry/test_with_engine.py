"""apply with the real offline engine: backfills run, land in the workspace's own folder, and a
rollback to a definition materialized before needs no backfill."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from featql.cli.main import main
from featql.examples.generate import generate
from featql.examples.scaffold import copy_example
from featql.registry import load_applied, open_registry

pytest.importorskip("featql.jobs.materialize")
pytest.importorskip("duckdb")


def test_apply_backfills_then_rollback_reuses_materialized_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    root = tmp_path / "ex"
    copy_example(root)
    generate(root, transactions=3000, days=5)
    p = str(root)
    assert main(["apply", "--project", p, "--yes"]) == 0
    reg = open_registry(root)
    assert {b.status for b in reg.backfills("dev")} == {"done"}
    assert (root / "data/offline/dev/user_txn_aggs").is_dir()
    assert not (root / "data/offline/prod").exists()  # applying to dev never touches prod

    view = root / "views/user_txn_aggs.sql"
    v1 = view.read_text()
    view.write_text(v1.replace("WHERE amount > 0", "WHERE amount > 1"))
    assert main(["apply", "--project", p, "--yes"]) == 0
    capsys.readouterr()
    view.write_text(v1)  # roll back to the first definition
    assert main(["plan", "--project", p]) == 3
    out = capsys.readouterr().out
    assert "-/+ recreate feature view user_txn_aggs (breaking)" in out
    assert "backfill: none, all 120 × 1h intervals are already materialized" in out
    assert main(["apply", "--project", p, "--yes"]) == 0
    assert [b.apply_id for b in reg.backfills("dev")].count(3) == 0  # nothing to recompute
    assert main(["plan", "--project", p]) == 0
    applied = load_applied(root, "dev")
    assert applied.apply_id == 3 and applied.manifest == reg.manifest_of(1)
    reg.close()
