"""`featql demo`: the end-to-end walkthrough on the embedded default (what `make demo` runs).

Each step runs the real command in-process, exactly as a user would type it, and the demo stops
at the first failing step with that step's exit code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from featql.console import console

ORDER = 90

Step = tuple[str, list[str]]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--transactions", type=int, default=1_000_000,
                   help="transactions to generate when the project has no data")
    p.add_argument("--days", type=int, default=90, help="days of history to generate")


def steps(project: str) -> list[Step]:
    return [
        ("Type-check every definition", ["check", "--project", project]),
        ("Compile: manifest + generated SQL for DuckDB and Spark",
         ["compile", "--project", project]),
        ("Lineage of one feature, back to its source columns",
         ["lineage", "--project", project, "user_txn_aggs.amount_avg_7d", "--upstream"]),
        ("Everything a source column feeds",
         ["lineage", "--project", project, "users.country", "--downstream"]),
    ]


def run(args: argparse.Namespace, runner: Callable[[list[str]], int] | None = None) -> int:
    from featql.cli import main
    from featql.commands.init import generate_data

    out = console()
    root = Path(args.project)
    if not (root / "data" / "transactions").exists():
        out.rule("[bold]Generate the example data")
        generate_data(root, args.transactions, args.days)
    call = runner or main
    for title, argv in steps(args.project):
        out.rule(f"[bold]{title}")
        out.print(f"[dim]$ featql {' '.join(argv)}[/]")
        code = call(argv)
        if code != 0:
            out.print(f"[bold red]demo stopped: step '{title}' exited {code}[/]")
            return code
    out.rule("[bold green]demo complete")
    return 0
