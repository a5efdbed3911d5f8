"""Concurrent applies on one workspace: real `featql apply` processes against one registry."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from featql.core.manifest import dumps
from featql.registry.diff import diff_manifests

from .helpers import Proj

FEATQL = str(Path(sys.executable).with_name("featql"))


def _start(project: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([FEATQL, "apply", "--yes", "--project", str(project), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def _finish(p: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = p.communicate(timeout=60)
    return p.returncode, out + err


def _integrity(db: Path) -> None:
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()


def test_two_applies_of_one_project_at_once(proj: Proj) -> None:
    procs = [_start(proj.root), _start(proj.root)]
    results = [_finish(p) for p in procs]
    assert [code for code, _ in results] == [0, 0], results
    outputs = [out for _, out in results]
    assert sum("Applied #1 to workspace 'dev'." in o for o in outputs) == 1, outputs
    loser = next(o for o in outputs if "Applied #1" not in o)
    # it either planned after the winner committed, or re-planned after losing the race
    assert "No changes: workspace 'dev' matches the project (apply #1)." in loser
    _integrity(proj.root / ".featql" / "registry.db")
    reg = proj.registry()
    assert [r.id for r in reg.history("dev")] == [1]
    state = reg.applied("dev")
    assert state is not None and dumps(state.manifest) == dumps(proj.manifest())


def test_two_versions_applied_at_once_are_recorded_in_order(tmp_path: Path) -> None:
    """Two checkouts sharing one registry (as a team would share a server registry)."""
    a, b = Proj(tmp_path / "a"), Proj(tmp_path / "b")
    b.edit("views/user_last.sql", "'30d'", "'7d'")
    a.apply()  # creates the registry; b uses the same file
    (b.root / ".featql").mkdir()
    (b.root / ".featql" / "registry.db").symlink_to(a.root / ".featql" / "registry.db")
    a.edit("views/user_aggs.sql", "@owner('risk')", "@owner('ops')")
    procs = [_start(a.root), _start(b.root)]
    results = [_finish(p) for p in procs]
    assert [code for code, _ in results] == [0, 0], results
    _integrity(a.root / ".featql" / "registry.db")
    reg = a.registry()
    assert [r.id for r in reg.history("dev")] == [1, 2, 3]
    winner = {2: a if "Applied #2" in results[0][1] else b}
    winner[3] = b if winner[2] is a else a
    assert "Applied #3" in results[[a, b].index(winner[3])][1]
    for apply_id in (2, 3):
        assert dumps(reg.manifest_of(apply_id)) == dumps(winner[apply_id].manifest())
    # #3 was planned against #2 (not against #1, which both processes first saw)
    recorded = json.loads(reg.history("dev")[2].changes)
    expected = diff_manifests(reg.manifest_of(2), reg.manifest_of(3))
    assert [(c["kind"], c["name"], c["action"]) for c in recorded] == [
        (d.kind, d.name, d.action) for d in expected]
    state = reg.applied("dev")
    assert state is not None and state.apply_id == 3


def test_a_held_lock_makes_apply_wait_then_succeed(proj: Proj) -> None:
    proj.registry().close()  # create the file
    con = sqlite3.connect(proj.root / ".featql" / "registry.db", isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    p = _start(proj.root)
    time.sleep(1.5)
    assert p.poll() is None  # waiting for the lock
    con.execute("COMMIT")
    code, out = _finish(p)
    assert code == 0 and "Applied #1" in out, out
    assert time.monotonic() - started >= 1.5
    con.close()


def test_a_lock_held_too_long_fails_clearly(proj: Proj) -> None:
    proj.registry().close()
    con = sqlite3.connect(proj.root / ".featql" / "registry.db", isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    try:
        code, out = _finish(_start(proj.root, env={"FEATQL_REGISTRY_TIMEOUT": "0.5"}))
    finally:
        con.execute("ROLLBACK")
        con.close()
    assert code == 1
    assert "is locked by another featql apply (waited 0.5s); try again" in out
    assert "Traceback" not in out
    assert proj.registry().history("dev") == []
