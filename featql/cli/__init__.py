"""The command line: argument parsing, the command table, terminal output (rich) and the commands.

The only layer that draws on a terminal; everything below reports through return values,
`featql.core.progress.Progress` and `featql.core.errors.UserError`.
"""

from featql.cli.main import main

__all__ = ["main"]
