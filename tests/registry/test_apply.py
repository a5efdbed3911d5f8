"""`featql plan` / `apply` / `workspace` / `history` through the CLI, in process."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from featql.cli.commands import apply as apply_command
from featql.cli.main import main
from featql.registry import StalePlanError, applier
from featql.registry.materializations import Done, MaterializationState
from featql.registry.planner import make_plan

from .helpers import NOW, Proj, write_txns

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """featql ARGS... in process; stdin is not a terminal; returns (code, stdout, stderr)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    def go(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return go


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apply_command, "offline_engine", lambda: None)


def test_plan_exit_codes_text_and_json(proj: Proj, run: Run, no_engine: None) -> None:
    p = str(proj.root)
    code, out, _ = run("plan", "--project", p)
    assert code == 3
    assert out.startswith("Plan for workspace 'dev' (nothing applied yet):\n")
    assert "+   create   feature view user_aggs (non-breaking)" in out
    code, out, _ = run("plan", "--project", p, "--json")
    data = json.loads(out)
    assert code == 3 and data["workspace"] == "dev" and data["base_apply"] is None
    assert data["summary"]["create"] == 5
    assert [(c["kind"], c["name"], c["action"]) for c in data["changes"]][:2] == [
        ("source", "txns", "create"), ("entity", "user", "create")]
    assert run("apply", "--project", p, "--yes")[0] == 0
    code, out, _ = run("plan", "--project", p)
    assert (code, out) == (0, "No changes: workspace 'dev' matches the project (apply #1).\n")
    assert json.loads(run("plan", "--project", p, "--json")[1])["has_changes"] is False


def test_apply_refuses_without_a_terminal_or_yes(proj: Proj, run: Run) -> None:
    code, _, err = run("apply", "--project", str(proj.root))
    assert code == 1
    assert "stdin is not a terminal" in err and "--yes" in err
    reg = proj.registry()
    assert reg.history("dev") == [] and reg.applied("dev") is None


def test_apply_records_history_and_pending_backfills(proj: Proj, run: Run,
                                                     no_engine: None) -> None:
    write_txns(proj.root)
    code, out, _ = run("apply", "--project", str(proj.root), "--yes")
    assert code == 0
    assert "Applied #1 to workspace 'dev'." in out
    assert "Backfill pending for user_aggs, user_last" in out
    reg = proj.registry()
    (rec,) = reg.history("dev")
    assert (rec.id, rec.workspace, rec.summary) == (1, "dev", "+5 ~0 -/+0 -0 (0 breaking)")
    assert rec.git_commit is None  # tmp_path is not a git checkout
    assert [(b.view, b.status) for b in reg.backfills("dev")] == [
        ("user_aggs", "pending"), ("user_last", "pending")]
    applied = reg.applied("dev")
    assert applied is not None and applied.manifest == proj.manifest()
    code, out, _ = run("history", "--project", str(proj.root))
    assert code == 0 and "#1" in out and "+5 ~0 -/+0 -0 (0 breaking)" in out
    assert "backfills: user_aggs: pending, user_last: pending" in out
    code, out, _ = run("history", "--project", str(proj.root), "--json")
    (entry,) = json.loads(out)
    assert (entry["id"], entry["user"], entry["backfills"]) == (
        1, rec.user, ["user_aggs: pending", "user_last: pending"])
    assert [c["name"] for c in entry["changes"]] == ["txns", "user", "user_aggs", "user_last",
                                                     "scoring"]
    # a later `featql materialize` (the engine's state table) shows in the history
    MaterializationState(proj.root).record("dev", "user_aggs", reg.backfills("dev")[0].fingerprint,
                                           [Done(datetime(2024, 1, 1), datetime(2024, 1, 2), 1, 1)])
    assert "backfills: user_aggs: materialized since, user_last: pending" in run(
        "history", "--project", str(proj.root))[1]


def test_apply_runs_the_engine_for_created_and_recreated_views_only(
        proj: Proj, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    write_txns(proj.root)
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(apply_command, "offline_engine", lambda: lambda root, manifest, ws, views: (
        calls.append((ws, views))))
    assert run("apply", "--project", str(proj.root), "--yes")[0] == 0
    proj.edit("views/user_aggs.sql", "@owner('risk')", "@owner('ops')")  # metadata
    assert run("apply", "--project", str(proj.root), "--yes")[0] == 0
    proj.edit("views/user_last.sql", "'30d'", "'7d'")  # breaking
    assert run("apply", "--project", str(proj.root), "--yes")[0] == 0
    assert calls == [("dev", ["user_aggs", "user_last"]), ("dev", ["user_last"])]
    statuses = [(b.apply_id, b.view, b.status) for b in proj.registry().backfills("dev")]
    assert statuses == [(1, "user_aggs", "done"), (1, "user_last", "done"),
                        (3, "user_last", "done")]


def test_backfill_estimate_from_parquet_and_materialized_state(applied: Proj) -> None:
    rows = write_txns(applied.root, days=10, per_day=3)
    applied.edit("views/user_last.sql", "'30d'", "'7d'")
    (change,) = applied.plan().changes
    line = ("      backfill: 10 × 1d intervals, 2024-01-01 00:00 → 2024-01-11 00:00 "
            f"(end of data), {rows} source rows to scan (txns)\n")
    assert rows == 30 and line in applied.plan_text()
    # the offline engine records what it materialized; a rollback to a known fingerprint
    # only computes what is missing
    assert change.backfill is not None
    state = MaterializationState(applied.root)
    fingerprint = change.backfill.fingerprint
    state.record("dev", "user_last", fingerprint,
                 [Done(datetime(2024, 1, 1), datetime(2024, 1, 8), 21, 1)])
    state.record("prod", "user_last", fingerprint,
                 [Done(datetime(2024, 1, 1), datetime(2024, 1, 11), 30, 1)])
    assert ("      backfill: 3 × 1d intervals (7 already materialized), 2024-01-01 00:00 → "
            "2024-01-11 00:00 (end of data), 30 source rows to scan (txns)\n"
            ) in applied.plan_text()


def test_a_stale_plan_is_refused_and_changes_nothing(applied: Proj) -> None:
    applied.edit("views/user_last.sql", "'30d'", "'7d'")
    stale = applied.plan()
    assert applied.apply() == 2  # someone else applies first
    reg = applied.registry()
    with pytest.raises(StalePlanError, match=r"changed while this plan was computed \(apply #2"):
        applier.record(applied.root, reg, stale)
    assert [r.id for r in reg.history("dev")] == [1, 2]


def test_prevent_destroy_blocks_delete_and_recreate(proj: Proj, run: Run,
                                                    no_engine: None) -> None:
    p = str(proj.root)
    proj.edit("views/user_last.sql", "start = '2024-01-01'",
              "start = '2024-01-01', prevent_destroy = true")
    assert run("apply", "--project", p, "--yes")[0] == 0
    proj.edit("views/user_last.sql", "'30d'", "'7d'")
    code, out, err = run("apply", "--project", p, "--yes")
    assert code == 1 and "nothing applied: 1 change refused" in err
    assert ("refusing to recreate (and discard the data of) feature view 'user_last': it is "
            "marked prevent_destroy = true; apply a change removing the flag first") in out
    (proj.root / "views/user_last.sql").unlink()
    proj.write("services/scoring.sql",
               "-- @feature_service(name = scoring, features = [user_aggs.*])\n")
    code, out, _ = run("apply", "--project", p, "--yes")
    assert code == 1 and "refusing to delete feature view 'user_last'" in out
    assert len(proj.registry().history("dev")) == 1
    code, out, _ = run("plan", "--project", p)
    assert code == 3 and "refusing to delete feature view 'user_last'" in out


def test_deleting_a_view_an_applied_service_still_uses_is_refused(applied: Proj) -> None:
    old = applied.manifest()
    new = dataclasses.replace(old, views=tuple(v for v in old.views if v.name != "user_last"))
    plan = make_plan(applied.root, "dev", None, old, new, lambda v, f: [], NOW)
    (change,) = [c for c in plan.changes if c.action == "delete"]
    assert change.refused == ("refusing to delete feature view 'user_last': applied service "
                              "'scoring' still uses it; remove it from the service first")


def test_workspaces_are_isolated(proj: Proj, run: Run, no_engine: None) -> None:
    p = str(proj.root)
    code, _, err = run("plan", "--project", p, "--workspace", "prod")
    assert code == 1 and "workspace 'prod' does not exist" in err
    assert run("workspace", "create", "prod", "--project", p)[0] == 0
    code, _, err = run("workspace", "create", "prod", "--project", p)
    assert code == 1 and "already exists" in err
    assert run("apply", "--project", p, "--workspace", "prod", "--yes")[0] == 0
    assert proj.registry().applied("dev") is None  # applying to prod never touches dev
    assert run("plan", "--project", p)[0] == 3  # dev is still empty
    code, _, err = run("plan", "--project", p, "-w", "prdo")
    assert "did you mean 'prod'?" in err
    assert run("workspace", "select", "prod", "--project", p)[0] == 0
    assert run("plan", "--project", p)[0] == 0  # prod is now the default
    code, out, _ = run("workspace", "list", "--project", p)
    assert out.splitlines() == [
        "  dev              nothing applied              offline: data/offline/dev/",
        "* prod             apply #1, 1 applies          offline: data/offline/prod/"]
    code, _, err = run("workspace", "delete", "prod", "--project", p, "--yes")
    assert code == 1 and "is selected" in err
    assert run("workspace", "select", "dev", "--project", p)[0] == 0
    code, _, err = run("workspace", "delete", "prod", "--project", p)
    assert code == 1 and "--yes" in err
    assert run("workspace", "delete", "prod", "--project", p, "--yes")[0] == 0
    assert [w.name for w in proj.registry().workspaces()] == []
    code, _, err = run("workspace", "create", "Bad Name", "--project", p)
    assert code == 1 and "invalid workspace name" in err


def test_deprecated_views_warn_in_apply_output(applied: Proj, run: Run, no_engine: None) -> None:
    applied.edit("views/user_last.sql", "start = '2024-01-01'",
                 "start = '2024-01-01', deprecated = true")
    code, out, err = run("apply", "--project", str(applied.root), "--yes")
    assert code == 0
    assert "warning[W801]: feature view 'user_last' is deprecated" in out
    assert "W801" in err  # the compiler's own diagnostic, with its file position


def _git(root: Path, *args: str) -> str:
    import subprocess

    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
                           *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_rollback_by_checking_out_an_older_commit(proj: Proj, run: Run,
                                                  no_engine: None) -> None:
    root, p = proj.root, str(proj.root)
    (root / ".gitignore").write_text(".featql/\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "v1")
    v1 = _git(root, "rev-parse", "--short=12", "HEAD")
    assert run("apply", "--project", p, "--yes")[0] == 0
    # v2: one edit of each kind, a new view and a deleted one
    proj.edit("views/user_aggs.sql", "amount > 0", "amount > 10")
    proj.edit("views/user_aggs.sql", "@owner('risk')", "@owner('ops')")
    proj.write("views/user_first.sql", proj.read("views/user_last.sql").replace(
        "name = user_last", "name = user_first"))
    proj.write("services/scoring.sql",
               "-- @feature_service(name = scoring, features = [user_aggs.*, "
               "user_first.last_amount])\n")
    (root / "views/user_last.sql").unlink()
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "v2")
    v2 = _git(root, "rev-parse", "--short=12", "HEAD")
    forward = proj.plan()
    assert run("apply", "--project", p, "--yes")[0] == 0
    _git(root, "checkout", "-q", v1)
    backward = proj.plan()
    reverse = {"create": "delete", "delete": "create", "update": "update",
               "recreate": "recreate"}
    assert sorted((c.kind, c.name, reverse[c.action]) for c in forward.changes) == sorted(
        (c.kind, c.name, c.action) for c in backward.changes)
    fwd = {c.name: [d.text for d in c.details] for c in forward.changes}
    bwd = {c.name: [d.text for d in c.details] for c in backward.changes}
    assert fwd["user_aggs"] == ["query changed", "all 4 features change meaning",
                                "owner: 'risk' → 'ops'"]
    assert bwd["user_aggs"] == ["query changed", "all 4 features change meaning",
                                "owner: 'ops' → 'risk'"]
    assert fwd["scoring"] == ["features removed: user_last.last_amount",
                              "features added: user_first.last_amount"]
    assert bwd["scoring"] == ["features removed: user_first.last_amount",
                              "features added: user_last.last_amount"]
    assert run("apply", "--project", p, "--yes")[0] == 0
    reg = proj.registry()
    history = reg.history("dev")
    assert [r.git_commit for r in history] == [v1, v2, v1]
    state = reg.applied("dev")
    assert state is not None and state.manifest == reg.manifest_of(1)
    assert run("plan", "--project", p)[0] == 0


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "code", "applies"), [("n\n", 1, 0), ("yes\n", 0, 1)])
def test_apply_asks_on_a_terminal(proj: Proj, run: Run, no_engine: None,
                                  monkeypatch: pytest.MonkeyPatch, answer: str, code: int,
                                  applies: int) -> None:
    monkeypatch.setattr("sys.stdin", _Tty(answer))
    got, out, _ = run("apply", "--project", str(proj.root))
    assert got == code
    assert "Apply these changes to workspace 'dev'? [y/N]" in out
    assert ("Apply cancelled; nothing changed." in out) == (applies == 0)
    assert len(proj.registry().history("dev")) == applies


def test_prevent_destroy_on_a_service_and_on_a_workspace(proj: Proj, run: Run,
                                                          no_engine: None) -> None:
    p = str(proj.root)
    proj.write("services/scoring.sql",
               "-- @feature_service(name = scoring, features = [user_aggs.*, "
               "user_last.last_amount], prevent_destroy = true)\n")
    assert run("workspace", "create", "prod", "--project", p)[0] == 0
    assert run("apply", "--project", p, "--yes", "-w", "prod")[0] == 0
    (proj.root / "services/scoring.sql").unlink()
    code, out, _ = run("apply", "--project", p, "--yes", "-w", "prod")
    assert code == 1
    assert "refusing to delete service 'scoring': it is marked prevent_destroy = true" in out
    code, _, err = run("workspace", "delete", "prod", "--project", p, "--yes")
    assert code == 1
    assert ("refusing to delete workspace 'prod': it holds service 'scoring' marked "
            "prevent_destroy = true") in err
    assert proj.registry().has_workspace("prod")
