"""One module per CLI command: `add_arguments(parser)` and `run(args) -> int`.

`COMMANDS` is the command table, in the order `featql --help` lists them: the CLI name, the
module under this package and the one-line summary. Importing this package imports no command
module; `featql.cli.main` imports only the module of the command being run, so `featql check`
loads neither the registry nor an engine. A new command is a module plus a line here
(tests/test_cli.py checks that every module is listed).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str  # as typed: `featql <name>`
    module: str  # under featql.cli.commands
    summary: str  # its line in `featql --help`


COMMANDS: tuple[Command, ...] = (
    Command("init", "init", "scaffold a project (the fraud-detection example) with sample data"),
    Command("check", "check",
            "parse and type-check everything; diagnostics as path:line:col"),
    Command("compile", "compile",
            "write target/manifest.json and the generated SQL per view and target"),
    Command("lineage", "lineage", "column-level lineage as a tree"),
    Command("plan", "plan", "diff the project against a workspace, classified"),
    Command("apply", "apply", "apply the plan to a workspace and run its backfills"),
    Command("workspace", "workspace", "isolated namespaces (dev, prod, ...)"),
    Command("history", "history", "the applies of a workspace, oldest first"),
    Command("materialize", "materialize", "fill the offline store"),
    Command("training-set", "training_set", "point-in-time-correct training data"),
    Command("serve", "serve", "the online feature server (gunicorn + Flask; Flask's dev "
            "server with --reload)"),
    Command("demo", "demo",
            "the end-to-end walkthrough on the embedded default (what `make demo` runs)"),
)

BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}
