"""Generate SQL for one engine from a sqlglot tree: refusals first, then strict generation.

Every piece of SQL featql hands to an engine goes through `generate`, so nothing reaches DuckDB
or Spark that sqlglot flagged as unsupported (`ErrorLevel.RAISE`) or that `refusals.py` knows is
translated wrongly.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, UnsupportedError

from featql.core.diagnostics import Span
from featql.core.treecopy import light_copy
from featql.dialects.duckdb import FeatqlDuckDB
from featql.dialects.errors import ENGINE_NAMES, NO_SPAN, Target, refuse
from featql.dialects.refusals import check
from featql.dialects.spark import FeatqlSpark

DIALECTS: dict[Target, type[Dialect]] = {"duckdb": FeatqlDuckDB, "spark": FeatqlSpark}
# one instance each: naming a dialect by its class makes sqlglot build an instance per call
_INSTANCES: dict[Target, Dialect] = {t: d() for t, d in DIALECTS.items()}


def parse(sql: str, read: Target = "duckdb") -> exp.Expr:
    """One statement in a featql dialect, with every comment dropped."""
    tree = sqlglot.parse_one(sql, read=_INSTANCES[read])
    for node in tree.walk():
        node.comments = None
    return tree


def generate(tree: exp.Expr, target: Target, span: Span = NO_SPAN, *,
             pretty: bool = True, copy: bool = True, checked: bool = False) -> str:
    """`tree` as `target` SQL; raises `LoweringError` (E701) rather than emit wrong SQL.

    `copy=False` lets sqlglot's generator transform `tree` in place: only for a tree that is
    used for nothing afterwards (the last target a plan is rendered for). `checked`: the
    caller already ran `refusals.check` (or `check_all`) on this very tree for `target`.
    """
    if not checked:
        check(tree, target, span)
    try:
        # a light copy: `copy=True` would deep-copy every node's metadata too
        return (light_copy(tree) if copy else tree).sql(
            dialect=_INSTANCES[target], pretty=pretty, comments=False,
            unsupported_level=ErrorLevel.RAISE, copy=False)
    except UnsupportedError as e:
        raise refuse(f"this query cannot run on {ENGINE_NAMES[target]}: {e}", span) from None


def transpile(sql: str, read: Target, write: Target, span: Span = NO_SPAN, *,
              pretty: bool = True) -> str:
    """Translate one statement between featql's dialects, with the same refusals."""
    return generate(parse(sql, read), write, span, pretty=pretty, copy=False)
