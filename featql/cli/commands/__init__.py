"""One module per CLI command: `add_arguments(parser)` and `run(args) -> int`.

`COMMANDS` is the command table, in the order `featql --help` lists them: the CLI name and the
module under this package. A command's help is its module docstring (the first paragraph,
"`featql NAME ...`: what it does", is its summary). Importing this package imports no command
module; `featql.cli.main` imports only the module of the command being run (all of them only
for `featql --help`), so `featql check` loads neither the registry nor an engine. A new command
is a module plus a line here (tests/test_cli.py checks that every module is listed).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str  # as typed: `featql <name>`
    module: str  # under featql.cli.commands


COMMANDS: tuple[Command, ...] = (
    Command("init", "init"),
    Command("check", "check"),
    Command("compile", "compile"),
    Command("lineage", "lineage"),
    Command("plan", "plan"),
    Command("apply", "apply"),
    Command("workspace", "workspace"),
    Command("history", "history"),
    Command("materialize", "materialize"),
    Command("stream", "stream"),
    Command("ingest", "ingest"),
    Command("training-set", "training_set"),
    Command("serve", "serve"),
    Command("demo", "demo"),
)

BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}


def summary(doc: str | None) -> str:
    """A command's line in `featql --help`: its docstring's first paragraph after the usage."""
    first = " ".join((doc or "").strip().split("\n\n")[0].split())
    return first.split("`: ", 1)[-1].rstrip(".")
