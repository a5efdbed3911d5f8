"""`featql lineage NAME[.COLUMN] [--upstream|--downstream]`: column-level lineage as a tree."""

from __future__ import annotations

import argparse
from typing import Literal

from featql.cli.commands._common import compile_or_report
from featql.cli.console import UserError, console


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="NAME[.COLUMN]",
                   help="a source, feature view, transform or service, optionally a column")
    direction = p.add_mutually_exclusive_group()
    direction.add_argument("--upstream", dest="direction", action="store_const",
                           const="upstream", help="where it comes from (default)")
    direction.add_argument("--downstream", dest="direction", action="store_const",
                           const="downstream", help="what depends on it")


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from featql.compiler.lineage import render_tree, trace, unknown_target

    result = compile_or_report(args.project, quiet_ok=True)
    if result is None:
        return 1
    manifest = result.manifest
    assert manifest is not None
    target = args.target.lower()
    problem = unknown_target(manifest, target)
    if problem:
        raise UserError(problem)
    direction: Literal["upstream", "downstream"] = (
        "downstream" if args.direction == "downstream" else "upstream")
    out = console()
    out.print(f"[bold]{direction} lineage of {escape(target)}[/]")
    for line in render_tree(trace(manifest, target, direction)):
        out.print(escape(line))
    return 0
