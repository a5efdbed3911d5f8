"""A command run outside a project says so, and names a project nearby (issue 15 item 9)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from featql.cli import main


def run_in(folder: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    here = Path.cwd()
    os.chdir(folder)
    try:
        code = main(list(args))
    finally:
        os.chdir(here)
    return code, capsys.readouterr().err.strip()


def test_an_empty_folder_is_not_a_project(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run_in(tmp_path, capsys, "check") == (
        1, "error: '.' is not a featql project: it has no featql.toml (create one with "
           "`featql init DIR`, or pass --project DIR)")


def test_a_project_below_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "featql.toml").write_text('[project]\nname = "x"\n')
    assert run_in(tmp_path, capsys, "check") == (
        1, "error: '.' is not a featql project: it has no featql.toml; did you mean --project "
           "features?")


def test_a_project_above_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "featql.toml").write_text('[project]\nname = "x"\n')
    (tmp_path / "views").mkdir()
    assert run_in(tmp_path / "views", capsys, "plan") == (
        1, "error: '.' is not a featql project: it has no featql.toml; did you mean --project "
           "..?")


def test_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_in(tmp_path, capsys, "check", "--project", "nope") == (
        1, "error: project folder 'nope' does not exist")
