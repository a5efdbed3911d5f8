"""The command line's own contract: the command table, help text, usage-error exit codes."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import featql.cli.commands as package
from featql.cli.commands import BY_NAME, COMMANDS, summary
from featql.cli.main import USAGE_ERROR, main

FEATQL = Path(sys.executable).with_name("featql")


def run_featql(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FEATQL_DEBUG", "FORCE_COLOR")}
    env["COLUMNS"] = "100"
    return subprocess.run([str(FEATQL), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_every_command_module_is_in_the_table_and_every_entry_runs() -> None:
    modules = {m.name for m in pkgutil.iter_modules(package.__path__)
               if not m.name.startswith("_")}
    assert sorted(c.module for c in COMMANDS) == sorted(modules)
    assert len(BY_NAME) == len(COMMANDS)
    import importlib

    for command in COMMANDS:
        module = importlib.import_module(f"featql.cli.commands.{command.module}")
        assert callable(module.add_arguments) and callable(module.run), command
        # its docstring opens with its usage and what it does: the help summary
        assert (module.__doc__ or "").startswith(f"`featql {command.name}"), command.name
        assert len(summary(module.__doc__)) > 10, command.name


def test_the_table_is_read_without_importing_any_command(tmp_path: Path) -> None:
    probe = ("import sys; import featql.cli.main; "
             "print(sorted(m for m in sys.modules if m.startswith('featql.cli.commands.')))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "[]"
    probe = ("import sys; from featql.cli.main import build_parser; "
             "build_parser(['check', '--project', '.']); "
             "print(sorted(m for m in sys.modules if m.startswith('featql.cli.commands.')))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "['featql.cli.commands._common', 'featql.cli.commands.check']"


def test_top_level_help_lists_the_commands_in_table_order(tmp_path: Path) -> None:
    done = run_featql("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    at = [done.stdout.index(f"    {c.name}") for c in COMMANDS]
    assert at == sorted(at)
    from featql.cli.commands import serve

    # the whole summary, though the docstring wraps it over two lines
    assert " ".join(summary(serve.__doc__).split()) in " ".join(done.stdout.split())
    assert summary(serve.__doc__).startswith("the online feature server (")


def test_serve_help_shows_its_whole_description(tmp_path: Path) -> None:
    done = run_featql("serve", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    from featql.cli.commands import serve

    text = " ".join(done.stdout.split())
    # every paragraph of the docstring, whole, each its own paragraph of the help
    paragraphs = [" ".join(p.split()) for p in (serve.__doc__ or "").strip().split("\n\n")]
    assert len(paragraphs) >= 2 and paragraphs[0].endswith("--reload).")
    for paragraph in paragraphs:
        assert paragraph in text
    assert "\n\nServes the definitions" in done.stdout


@pytest.mark.parametrize("argv", [
    ["check", "--no-such-option"],
    ["no-such-command"],
    ["serve", "--port", "eighty"],
    ["lineage"],  # a required argument missing
])
def test_usage_errors_exit_1_not_2(argv: list[str], tmp_path: Path) -> None:
    done = run_featql(*argv, cwd=tmp_path)
    assert done.returncode == USAGE_ERROR == 1, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("usage: featql")
    assert lines[-1].startswith("featql") and ": error: " in lines[-1]
    assert "Traceback" not in done.stderr


def test_usage_errors_through_main_return_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--no-such-option"]) == 1
    assert "error: unrecognized arguments: --no-such-option" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_a_dynamodb_store_without_boto3_says_which_extra_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from featql.core.config import ProjectConfig
    from featql.core.errors import UserError
    from featql.online.stores import open_store

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "boto3" else real(name, *a))
    with pytest.raises(UserError) as raised:
        open_store(ProjectConfig(online_store="dynamodb"), tmp_path, "dev")
    assert str(raised.value) == \
        "the DynamoDB online store needs boto3: pip install 'featql[dynamodb]'"
