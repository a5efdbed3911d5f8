"""`featql` command line: argument parsing and dispatch to `featql.cli.commands.*`.

The commands are listed in `featql.cli.commands.COMMANDS` (name and module, in help order).
Each module exposes `add_arguments(parser)` and `run(args) -> int`, and imports its engine
only inside `run`; only the module of the command being run is imported, so `featql check`
never loads an engine or the registry. A command's `--help` shows its module docstring in full.
Exit codes: 0 ok, 1 user error (usage errors included), 2 internal error (PRODUCT §4).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from featql.cli.commands import BY_NAME, COMMANDS, summary

USAGE_ERROR = 1  # argparse exits 2, which the contract reserves for internal errors


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit 1."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


class _Paragraphs(argparse.HelpFormatter):
    """Fills each paragraph of a description on its own (argparse joins them all into one)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(super(_Paragraphs, self)._fill_text(p, width, indent)
                           for p in re.split(r"\n\s*\n", text.strip()))


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The parser; when `argv` names a command, only that one gets its arguments, so only its
    module is imported; otherwise every command is listed with its summary."""
    wanted = _command_named(sys.argv[1:] if argv is None else argv)
    parser = Parser(prog="featql", description="featql: a SQL-first feature store")
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="show the program's version number and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        if wanted is not None and command.name != wanted:
            sub.add_parser(command.name)  # listed in a usage error; never parsed
            continue
        # no command named (`featql --help`): each module for its summary
        module = _module(command.module)
        p = sub.add_parser(command.name, help=summary(module.__doc__),
                           description=(module.__doc__ or "").strip(),
                           formatter_class=_Paragraphs)
        p.add_argument("--project", default=".", metavar="DIR",
                       help="project folder (default: the current folder)")
        module.add_arguments(p)
    return parser


def _command_named(argv: Sequence[str]) -> str | None:
    """The command `argv` runs: its first argument that is not an option."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in BY_NAME else None
    return None


class _VersionAction(argparse.Action):
    """`--version`, looked up only when asked (importlib.metadata costs every command 40 ms)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(_version())
        parser.exit()


def _module(name: str) -> Any:
    return importlib.import_module(f"featql.cli.commands.{name}")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"featql {version('featql')}"
    except PackageNotFoundError:
        return "featql (development)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) or a usage error (1)
        return e.code if isinstance(e.code, int) else USAGE_ERROR
    if not args.command:
        parser.print_help()
        return 1
    from featql.cli.console import UserError, console

    try:
        code = _module(BY_NAME[args.command].module).run(args)
        return int(code or 0)
    except UserError as e:
        console(stderr=True).print(f"[bold red]error:[/] {e}", markup=True, highlight=False)
        return 1
    except KeyboardInterrupt:
        console(stderr=True).print("interrupted")
        return 130
    except Exception as e:  # an internal bug: never a raw traceback unless asked
        if os.environ.get("FEATQL_DEBUG"):
            raise
        console(stderr=True).print(
            f"internal error: {type(e).__name__}: {e}\n"
            "this is a featql bug; rerun with FEATQL_DEBUG=1 for the traceback",
            markup=False)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
