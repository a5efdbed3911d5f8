"""`featql` command line: argument parsing and dispatch to `featql.cli.commands.*`.

Each command lives in its own module under `featql.cli.commands` exposing `add_arguments(parser)`
and `run(args) -> int` (and optionally `NAME = "cli-name"` and `ORDER = n` for the help
listing). A command module imports its engine only inside `run`, so `featql check` never loads
one.
Exit codes: 0 ok, 1 user error, 2 internal error (PRODUCT §4).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from pathlib import Path
from typing import Any


def commands() -> dict[str, str]:
    """CLI name -> module under featql.cli.commands, discovered from the package, in ORDER."""
    import pkgutil

    import featql.cli.commands as package

    found: list[tuple[int, str, str]] = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        text = (Path(package.__path__[0]) / f"{info.name}.py").read_text()
        order = re.search(r"^ORDER = (\d+)", text, re.M)
        name = re.search(r"^NAME = \"([a-z-]+)\"", text, re.M)
        found.append((int(order.group(1)) if order else 99,
                      name.group(1) if name else info.name.replace("_", "-"), info.name))
    return {name: module for _, name, module in sorted(found)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="featql", description="featql: a SQL-first feature store")
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="show the program's version number and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in commands().items():
        module = _module(module_name)
        help_text = (module.__doc__ or "").strip().splitlines()[0]
        short = help_text.split(": ", 1)[-1].rstrip(".")
        p = sub.add_parser(name, help=short, description=help_text)
        p.add_argument("--project", default=".", metavar="DIR",
                       help="project folder (default: the current folder)")
        module.add_arguments(p)
    return parser


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
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 1
    from featql.cli.console import UserError, console

    try:
        code = _module(commands()[args.command]).run(args)
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
