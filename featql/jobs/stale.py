"""Late rows: which already-materialized intervals of a view are stale, and why.

With each materialization, the signatures of the files of every batch source a view reads
(transitively, through the views it reads) are recorded in the registry
(`featql.registry.materializations`, signatures from `featql.offline.signatures`). On the next
run they are compared with the files as they are now:

- a **new** file makes stale the intervals its rows fall in (its event-time range: Parquet footer
  statistics, else its time column read);
- a **changed** file (same path, other size, mtime or ETag) the intervals of its old rows (the
  range recorded with its signature) and of its new ones;
- a **deleted** file the intervals of the range recorded with its signature.

A file's range [lo, hi] maps to the view's intervals through the view's event time: the
intervals holding lo..hi for a row-level view (rows before the view's start are in its first
interval), the intervals holding the tiles floor(lo, S)..floor(hi, S) for an aggregate view.
That needs the view's event time to *be* the source's timestamp (lineage `time` edges and a
bare column at every step); when it is not (a joined dimension source, a computed timestamp),
or a file's range is unknown, every done interval is stale.

Only intervals already done are "recomputed"; intervals never done are computed as before.
A declared `lookback` (seconds) also recomputes the done intervals ending within `lookback` of
the end of the newest done one, on every incremental run.

A file change is recorded as seen (its new signature stored) only after a run recomputed every
done interval it made stale; a run restricted by `--start/--end` leaves the others stale for
the next run (recomputing an interval twice changes no byte).

What is recorded is the listing taken at the run's start (`LateRows.snapshot`, before any
engine lists the sources' files), never the files as they are after the run: a file arriving
while the run reads (a push logged into `<batch folder>/ingest/<day>/`) may not be in what the
engine read, so it stays new and its intervals are stale on the next run. A file arriving
between the snapshot and the engine's own listing is read and recomputed once more next time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from featql.core.durations import format_duration
from featql.core.ir import FeatureView, Manifest, Source
from featql.core.progress import SILENT, Progress
from featql.offline.signatures import FileSignature, sign_files, with_ranges
from featql.registry.materializations import Done, MaterializationState
from featql.semantics.time import floor_datetime

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class FileChange:
    source: str
    kind: str  # new | changed | deleted
    path: str
    lo: datetime | None  # the event-time range its rows had or have (None, None: no rows)
    hi: datetime | None
    known: bool  # False: the range is unknown (every interval may be touched)


@dataclass(frozen=True)
class StaleIntervals:
    """What an incremental run must recompute for one view, and what to record after it."""

    view: str
    fingerprint: str
    recompute: tuple[Interval, ...]  # done intervals to compute again, sorted
    changes: tuple[FileChange, ...]  # the file changes that touch done intervals in the range
    lookback: int | None = None  # seconds, when the declared lookback added intervals
    # what to record once the run has written `recompute` (see `record`)
    _current: dict[str, list[FileSignature]] = field(default_factory=dict, repr=False)
    _held: dict[str, set[str]] = field(default_factory=dict, repr=False)  # changes kept stale
    _recorded: dict[str, list[FileSignature]] = field(default_factory=dict, repr=False)

    @property
    def reason(self) -> str:
        """`1 changed file in source transactions (data/transactions/part-7.parquet)`, ...;
        causes joined with '; '."""
        parts = []
        by_source: dict[str, list[FileChange]] = {}
        for c in self.changes:
            by_source.setdefault(c.source, []).append(c)
        for src, changes in by_source.items():
            counts = []
            for kind in ("new", "changed", "deleted"):
                n = sum(1 for c in changes if c.kind == kind)
                if n:
                    counts.append(f"{n} {kind} file{'s' if n > 1 else ''}")
            paths = [c.path for c in changes]
            shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3
                                             else "")
            parts.append(f"{', '.join(counts)} in source {src} ({shown})")
        if self.lookback:
            parts.append(f"lookback {format_duration(self.lookback)}")
        return "; ".join(parts)


def interval_range(intervals: Sequence[Interval]) -> str:
    """`2024-01-05..2024-01-08` (end exclusive); with times when not on midnights."""
    a, b = intervals[0][0], intervals[-1][1]
    fmt = "%Y-%m-%d" if a.time() == b.time() == datetime.min.time() else "%Y-%m-%d %H:%M"
    return f"{a.strftime(fmt)}..{b.strftime(fmt)}"


class LateRows:
    """One per materialize run: lists each source's files once and compares them per view."""

    def __init__(self, root: Path, manifest: Manifest, workspace: str,
                 state: MaterializationState, progress: Progress = SILENT) -> None:
        self.root, self.manifest, self.workspace = Path(root), manifest, workspace
        self.state, self.progress = state, progress
        self._listed: dict[str, list[FileSignature]] = {}
        self._ranged: dict[tuple[str, str], FileSignature] = {}  # (source, path) -> with range

    def snapshot(self, views: Sequence[FeatureView]) -> None:
        """List the files of every batch source the views read, once, now: call it before
        anything reads them, so what `record` stores is no newer than what the run read."""
        for view in views:
            for source in sources_of(self.manifest, view):
                if source.name not in self._listed:
                    self._listed[source.name] = sign_files(source, self.root)

    # -- the comparison --------------------------------------------------------------------
    def check(self, view: FeatureView, done: list[Done], first: datetime, lo: datetime | None,
              hi: datetime | None, now: datetime) -> StaleIntervals:
        """The done intervals of `view` to recompute in the requested range [lo, hi)."""
        step = timedelta(seconds=view.schedule_seconds)
        k_lo = max(0, (lo - first) // step) if lo is not None else 0
        k_hi = (now - first) // step
        if hi is not None:
            k_hi = min(k_hi, (hi - first) // step)
        by_k = {(d.start - first) // step: (d.start, d.end) for d in done}
        in_range = {k for k in by_k if k_lo <= k < k_hi}
        recorded = self.state.signatures(self.workspace, view.name, view.stored_as)
        time_source = view_time_source(self.manifest, view)
        stale: set[int] = set()
        changes: list[FileChange] = []
        current: dict[str, list[FileSignature]] = {}
        held: dict[str, set[str]] = {}
        for source in sources_of(self.manifest, view):
            old = recorded.get(source.name)
            now_files = self._signed(source, old)
            current[source.name] = now_files
            if old is None:
                continue  # no baseline yet: recorded after this run
            for change in _diff(source.name, old, now_files):
                ks = set(by_k) if not change.known or source.name != time_source else (
                    _touched(view, change, first, step, set(by_k)))
                if not ks:
                    continue
                if ks - in_range:
                    held.setdefault(source.name, set()).add(change.path)
                if ks & in_range:
                    changes.append(change)
                    stale |= ks & in_range
        lookback = None
        if view.lookback_seconds and in_range:
            anchor = max(by_k[k][1] for k in in_range)
            extra = {k for k in in_range if by_k[k][1] > anchor - timedelta(
                seconds=view.lookback_seconds)}
            if extra:
                lookback = view.lookback_seconds
                stale |= extra
        return StaleIntervals(view.name, view.stored_as,
                              tuple(sorted(by_k[k] for k in stale)), tuple(changes), lookback,
                              current, held, recorded)

    def _signed(self, source: Source, old: list[FileSignature] | None) -> list[FileSignature]:
        """The source's files now, each with its time range (reused from a recorded signature
        of the same content, else read; with progress when files must be read)."""
        listed = self._listed.get(source.name)
        if listed is None:
            listed = self._listed[source.name] = sign_files(source, self.root)
        mine = {s.path: s for s in old or ()}
        todo = [s for s in listed if (source.name, s.path) not in self._ranged]
        if todo:
            def mine_(s: FileSignature) -> FileSignature | None:
                m = mine.get(s.path)
                return m if m is not None and m.has_range and m.same_content(s) else None

            # other views' records only when this view's own do not know every file
            known = ({} if all(mine_(s) is not None for s in todo)
                     else self.state.known_files(source.name))

            def same(s: FileSignature) -> FileSignature | None:
                m = mine_(s)
                if m is not None:
                    return m
                return next((k for k in known.get(s.path, ()) if k.same_content(s)), None)

            unknown = sum(1 for s in todo if same(s) is None)
            if unknown:
                with self.progress.task(f"reading the time range of {unknown} file(s) of "
                                        f"source {source.name}", unknown) as advance:
                    ranged = with_ranges(source, todo, self.root, same,
                                         lambda n: advance(n))
            else:
                ranged = with_ranges(source, todo, self.root, same)
            for s in ranged:
                self._ranged[(source.name, s.path)] = s
        return [self._ranged[(source.name, s.path)] for s in listed]

    # -- after the run ---------------------------------------------------------------------
    def record(self, stale: StaleIntervals) -> None:
        """Store the files of the run's snapshot for the view (after its run succeeded), except
        the changes that still leave done intervals stale outside the run's range."""
        recorded = stale._recorded  # as `check` read them
        for source, files in stale._current.items():
            old = {s.path: s for s in recorded.get(source, [])}
            held = stale._held.get(source, set())
            keep = [f for f in files if f.path not in held]
            if source in recorded and not held and _same_set(old, files):
                continue
            drop = [p for p in old if p not in {f.path for f in files} and p not in held]
            self.state.record_signatures(self.workspace, stale.view, stale.fingerprint,
                                         source, keep, drop)


def _same_set(old: dict[str, FileSignature], files: list[FileSignature]) -> bool:
    return len(old) == len(files) and all(
        f.path in old and old[f.path].same_content(f) for f in files)


def _diff(source: str, old: list[FileSignature], new: list[FileSignature]) -> list[FileChange]:
    before = {s.path: s for s in old}
    after = {s.path: s for s in new}
    out = []
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        if a is not None and b is not None and a.same_content(b):
            continue
        sigs = [s for s in (a, b) if s is not None]
        known = all(s.has_range for s in sigs)
        times = [t for s in sigs for t in (s.min_ts, s.max_ts) if t is not None]
        kind = "new" if a is None else "deleted" if b is None else "changed"
        out.append(FileChange(source, kind, path, min(times) if times else None,
                              max(times) if times else None, known))
    return out


def _touched(view: FeatureView, change: FileChange, first: datetime, step: timedelta,
             done: set[int]) -> set[int]:
    """The done intervals (indexes from the view's start) holding rows of `change`'s range."""
    if change.lo is None or change.hi is None:
        return set()
    lo, hi = change.lo, change.hi
    if view.kind == "aggregate" and view.slide_seconds:
        lo, hi = floor_datetime(lo, view.slide_seconds), floor_datetime(hi, view.slide_seconds)
    k_lo, k_hi = max(0, (lo - first) // step), max(0, (hi - first) // step)
    return {k for k in done if k_lo <= k <= k_hi}


def sources_of(manifest: Manifest, view: FeatureView) -> list[Source]:
    """The batch sources a view reads, through the views it reads, in first-read order."""
    out: list[Source] = []
    seen: set[str] = set()
    todo = list(view.depends_on)
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        source = manifest.source(name)
        if source is not None:
            out.append(source)
            continue
        upstream = manifest.view(name)
        if upstream is not None:
            todo.extend(upstream.depends_on)
    return out


def view_time_source(manifest: Manifest, view: FeatureView) -> str | None:
    """The source whose timestamp column *is* the view's event time (through row-level views,
    each passing it on as a bare column), or None when the view's time is computed or comes
    from no single source column."""
    hops = 0
    current = view
    while hops < 64:  # bounded: the DAG has no cycles, 64 is a generous depth
        hops += 1
        src = _time_input(manifest, current)
        if src is None:
            return None
        name, col = src
        source = manifest.source(name)
        if source is not None:
            return name if col == source.timestamp else None
        upstream = manifest.view(name)
        if upstream is None or upstream.kind != "row" or col != upstream.timestamp:
            return None
        current = upstream
    return None


def _time_input(manifest: Manifest, view: FeatureView) -> tuple[str, str] | None:
    """(relation, column) the view's event time is read from, when it is a bare column of
    one relation in a plain SELECT ... FROM <relation>."""
    import sqlglot
    from sqlglot import exp

    if view.kind == "aggregate":
        dsts = {f"{view.name}.{f.name}" for f in view.features}
    else:
        dsts = {f"{view.name}.{view.timestamp}"}
    srcs = {e.src for e in manifest.lineage if e.kind == "time" and e.dst in dsts}
    if len(srcs) != 1:
        return None
    name, _, col = next(iter(srcs)).rpartition(".")
    try:
        tree = sqlglot.parse_one(view.sql, dialect="duckdb")
    except sqlglot.errors.ParseError:
        return None
    if not isinstance(tree, exp.Select) or tree.args.get("with") is not None:
        return None
    from_ = tree.args.get("from") or tree.args.get("from_")
    if from_ is None or not isinstance(from_.this, exp.Table):
        return None
    if view.kind == "aggregate":
        return name, col  # tiles are cut on the FROM relation's own timestamp column
    for proj in tree.expressions:
        if proj.alias_or_name != view.timestamp:
            continue
        inner = proj.this if isinstance(proj, exp.Alias) else proj
        if isinstance(inner, exp.Column) and inner.name == col:
            return name, col
        return None
    return None

