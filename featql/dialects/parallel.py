"""Lower every view of a manifest, on several cores when asked and there are many views.

Each view is independent once the manifest exists, so with `parallel=True` a large project is
lowered by the workers of a `featql.core.pool.ForkPool` (they inherit the manifest; only view
names go in and SQL text or diagnostics come back, in manifest order, so the result is the same
as lowering one view after another). Small projects, library callers (the default), platforms
without `fork` and single-core machines lower in this process.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from featql.core import pool
from featql.core.diagnostics import Diagnostic
from featql.core.ir import Manifest
from featql.dialects.errors import Target
from featql.dialects.lower import LoweringError, lower_targets

PARALLEL_MIN_VIEWS = 200  # below this, starting workers costs more than it saves
MAX_WORKERS = 4
CHUNK = 20  # views per task: few round trips, still balanced between workers

Lowered = dict[Target, "str | Diagnostic"]


def lower_views(manifest: Manifest, targets: Sequence[Target], *,
                parallel: bool = False) -> dict[str, Lowered]:
    """view name → target → SQL text, or the diagnostic of a view that cannot be lowered."""
    names = [v.name for v in manifest.views]
    with pool.gc_paused():
        workers = min(pool.cpus(), MAX_WORKERS, len(names) // CHUNK)
        if not parallel or len(names) < PARALLEL_MIN_VIEWS or workers < 2 \
                or not pool.can_fork():
            return {n: _lower_one(manifest, n, targets) for n in names}
        with pool.ForkPool(workers, shared=(manifest, tuple(targets))) as forked:
            results = list(forked.map(_lower_in_worker, names, chunksize=CHUNK))
        return dict(zip(names, results, strict=True))


def _lower_in_worker(name: str) -> Lowered:
    manifest, targets = pool.shared()
    return _lower_one(manifest, name, targets)


def _lower_one(manifest: Manifest, name: str, targets: Sequence[Target],
               query: exp.Expr | None = None) -> Lowered:
    return {t: sql.diagnostic if isinstance(sql, LoweringError) else sql
            for t, sql in lower_targets(manifest, name, targets, query).items()}
