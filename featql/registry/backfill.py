"""Backfill estimates: which intervals a created or recreated view must compute, and how many
source rows that scans, read cheaply from Parquet footers (row counts and timestamp statistics;
no data pages are read).

Intervals run from the view's `start` every `schedule` up to the end of its sources' data
(the latest event time, rounded up to an interval) or now, whichever is earlier. Intervals the
offline engine already materialized for the view's *new* storage fingerprint (a rollback to a
state that was applied before; a TTL-only change, which keeps the stored data) are subtracted.
Of the rest, those stored for the old definition can reuse its unchanged column groups
(`featql.registry.reuse`): `reused` counts them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from featql.core.durations import format_duration
from featql.core.ir import FeatureView, Manifest, Source
from featql.registry.reuse import Reuse, reuse_from
from featql.registry.store import Interval

_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class SourceStats:
    rows: int | None  # None: unknown (not Parquet, or remote)
    max_ts: datetime | None
    files: int


@dataclass(frozen=True)
class BackfillEstimate:
    view: str
    fingerprint: str  # the storage fingerprint the backfill writes (FeatureView.stored_as)
    start: datetime
    end: datetime | None  # exclusive; None when the sources hold no data yet
    interval_seconds: int
    intervals: int  # to compute
    done: int  # already materialized for this fingerprint
    source_rows: int | None
    sources: tuple[str, ...]
    until: str  # "data" | "now" | "no data"
    reuse: Reuse | None = None  # unchanged column groups taken from the old definition's data
    reused: int = 0  # of `intervals`, those computing only `reuse.computed`
    note: str | None = None  # why nothing stored is recomputed, or why nothing is reused


def upstream_sources(manifest: Manifest, view: FeatureView) -> tuple[str, ...]:
    seen: list[str] = []
    stack = list(view.depends_on)
    visited: set[str] = set()
    while stack:
        name = stack.pop()
        if name in visited:
            continue
        visited.add(name)
        if manifest.source(name) is not None:
            seen.append(name)
        elif (v := manifest.view(name)) is not None:
            stack.extend(v.depends_on)
    return tuple(sorted(seen))


def source_stats(root: Path, source: Source) -> SourceStats:
    if source.batch.path.startswith(("s3://", "gs://", "http")) or source.batch.format != "parquet":
        return SourceStats(None, None, 0)
    path = root / source.batch.path
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path] if path.exists() else []
    if not files:
        return SourceStats(0, None, 0)
    import pyarrow.parquet as pq

    rows = 0
    max_ts: datetime | None = None
    for f in files:
        meta = pq.ParquetFile(f).metadata
        rows += meta.num_rows
        idx = _column_index(meta.schema.names, source.timestamp)
        if idx is None:
            continue
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(idx).statistics
            if stats is not None and stats.has_min_max:
                ts = _naive(stats.max)
                if ts is not None and (max_ts is None or ts > max_ts):
                    max_ts = ts
    return SourceStats(rows, max_ts, len(files))


def _column_index(names: list[str], column: str) -> int | None:
    for i, n in enumerate(names):
        if n.lower() == column:
            return i
    return None


def _naive(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return None


def _floor(t: datetime, origin: datetime, step: int) -> datetime:
    k = int((t - origin).total_seconds()) // step
    return origin + timedelta(seconds=k * step)


def estimate(root: Path, manifest: Manifest, view: FeatureView, done: list[Interval],
             now: datetime, cache: dict[str, SourceStats] | None = None) -> BackfillEstimate:
    cache = {} if cache is None else cache
    names = upstream_sources(manifest, view)
    stats: list[SourceStats] = []
    for n in names:
        src = manifest.source(n)
        if src is None:
            continue
        if n not in cache:
            cache[n] = source_stats(root, src)
        stats.append(cache[n])
    step = max(1, view.schedule_seconds)
    start = datetime.fromisoformat(view.start)
    rows = None if any(s.rows is None for s in stats) else sum(s.rows or 0 for s in stats)
    known = [s.max_ts for s in stats if s.max_ts is not None]
    now_end = _floor(now, start, step)
    if known and all(s.rows is not None for s in stats):
        data_end = _floor(max(known), start, step) + timedelta(seconds=step)
        end, until = (data_end, "data") if data_end <= now_end else (now_end, "now")
    elif stats and all(s.rows == 0 for s in stats):
        end, until = None, "no data"
    else:
        end, until = now_end, "now"
    total = 0 if end is None or end <= start else int((end - start).total_seconds()) // step
    covered = _covered(start, step, total, done)
    return BackfillEstimate(view.name, view.stored_as, start, end, step, total - covered,
                            covered, rows, names, until)


def reusable(b: BackfillEstimate, done: list[Interval], base_done: list[Interval],
             same_start: bool = True) -> int:
    """How many of the intervals `b` computes (not in `done`) are stored in `base_done`; the
    first interval (which also holds every earlier row) only if the old definition started at
    the same time."""
    if b.end is None:
        return 0
    total = b.intervals + b.done
    mine = _mask(b.start, b.interval_seconds, total, done)
    base = _mask(b.start, b.interval_seconds, total, base_done)
    if base and not same_start:
        base[0] = False
    return sum(1 for m, o in zip(mine, base, strict=True) if o and not m)


def _covered(start: datetime, step: int, total: int, done: list[Interval]) -> int:
    """How many of the `total` planned intervals lie inside materialized ranges (linear)."""
    return sum(_mask(start, step, total, done))


def _mask(start: datetime, step: int, total: int, done: list[Interval]) -> list[bool]:
    """Per planned interval, whether it lies inside a materialized range (linear)."""
    out = [False] * total
    if not done or total == 0:
        return out
    merged: list[list[datetime]] = []
    for d in sorted(done, key=lambda i: i.start):
        if merged and d.start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], d.end)
        else:
            merged.append([d.start, d.end])
    j = 0
    for k in range(total):
        a = start + timedelta(seconds=k * step)
        b = a + timedelta(seconds=step)
        while j < len(merged) and merged[j][1] < b:
            j += 1
        if j == len(merged):
            break
        if merged[j][0] <= a:
            out[k] = True
    return out


def with_reuse(b: BackfillEstimate, old: FeatureView | None, new: FeatureView,
               old_manifest: Manifest | None, new_manifest: Manifest, done: list[Interval],
               materialized: Callable[[str, str], list[Interval]]) -> BackfillEstimate:
    """`b` with what the old definition's stored data saves: nothing to recompute when the
    storage fingerprint is unchanged (the change applies at read time), else the column groups
    reused and in how many intervals (`featql.registry.reuse`)."""
    if old is None:
        return b
    if old.stored_as == new.stored_as:
        return replace(b, note=read_time_note(old, new, old_manifest, new_manifest))
    found = reuse_from(new, old.stored_as, old.kind, old.stored)
    if isinstance(found, str):
        return replace(b, note=f"no reuse: {found}")
    if found is None or not b.intervals:
        return b
    return replace(b, reuse=found, reused=reusable(
        b, done, materialized(new.name, old.stored_as), str(old.start) == str(new.start)))


def read_time_note(old: FeatureView, new: FeatureView, old_manifest: Manifest | None,
                   new_manifest: Manifest) -> str:
    """What changed although the stored data did not: "ttl 30d → 90d: applies at read time"."""
    what: list[str] = []
    if old.ttl_seconds != new.ttl_seconds:
        what.append(f"ttl {_dur(old.ttl_seconds)} → {_dur(new.ttl_seconds)}")
    if old.windows != new.windows:
        what.append(f"windows {_durs(old.windows)} → {_durs(new.windows)}")
    if not what and old.fingerprint != new.fingerprint:
        ups = [d for d in new.depends_on if old_manifest is not None
               and (ov := old_manifest.view(d)) is not None
               and (nv := new_manifest.view(d)) is not None and ov.fingerprint != nv.fingerprint]
        what.append(f"the change upstream ({', '.join(ups) or 'inputs'})")
    if not what:
        return "the stored data does not change"
    return f"{', '.join(what)}: applies at read time, no recompute"


def _dur(v: int | None) -> str:
    return "none" if v is None else format_duration(v)


def _durs(v: tuple[int, ...]) -> str:
    return "[" + ", ".join(format_duration(x) for x in v) + "]"
