"""`featql init DIR`: scaffold a project (the fraud-detection example) with sample data."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from featql.cli.console import UserError, console


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="folder to create (must be empty or missing)")
    p.add_argument("--transactions", type=int, default=1_000_000,
                   help="transactions to generate (default 1,000,000)")
    p.add_argument("--days", type=int, default=90, help="days of history (default 90)")
    p.add_argument("--no-data", action="store_true", help="copy definitions only")


def run(args: argparse.Namespace) -> int:
    from featql.examples.scaffold import copy_example

    dest = Path(args.dir)
    if args.transactions <= 0 or args.days <= 0:
        raise UserError("--transactions and --days must be positive")
    if dest.exists() and not dest.is_dir():
        raise UserError(f"'{dest}' is a file; choose a new folder")
    if dest.exists() and any(dest.iterdir()):
        raise UserError(f"'{dest}' exists and is not empty; choose a new folder")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the project folder '{dest}': {e.strerror or e}") from e
    files = copy_example(dest)
    out = console()
    out.print(f"[bold green]✓[/] created {dest} ({len(files)} definition files)")
    if not args.no_data:
        generate_data(dest, args.transactions, args.days)
    out.print(f"next: [bold]cd {dest} && featql check[/]")
    return 0


def generate_data(dest: Path, transactions: int, days: int) -> dict[str, int]:
    from featql.examples.generate import generate

    out = console()
    started = time.perf_counter()
    with out.status(f"generating {transactions:,} transactions over {days} days…"):
        counts = generate(dest, transactions=transactions, days=days)
    shown = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    out.print(f"[bold green]✓[/] generated {shown} rows in "
              f"{time.perf_counter() - started:.1f}s under {dest / 'data'}")
    return counts
