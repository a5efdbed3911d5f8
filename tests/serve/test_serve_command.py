"""`featql serve` settings: threads per worker by store, and `[serve]` values that are not
integers (a clear error before any server starts, not a traceback)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from featql.cli.commands.serve import default_threads
from featql.cli.main import main


def test_threads_default_by_store() -> None:
    assert default_threads("sqlite") == 1  # reads are CPU work under the GIL
    assert default_threads("dynamodb") == 2  # reads wait on the network
    assert default_threads("dynamodb", "https://dynamodb.eu-west-1.amazonaws.com") == 2
    assert default_threads("dynamodb", "http://10.0.0.7:8000") == 2
    # a store on this machine (DynamoDB Local, dynalite) answers in well under a millisecond
    for url in ("http://127.0.0.1:8000", "http://localhost:4567", "http://[::1]:8000",
                "http://127.0.0.53"):
        assert default_threads("dynamodb", url) == 1, url


@pytest.mark.parametrize("line", ['threads = "two"', "workers = 1.5", "port = true"])
def test_a_serve_setting_that_is_not_an_integer_is_named(
        example_project: Path, tmp_path: Path, line: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "features"
    shutil.copytree(example_project, root, ignore=shutil.ignore_patterns(".featql", "target"))
    toml = root / "featql.toml"
    toml.write_text(toml.read_text() + f"\n[serve]\n{line}\n")
    assert main(["serve", "--project", str(root)]) == 1
    key = line.split(" ")[0]
    assert f"featql.toml: serve.{key} must be an integer" in capsys.readouterr().err
