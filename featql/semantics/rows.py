"""Row-level views: which row a time sees (PRODUCT §3), in Python and as SQL fragments.

- Visibility: a row with event time `ts` is seen at `t` when `ts < t` (strictly before: the
  event being scored is never its own feature) and, with a TTL, `t - ts <= ttl`.
- As known at (a source with `known_at = created`): a row is seen at `t` only when it had
  arrived, `created <= t`; a row whose created is NULL never is (its arrival is unknown, and
  showing it could leak a later row). Without known_at, created only breaks ties.
- Tie-break: among rows of one entity, the greatest event time wins; on equal event times the
  greatest `created` (the source's `created` column; NULL is the smallest), then the greatest
  tuple of feature values (in declaration order; NULL is the smallest value at every
  position). The winner's values are returned as they are (a NULL stays NULL).

The offline lowering (DuckDB `QUALIFY row_number()`, Spark's ordered structs), the online load
(the latest row per entity) and the online read (TTL at lookup time) all take the rule here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from featql.semantics.sql import US, quote

T = TypeVar("T")


# -- Python ----------------------------------------------------------------------------------------
def visible(event_us: int, now_us: int, ttl_seconds: int | None) -> bool:
    """Strictly before `now`, and no older than the TTL."""
    if event_us >= now_us:
        return False
    return ttl_seconds is None or now_us - event_us <= ttl_seconds * US


def known(created_us: int | None, now_us: int) -> bool:
    """As known at: the row had arrived by `now` (`created <= now`; NULL: never)."""
    return created_us is not None and created_us <= now_us


def _nulls_smallest(value: Any) -> tuple[bool, Any]:
    return (value is not None, value)


def order_key(event_us: int, created_us: int | None, features: Sequence[Any]) -> tuple[Any, ...]:
    """The tie-break order as a sort key: the greatest key wins."""
    return (event_us, _nulls_smallest(created_us), tuple(_nulls_smallest(v) for v in features))


def latest(rows: Iterable[T], key: Any) -> T | None:
    """The winning row of `rows` (`key(row)` gives its `order_key`), None when there is none."""
    best: T | None = None
    best_key: Any = None
    for row in rows:
        k = key(row)
        if best is None or k > best_key:
            best, best_key = row, k
    return best


# -- SQL -------------------------------------------------------------------------------------------
def tiebreak_order_sql(dialect: str, created: str | None, features: Sequence[str],
                       timestamp: str | None = None) -> str:
    """An ORDER BY putting the winner first: `timestamp` (if given: across event times) DESC,
    then `created` (a column expression; None when the rows have none) and each feature
    (names) descending with NULL last. For `row_number() ... = 1`."""
    parts = [] if timestamp is None else [f"{quote(dialect, timestamp)} DESC"]
    if created is not None:
        parts.append(f"{created} DESC NULLS LAST")
    parts.extend(f"{quote(dialect, f)} DESC NULLS LAST" for f in features)
    return ", ".join(parts)


def tiebreak_struct_sql(ts_us: str, created: str, features: Sequence[str]) -> str:
    """Spark: the tie-break order as one struct (ts, created, features...) whose ascending
    order (struct fields order NULL first) puts the winner last: the running
    `last(struct, ignoreNulls)` picks it. `features`: column expressions."""
    fields = ["'ts', " + ts_us, "'c', " + created,
              *(f"'t{j}', {f}" for j, f in enumerate(features))]
    return f"named_struct({', '.join(fields)})"


def before_sql(t_us: str, ts_us: str) -> str:
    """`ts < t`, the strictly-before rule (as the ASOF condition `t > ts`)."""
    return f"{t_us} > {ts_us}"


def ttl_sql(t_us: str, ts_us: str, ttl_seconds: int | None) -> str:
    """`t - ts <= ttl` over epoch microseconds; '' without a TTL."""
    return f"{t_us} - {ts_us} <= {ttl_seconds * US}" if ttl_seconds is not None else ""


def visible_from_sql(ts_us: str, created_us: str) -> str:
    """When a row of a known_at view starts being seen, in epoch microseconds:
    `max(ts + 1us, created)` (strictly after its event time, once created), so a row is seen
    at t exactly when `visible_from <= t`. `greatest` returns NULL on a NULL created (never
    seen) only where the dialect does: callers filter NULL created rows out first."""
    return f"greatest({ts_us} + 1, {created_us})"


def known_sql(t: str, created: str) -> str:
    """`created <= t` (the as-known-at rule; a NULL created compares unknown: not seen)."""
    return f"{created} <= {t}"
