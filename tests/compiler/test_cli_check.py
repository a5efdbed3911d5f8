"""`featql check` as a user runs it: a subprocess, piped output, exit codes, JSON; and the
example project checks clean."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from featql.compiler.project import compile_project
from featql.examples.generate import generate
from featql.examples.scaffold import copy_example

from .projects import ROW_VIEW, write_project

FEATQL = Path(sys.executable).with_name("featql")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

BROKEN = {
    "views/user_last.sql": ROW_VIEW,
    "views/bad_column.sql": """\
-- @feature_view(name = bad_column, entity = user, timestamp = event_ts, ttl = '1d',
--               start = '2024-01-01')
SELECT user_id, event_ts, amout AS a FROM txns
""",
    "views/bad_header.sql": """\
-- @feature_view(name = bad_header, entity = user, timestamp = event_ts, ttl = '9x',
--               start = '2024-01-01')
SELECT user_id, event_ts, amount AS a FROM txns
""",
    "services/s.sql": "-- @feature_service(name = s, features = [user_last.last_amt])\n",
}
EXPECTED = [
    "services/s.sql:1:53: error[E501]: feature view 'user_last' has no feature 'last_amt'",
    "views/bad_column.sql:3:27: error[E401]: unknown column 'amout' in 'txns'",
    "views/bad_header.sql:1:80: error[E106]: invalid duration '9x'",
]


def run_featql(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FEATQL_DEBUG", "FORCE_COLOR")}
    env["TERM"] = "xterm-256color"  # a colour terminal, yet piped: still no escape codes
    return subprocess.run([str(FEATQL), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    return write_project(tmp_path, BROKEN)


def test_check_reports_every_mistake_and_exits_1(broken: Path) -> None:
    proc = run_featql("check", "--project", ".", cwd=broken)
    assert proc.returncode == 1, proc.stderr
    headlines = [line for line in proc.stderr.splitlines() if ": error[" in line]
    assert headlines == EXPECTED
    # each headline is followed by the source line and a caret under the mistake
    lines = proc.stderr.splitlines()
    at = lines.index(EXPECTED[1])
    assert lines[at + 1].endswith("SELECT user_id, event_ts, amout AS a FROM txns")
    caret = lines[at + 2]
    assert caret.index("^") - lines[at + 1].index("SELECT") == 26 and "^^^^^" in caret
    assert "= help: did you mean 'amount'?" in proc.stderr
    assert "3 errors" in proc.stdout + proc.stderr
    for stream in (proc.stdout, proc.stderr):
        assert "Traceback" not in stream
        assert not ANSI.search(stream), repr(stream[:200])


def test_check_from_another_folder_names_files_by_absolute_path(broken: Path,
                                                                tmp_path_factory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    proc = run_featql("check", "--project", str(broken), cwd=elsewhere)
    assert proc.returncode == 1
    first = next(line for line in proc.stderr.splitlines() if ": error[" in line)
    assert first == f"{broken / 'services/s.sql'}:1:53: error[E501]: feature view 'user_last' " \
        "has no feature 'last_amt'"


def test_check_json_is_machine_readable(broken: Path) -> None:
    proc = run_featql("check", "--project", ".", "--json", cwd=broken)
    assert proc.returncode == 1
    items = json.loads(proc.stdout)
    assert [(d["path"], d["line"], d["col"], d["code"]) for d in items] == [
        ("services/s.sql", 1, 53, "E501"),
        ("views/bad_column.sql", 3, 27, "E401"),
        ("views/bad_header.sql", 1, 80, "E106"),
    ]
    assert items[1]["message"] == "unknown column 'amout' in 'txns'"
    assert items[1]["hint"] == "did you mean 'amount'?"
    assert all(d["severity"] == "error" for d in items)
    assert "Traceback" not in proc.stderr


def test_check_of_a_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    proc = run_featql("check", "--project", "nowhere", cwd=tmp_path)
    assert proc.returncode == 1
    assert "project folder 'nowhere' does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("example")
    copy_example(root)
    generate(root, transactions=3_000, days=14)
    return root


def test_example_project_checks_clean(example: Path) -> None:
    result = compile_project(example)
    assert [d.headline() for d in result.diagnostics] == []
    assert result.ok and result.manifest is not None
    assert {v.name for v in result.manifest.views} >= {"user_txn_aggs", "user_profile"}
    proc = run_featql("check", "--project", str(example), cwd=example)
    assert proc.returncode == 0, proc.stderr
    assert "no problems" in proc.stdout
    assert proc.stderr == ""


def test_check_mode_skips_only_fingerprints(example: Path, broken: Path) -> None:
    """`compile_project(fingerprints=False)` (for callers that need no fingerprints): same
    diagnostics on projects without duplicate features (W802 needs fingerprints), same manifest
    except the (empty) fingerprints."""
    import dataclasses

    for root in (example, broken):
        full = compile_project(root, with_lineage=False)
        lean = compile_project(root, with_lineage=False, fingerprints=False)
        assert lean.diagnostics.sorted() == full.diagnostics.sorted()
        assert lean.manifest is not None and full.manifest is not None
        assert [v.sql for v in lean.manifest.views] == [v.sql for v in full.manifest.views]
        for a, b in zip(lean.manifest.views, full.manifest.views, strict=True):
            assert a.fingerprint == "" and b.fingerprint != ""
            assert all(f.fingerprint == "" for f in a.features)
            assert a.storage_fingerprint == "" and b.storage_fingerprint != "" and a.stored == ()
            unprinted = dataclasses.replace(
                b, fingerprint="", storage_fingerprint="", stored=(),
                features=tuple(dataclasses.replace(f, fingerprint="") for f in b.features))
            assert a == unprinted


def test_version_is_printed_and_check_does_not_import_the_registry(tmp_path: Path) -> None:
    """`--version` works though it is looked up lazily; a check imports neither the registry
    nor any engine."""
    done = run_featql("--version", cwd=tmp_path)
    assert done.returncode == 0 and re.match(r"featql \S+", done.stdout), done
    write_project(tmp_path, {"views/v.sql": ROW_VIEW})
    probe = ("import sys; from featql.cli import main; code = main(['check', '--project', '.']);"
             "print(sorted(m for m in ('featql.registry', 'duckdb', 'pyarrow', 'pyspark', "
             "'boto3', 'flask') if m in sys.modules)); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
