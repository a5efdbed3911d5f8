"""featql's dialects subclass sqlglot's: they need sqlglot's pure-Python build.

`sqlglot[c]` installs `sqlglotc`, which overlays mypyc-compiled modules onto the `sqlglot`
package; compiled parser and generator classes reject Python subclasses at first use
("interpreted classes cannot inherit from compiled"). Another tool in the same environment can
pull it in, so this is a user's setup problem: say which package to remove, up front.
"""

from __future__ import annotations

from sqlglot import tokens

from featql.core.errors import UserError

MESSAGE = ("featql needs the pure-Python build of sqlglot, but the compiled build (the "
           "'sqlglotc' package, which sqlglot's 'c' extra installs) is in this environment: its "
           "compiled classes cannot be subclassed, and featql's DuckDB and Spark dialects "
           "subclass them. Remove it with `pip uninstall sqlglotc` (then reinstall sqlglot) or "
           "use a separate environment for featql.")


def require_pure_sqlglot() -> None:
    if getattr(tokens, "SQLGLOTC_INSTALLED", False):
        raise UserError(MESSAGE)
