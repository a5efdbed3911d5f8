"""Lower every view of a manifest, on several cores when there are many views.

Each view is independent once the manifest exists, so large projects are lowered by forked
worker processes (they inherit the manifest; only view names go in and SQL text or diagnostics
come back, in manifest order, so the result is the same as lowering one view after another).
Small projects, platforms without `fork` and single-core machines lower in this process.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Sequence

from sqlglot import exp

from featql.core.diagnostics import Diagnostic
from featql.core.gcpause import fewer_gc_pauses
from featql.core.ir import Manifest
from featql.dialects.errors import Target
from featql.dialects.lower import LoweringError, lower_targets

PARALLEL_MIN_VIEWS = 200  # below this, starting workers costs more than it saves
MAX_WORKERS = 4
CHUNK = 20  # views per task: few round trips, still balanced between workers

Lowered = dict[Target, "str | Diagnostic"]

_work: tuple[Manifest, tuple[Target, ...]] | None = None  # set in the parent before forking


def lower_views(manifest: Manifest, targets: Sequence[Target]) -> dict[str, Lowered]:
    """view name → target → SQL text, or the diagnostic of a view that cannot be lowered."""
    names = [v.name for v in manifest.views]
    workers = min(_cpus(), MAX_WORKERS, len(names) // CHUNK)
    with fewer_gc_pauses():
        if len(names) < PARALLEL_MIN_VIEWS or workers < 2 \
                or "fork" not in multiprocessing.get_all_start_methods():
            return {n: _lower_one(manifest, n, targets) for n in names}
        return _lower_forked(manifest, tuple(targets), names, workers)


def _lower_forked(manifest: Manifest, targets: tuple[Target, ...], names: list[str],
                  workers: int) -> dict[str, Lowered]:
    global _work
    _work = (manifest, targets)
    # objects alive now are never collected in the workers: no copy-on-write of the whole heap
    gc.freeze()
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_lower_in_worker, names, chunksize=CHUNK)
    finally:
        gc.unfreeze()
        _work = None
    return dict(zip(names, results, strict=True))


def _lower_in_worker(name: str) -> Lowered:
    assert _work is not None, "workers are forked after the manifest is set"
    manifest, targets = _work
    return _lower_one(manifest, name, targets)


def _lower_one(manifest: Manifest, name: str, targets: Sequence[Target],
               query: exp.Expr | None = None) -> Lowered:
    return {t: sql.diagnostic if isinstance(sql, LoweringError) else sql
            for t, sql in lower_targets(manifest, name, targets, query).items()}


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


