"""What runs is what was applied (PRODUCT §3): `materialize`, `materialize --online`,
`Project.online`, `featql serve` and training sets run the workspace's applied manifest and hook
sources, never unapplied edits, and say that unapplied changes exist. Unknown workspaces are
errors everywhere; `workspace select` is honoured; hooks outside the project are refused."""

from __future__ import annotations

import http.client
import io
import os
import shutil
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import featql
from featql.api import UnappliedChangesWarning, WorkingTreeWarning
from featql.cli.main import main
from featql.registry import Applied, HookPathError, RegistryError, load_applied
from featql.registry.applied import unapplied_warning, write_hooks

pytest.importorskip("duckdb")

AT = "2024-01-31T00:00:00"
ENT = [{"user_id": 1, "merchant_id": 3}, {"user_id": 2, "merchant_id": 5}]
REQ = [{"amount": 120.0}, {"amount": 9.5}]
VIEW = "views/user_txn_aggs.sql"
HOOK = "hooks/amount_features.py"

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """featql ARGS... in process (stdin not a terminal); (exit code, stdout, stderr)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps nothing the tests read

    def go(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return go


@pytest.fixture(scope="module")
def applied_example(example_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project applied to dev (apply #1, backfilled) and loaded online."""
    root = tmp_path_factory.mktemp("truth") / "features"
    shutil.copytree(example_project, root, ignore=shutil.ignore_patterns(".featql", "target"))
    for args in (["apply", "--yes"], ["materialize", "--online"]):
        done = subprocess.run([sys.executable, "-m", "featql.cli", *args, "--project",
                               str(root)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture
def project(applied_example: Path, tmp_path: Path) -> Path:
    """A private copy of the applied example (registry, offline and online data included)."""
    root = tmp_path / "features"
    shutil.copytree(applied_example, root, symlinks=True)
    return root


def fingerprint_folders(root: Path, view: str = "user_txn_aggs", ws: str = "dev") -> set[str]:
    return {p.name for p in (root / "data" / "offline" / ws / view).iterdir() if p.is_dir()}


def online(root: Path, **kw: Any) -> list[dict[str, Any]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = featql.Project(root, **kw).online("fraud_detection", ENT, request=REQ, at=AT)
    online.warnings = [str(w.message) for w in caught  # type: ignore[attr-defined]
                       if issubclass(w.category, UnappliedChangesWarning)]
    return rows


class Server:
    """`featql serve` as a real process on 127.0.0.1 (stderr kept in a file)."""

    def __init__(self, root: Path, log: Path, *args: str):
        from serve.conftest import free_port, wait_port

        self.port = free_port()
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115 (closed in stop)
        env = {**os.environ, "FEATQL_LOG_LEVEL": "error", "COLUMNS": "250"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "featql.cli", "serve", "--project", str(root), "--host",
             "127.0.0.1", "--port", str(self.port), "--workers", "2", *args],
            env=env, stdout=subprocess.DEVNULL, stderr=self._out)
        wait_port(self.port, timeout=60, proc=self.proc)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=None if body is None else orjson.dumps(body),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, orjson.loads(resp.read())
        finally:
            conn.close()

    def features(self) -> list[dict[str, Any]]:
        status, body = self.call("POST", "/v1/features/fraud_detection",
                                 {"entities": ENT, "request": REQ, "at": AT})
        assert status == 200, body
        rows: list[dict[str, Any]] = body["features"]
        return rows

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()
        return self.log.read_text()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.stop()


@pytest.mark.slow
def test_unapplied_edits_are_not_run_anywhere(project: Path, run: Run, tmp_path: Path,
                                              servers: list[Server]) -> None:
    before = online(project)
    assert online.warnings == []  # type: ignore[attr-defined]
    assert before[0]["user_txn_aggs.txn_count_30d"] > 0
    assert before[0]["amount_features.credit_utilization"] is not None
    folders = fingerprint_folders(project)
    assert len(folders) == 1

    # a breaking edit of a view, and an edit of a Python hook, neither applied
    view = project / VIEW
    view.write_text(view.read_text().replace("WHERE amount > 0", "WHERE amount > 40"))
    hook = project / HOOK
    hook.write_text(hook.read_text().replace("utilization = amount / credit_limit",
                                             "utilization = 12345.0"))
    notice = ("warning: 2 unapplied changes in the project (user_txn_aggs, amount_features); "
              "using apply #1 of workspace 'dev' — run `featql plan`")

    code, out, err = run("materialize", "--project", str(project))
    assert code == 0, err
    assert notice in err
    assert "into workspace 'dev' with duckdb (apply #1 of workspace 'dev')" in out
    code, out, err = run("materialize", "--online", "--project", str(project))
    assert code == 0, err
    assert notice in err and "online store loaded: 7 view(s)" in out
    assert fingerprint_folders(project) == folders  # no folder for the unapplied definition

    after = online(project)
    assert after == before  # the applied view and the applied hook, same values
    assert [notice.removeprefix("warning: ")] == online.warnings  # type: ignore[attr-defined]

    server = Server(project, tmp_path / "serve.log")
    servers.append(server)
    served = server.features()
    status, health = server.call("GET", "/healthz")
    log = server.stop()
    assert served == before
    assert status == 200 and health["workspace"] == "dev"
    assert notice in log and "(apply #1 of workspace 'dev', sqlite online store)" in log

    # the applied hook source is what runs, from the apply's own folder
    applied = load_applied(project, "dev")
    assert "amount / credit_limit" in applied.hooks[HOOK]
    copy = project / ".featql" / "applied" / "dev" / "1" / HOOK
    assert copy.read_text() == applied.hooks[HOOK]
    (t,) = [t for t in applied.run_manifest.transforms if t.language == "python"]
    assert t.module == f".featql/applied/dev/1/{HOOK}"

    # training sets: the applied definitions by default, the working tree when asked
    spine = tmp_path / "spine.csv"
    spine.write_text("user_id,merchant_id,amount,ts\n1,3,120.0,2024-01-31T00:00:00\n")
    code, out, err = run("training-set", "fraud_detection", "--project", str(project),
                         "--spine", str(spine), "--out", str(tmp_path / "a.csv"))
    assert code == 0, err
    assert notice in err and "using the definitions of apply #1 of workspace 'dev'" in out
    code, out, err = run("training-set", "fraud_detection", "--project", str(project),
                         "--spine", str(spine), "--out", str(tmp_path / "b.csv"),
                         "--working-tree")
    assert code == 0, err
    assert ("note: computed from the sources with the working tree's definitions "
            "(--working-tree)") in err
    import pyarrow.csv as pcsv

    applied_ts = pcsv.read_csv(tmp_path / "a.csv").to_pylist()[0]
    working_ts = pcsv.read_csv(tmp_path / "b.csv").to_pylist()[0]
    assert applied_ts["user_txn_aggs__txn_count_30d"] == before[0][
        "user_txn_aggs.txn_count_30d"]
    edited = working_ts["user_txn_aggs__txn_count_30d"]
    assert edited < applied_ts["user_txn_aggs__txn_count_30d"]  # the unapplied WHERE
    assert working_ts["amount_features__credit_utilization"] == 12345.0  # the unapplied hook
    assert applied_ts["amount_features__credit_utilization"] != 12345.0
    with pytest.warns(WorkingTreeWarning, match="working_tree=True"):
        table = featql.Project(project).training_set("fraud_detection", pcsv.read_csv(spine),
                                                     working_tree=True)
    assert table.column("user_txn_aggs__txn_count_30d").to_pylist() == [edited]

    # once applied, the edit runs
    assert run("apply", "--project", str(project), "--yes")[0] == 0
    code, _, err = run("materialize", "--online", "--project", str(project))
    assert code == 0 and "unapplied" not in err
    assert len(fingerprint_folders(project)) == 2
    now = online(project)
    assert now[0]["user_txn_aggs.txn_count_30d"] == edited
    assert now[0]["amount_features.credit_utilization"] == 12345.0


def test_unknown_workspace_is_an_error_everywhere(project: Path, run: Run) -> None:
    p = str(project)
    assert run("workspace", "create", "prod", "--project", p)[0] == 0
    nope = ("error: workspace 'nope' does not exist; create it with "
            "`featql workspace create nope`\n")
    prdo = ("error: workspace 'prdo' does not exist; create it with "
            "`featql workspace create prdo` (did you mean 'prod'?)\n")
    spine = ["--spine", str(project / "data" / "spine.parquet"), "--out", "x.parquet"]
    for args in (["materialize"], ["materialize", "--online"], ["serve"], ["plan"],
                 ["history"], ["training-set", "fraud_detection", *spine], ["serve", "--demo"]):
        for ws, message in (("nope", nope), ("prdo", prdo)):
            code, out, err = run(*args, "--project", p, "--workspace", ws)
            assert (code, err) == (1, message), (args, out, err)
    assert not (project / "data" / "offline" / "nope").exists()
    with pytest.raises(RegistryError) as e:
        featql.Project(project, workspace="nope").online("fraud_detection", ENT)
    assert str(e.value) == nope.removeprefix("error: ").strip()
    with pytest.raises(RegistryError, match="does not exist"):
        featql.Project(project, workspace="nope").materialize()
    # a workspace that exists but has nothing applied
    nothing = ("error: nothing is applied to workspace 'prod' yet: run `featql apply "
               "--workspace prod` first (what runs is what was applied)\n")
    assert run("materialize", "--project", p, "-w", "prod") == (1, "", nothing)
    assert run("serve", "--project", p, "-w", "prod")[::2] == (1, nothing)
    with pytest.raises(RegistryError, match="nothing is applied to workspace 'prod'"):
        featql.Project(project, workspace="prod").online("fraud_detection", ENT)


def test_nothing_applied_yet(example_project: Path, tmp_path: Path, run: Run) -> None:
    root = tmp_path / "fresh"
    shutil.copytree(example_project, root, ignore=shutil.ignore_patterns(".featql", "target"))
    message = ("error: nothing is applied to workspace 'dev' yet: run `featql apply` first "
               "(what runs is what was applied)\n")
    assert run("materialize", "--project", str(root)) == (1, "", message)
    assert run("serve", "--project", str(root))[::2] == (1, message)
    assert not (root / ".featql" / "registry.db").exists()  # nothing created by asking
    assert not (root / "data" / "offline").exists()
    # a training set from the sources uses the working tree, and says so
    with pytest.warns(WorkingTreeWarning, match="nothing is applied to workspace 'dev'"):
        table = featql.Project(root).training_set("merchant_risk", _spine())
    assert table.num_rows == 1


def _spine() -> Any:
    import datetime as dt

    import pyarrow as pa

    return pa.table({"merchant_id": pa.array([3], pa.int64()),
                     "ts": pa.array([dt.datetime(2024, 1, 20)], pa.timestamp("us"))})


@pytest.mark.slow
def test_workspace_select_is_honoured(project: Path, run: Run, tmp_path: Path,
                                      servers: list[Server]) -> None:
    p = str(project)
    assert run("workspace", "create", "prod", "--project", p)[0] == 0
    assert run("apply", "--project", p, "--workspace", "prod", "--yes")[0] == 0
    assert run("workspace", "select", "prod", "--project", p)[0] == 0
    code, out, err = run("materialize", "--online", "--project", p)
    assert code == 0, err
    assert "into workspace 'prod' with duckdb (apply #2 of workspace 'prod')" in out
    assert fingerprint_folders(project, ws="prod") == fingerprint_folders(project, ws="dev")
    proj = featql.Project(project)
    assert proj.workspace == "prod"
    assert proj.applied.label == "apply #2 of workspace 'prod'"
    assert online(project) == online(project, workspace="dev")  # same definitions and data
    code, out, _ = run("history", "--project", p)
    assert "History of workspace 'prod':" in out and "#2" in out
    server = Server(project, tmp_path / "serve.log")
    servers.append(server)
    status, health = server.call("GET", "/healthz")
    log = server.stop()
    assert status == 200 and health["workspace"] == "prod"
    assert "workspace prod (apply #2 of workspace 'prod'" in log
    server = Server(project, tmp_path / "serve-dev.log", "--workspace", "dev")
    servers.append(server)
    status, health = server.call("GET", "/healthz")
    server.stop()
    assert health["workspace"] == "dev"


def test_a_hook_outside_the_project_is_refused(project: Path, run: Run, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "amount_features.py"
    outside.parent.mkdir()
    hook = project / HOOK
    outside.write_text(hook.read_text())
    hook.unlink()
    hook.symlink_to(outside)
    code, out, err = run("apply", "--project", str(project), "--yes")
    assert code == 1 and out == ""
    assert err == (f"error: transform amount_features: hook module '{HOOK}' resolves to "
                   f"{outside.resolve()}, outside the project {project.resolve()}; keep hook "
                   "files inside the project (no symlinks or '..' out)\n")
    assert load_applied(project, "dev").apply_id == 1  # nothing recorded
    code, _, err = run("training-set", "fraud_detection", "--project", str(project),
                       "--spine", str(project / "data" / "spine.parquet"), "--out",
                       str(tmp_path / "x.parquet"), "--working-tree")
    assert code == 1 and "outside the project" in err
    # a registry holding a module path that leaves the apply's folder is refused too
    with pytest.raises(HookPathError, match="outside the project"):
        write_hooks(project, Path(".featql/applied/dev/9"), {"../../../../evil.py": "x = 1"})
    assert not (project / "evil.py").exists()


@pytest.mark.parametrize("content", [b"", b"this is not an SQLite database at all" * 40])
def test_an_empty_or_corrupt_registry_is_an_error_naming_the_file(
        project: Path, run: Run, content: bytes) -> None:
    db = project / ".featql" / "registry.db"
    db.write_bytes(content)
    what = "is empty (0 bytes), not a featql registry" if not content else \
        "is not a readable featql registry"
    for args in (["plan"], ["apply", "--yes"], ["materialize"], ["history"],
                 ["workspace", "list"]):
        code, _, err = run(*args, "--project", str(project))
        assert code == 1 and err.startswith(f"error: {db} {what}"), (args, err)
        assert "Traceback" not in err
    with pytest.raises(RegistryError, match="registry"):
        featql.Project(project).online("fraud_detection", ENT)
    assert db.read_bytes() == content  # never replaced by a new registry


def test_the_unapplied_warning_text() -> None:
    from featql.core.ir import Manifest

    empty = Manifest("p", (), (), (), (), ())
    applied = Applied("dev", 3, empty)
    assert unapplied_warning(applied, []) is None
    assert unapplied_warning(applied, ["user_txn_aggs"]) == (
        "1 unapplied change in the project (user_txn_aggs); using apply #3 of workspace 'dev' "
        "— run `featql plan`")
    many = [f"v{i}" for i in range(7)]
    assert unapplied_warning(applied, many) == (
        "7 unapplied changes in the project (v0, v1, v2, v3, v4, … 2 more); using apply #3 of "
        "workspace 'dev' — run `featql plan`")


def test_a_schema_1_registry_is_upgraded_and_an_apply_without_hook_sources_is_named(
        project: Path, run: Run) -> None:
    import sqlite3

    db = project / ".featql" / "registry.db"
    con = sqlite3.connect(db)  # what a registry written before schema 2 looks like
    con.execute("DROP TABLE registry_hooks")
    con.execute("UPDATE registry_meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(RegistryError) as e:
        load_applied(project, "dev")
    assert str(e.value) == (f"apply #1 of workspace 'dev' holds no source for the hook file(s) "
                            f"{HOOK} (recorded by an older featql); apply the project again")
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM registry_meta").fetchone() == ("3",)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"registry_hooks", "materialization_sources", "materialization_files"} <= tables
    con.close()
    code, out, _ = run("apply", "--project", str(project), "--yes")
    assert code == 0 and "apply #1 lacks the source of its Python hooks" in out
    assert "Applied #2 to workspace 'dev'." in out
    assert load_applied(project, "dev").hooks[HOOK] == (project / HOOK).read_text()
    assert run("apply", "--project", str(project), "--yes")[:2] == (0, (
        "No changes: workspace 'dev' matches the project (apply #2).\n"))


def test_a_working_tree_that_does_not_compile_still_runs_what_is_applied(
        project: Path, run: Run) -> None:
    (project / "views" / "broken.sql").write_text(
        "-- @feature_view(name = broken, entity = user, timestamp = event_ts)\n"
        "SELECT user_id, event_ts, no_such_column FROM transactions\n")
    code, out, err = run("materialize", "--project", str(project))
    assert code == 0, err
    assert err.startswith("warning: the project does not compile (")
    assert "see `featql check`); using apply #1 of workspace 'dev'" in err
    assert "into workspace 'dev' with duckdb (apply #1 of workspace 'dev')" in out
    with pytest.warns(UnappliedChangesWarning, match="does not compile; using apply #1"):
        assert featql.Project(project).online("fraud_detection", ENT, request=REQ, at=AT)
