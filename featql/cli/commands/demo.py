"""`featql demo`: the end-to-end walkthrough on the embedded default (what `make demo` runs).

Each step runs the real command in-process, exactly as a user would type it, and the demo stops
at the first failing step with that step's exit code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from featql.cli.console import console

# (title, argv, exit codes that count as success)
Step = tuple[str, list[str], tuple[int, ...]]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--transactions", type=int, default=1_000_000,
                   help="transactions to generate when the project has no data")
    p.add_argument("--days", type=int, default=90, help="days of history to generate")


def steps(project: str) -> list[Step]:
    spine = str(Path(project) / "data" / "spine.parquet")
    out = str(Path(project) / "target" / "training_set.parquet")
    return [
        ("Type-check every definition", ["check", "--project", project], (0,)),
        ("Compile: manifest + generated SQL for DuckDB and Spark",
         ["compile", "--project", project], (0,)),
        ("Lineage of one feature, back to its source columns",
         ["lineage", "--project", project, "user_txn_aggs.amount_avg_7d", "--upstream"], (0,)),
        ("Everything a source column feeds",
         ["lineage", "--project", project, "users.country", "--downstream"], (0,)),
        ("Plan against the dev workspace (exit code 3: changes pending)",
         ["plan", "--project", project], (0, 3)),
        ("Apply: record the definitions and backfill every view into the offline store",
         ["apply", "--project", project, "--yes"], (0,)),
        ("Nothing left to apply", ["plan", "--project", project], (0,)),
        ("Point-in-time-correct training set for fraud_detection (10,000 spine rows)",
         ["training-set", "fraud_detection", "--project", project, "--spine", spine,
          "--out", out], (0,)),
        ("Load the online store: latest values and recent tiles",
         ["materialize", "--project", project, "--online"], (0,)),
        ("Serve features over HTTP: start featql serve, query it like curl, push events and "
         "see a feature change at once, stop it",
         ["serve", "--project", project, "--demo", "--push"], (0,)),
    ]


def run(args: argparse.Namespace, runner: Callable[[list[str]], int] | None = None) -> int:
    from featql.cli.commands.init import generate_data
    from featql.cli.main import main
    from featql.examples.generate import write_spine

    out = console()
    root = Path(args.project)
    if not (root / "data" / "transactions").exists():
        out.rule("[bold]Generate the example data")
        generate_data(root, args.transactions, args.days)
    if not (root / "data" / "spine.parquet").exists():
        out.print(f"wrote the training spine {write_spine(root)}")
    call = runner or main
    for title, argv, ok_codes in steps(args.project):
        out.rule(f"[bold]{title}")
        out.print(f"[dim]$ featql {' '.join(argv)}[/]")
        code = call(argv)
        if code not in ok_codes:
            out.print(f"[bold red]demo stopped: step '{title}' exited {code}[/]")
            return code
    out.rule("[bold green]demo complete")
    return 0
