"""What batch materialization has done, kept in the registry (`<project>/.featql/registry.db`).

The offline engine (featql.jobs) reads and writes it only through `MaterializationState`; the
table is created with the registry's others (featql/registry/sqlite.py):

    materializations(
        workspace      TEXT NOT NULL,     -- "dev", "prod", ...
        view           TEXT NOT NULL,     -- feature view name, variant included (user_profile:v2)
        fingerprint    TEXT NOT NULL,     -- the view's storage fingerprint (FeatureView.stored_as)
        interval_start TEXT NOT NULL,     -- UTC, ISO 8601 without zone: 2024-01-01T00:00:00
        interval_end   TEXT NOT NULL,     -- exclusive, same format
        rows           INTEGER NOT NULL,  -- rows (row-level views) or tiles written
        files          INTEGER NOT NULL,  -- Parquet files written for the interval
        finished_at    TEXT NOT NULL,     -- UTC, ISO 8601 with offset, when the run recorded it
        PRIMARY KEY (workspace, view, fingerprint, interval_start))

A row means: the interval's data is in the offline store under
`<offline path>/<workspace>/<view>/<fingerprint>/`. Rows are written after the data is in place
(re-running an interval replaces its row). Intervals follow the view's schedule from its start.

Beside it, the signatures of the source files the view's done intervals were computed from
(`featql.offline.signatures`; compared on the next incremental run by `featql.jobs.stale`):

    materialization_sources(workspace, view, fingerprint, source, recorded_at)
        -- a source whose files are signed for the view (its baseline exists)
    materialization_files(workspace, view, fingerprint, source,
        path, size, mtime_ns, etag,       -- the signature
        has_range, min_ts, max_ts)        -- the event-time range of the file's rows, when known
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from featql.offline.signatures import FileSignature
from featql.registry.sqlite import SqliteRegistry, registry_path


@dataclass(frozen=True)
class Done:
    start: datetime
    end: datetime
    rows: int
    files: int


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S")


class MaterializationState:
    def __init__(self, project_root: str | Path) -> None:
        self.path = registry_path(Path(project_root))

    def _open(self) -> SqliteRegistry:
        return SqliteRegistry(self.path, 30.0)

    def done(self, workspace: str, view: str, fingerprint: str) -> list[Done]:
        if not self.path.exists():
            return []
        reg = self._open()
        try:
            rows = reg.db.execute(
                "SELECT interval_start, interval_end, rows, files FROM materializations "
                "WHERE workspace = ? AND view = ? AND fingerprint = ? ORDER BY interval_start",
                (workspace, view, fingerprint)).fetchall()
        finally:
            reg.close()
        return [Done(datetime.fromisoformat(a), datetime.fromisoformat(b), r, f)
                for a, b, r, f in rows]

    def record(self, workspace: str, view: str, fingerprint: str,
               intervals: Iterable[Done]) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        reg = self._open()
        try:
            with reg.write():
                reg.db.executemany(
                    "INSERT OR REPLACE INTO materializations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(workspace, view, fingerprint, iso(d.start), iso(d.end), d.rows, d.files,
                      now) for d in intervals])
        finally:
            reg.close()

    def signatures(self, workspace: str, view: str, fingerprint: str
                   ) -> dict[str, list[FileSignature]]:
        """Per signed source of the view: the recorded file signatures (a source missing from
        the result has no baseline yet)."""
        if not self.path.exists():
            return {}
        reg = self._open()
        try:
            srcs = reg.db.execute(
                "SELECT source FROM materialization_sources WHERE workspace = ? AND view = ? "
                "AND fingerprint = ?", (workspace, view, fingerprint)).fetchall()
            rows = reg.db.execute(
                f"SELECT source, {_SIG_COLUMNS} FROM materialization_files WHERE "
                "workspace = ? AND view = ? AND fingerprint = ? ORDER BY source, path",
                (workspace, view, fingerprint)).fetchall()
        finally:
            reg.close()
        out: dict[str, list[FileSignature]] = {r[0]: [] for r in srcs}
        for r in rows:
            if r[0] in out:
                out[r[0]].append(_signature(tuple(r)[1:]))
        return out

    def known_files(self, source: str) -> dict[str, list[FileSignature]]:
        """Every signature recorded for a source's files, by any view: path -> signatures (to
        reuse a file's time range instead of reading it again)."""
        if not self.path.exists():
            return {}
        reg = self._open()
        try:
            rows = reg.db.execute(
                f"SELECT DISTINCT {_SIG_COLUMNS} FROM materialization_files WHERE source = ? "
                "AND has_range = 1", (source,)).fetchall()
        finally:
            reg.close()
        out: dict[str, list[FileSignature]] = {}
        for r in rows:
            sig = _signature(tuple(r))
            out.setdefault(sig.path, []).append(sig)
        return out

    def record_signatures(self, workspace: str, view: str, fingerprint: str, source: str,
                          files: Iterable[FileSignature], drop: Iterable[str] = ()) -> None:
        """Record (replace) `files` and forget the paths in `drop` for the view's source, and
        mark the source as signed, in one transaction."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        key = (workspace, view, fingerprint, source)
        reg = self._open()
        try:
            with reg.write():
                reg.db.execute("INSERT OR REPLACE INTO materialization_sources VALUES "
                               "(?, ?, ?, ?, ?)", (*key, now))
                reg.db.executemany(
                    "DELETE FROM materialization_files WHERE workspace = ? AND view = ? AND "
                    "fingerprint = ? AND source = ? AND path = ?", [(*key, p) for p in drop])
                reg.db.executemany(
                    "INSERT OR REPLACE INTO materialization_files VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(*key, f.path, f.size, f.mtime_ns, f.etag, int(f.has_range),
                      _iso_us(f.min_ts), _iso_us(f.max_ts)) for f in files])
        finally:
            reg.close()


_SIG_COLUMNS = "path, size, mtime_ns, etag, has_range, min_ts, max_ts"


def _iso_us(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat(timespec="microseconds")


def _signature(r: tuple[object, ...]) -> FileSignature:
    path, size, mtime_ns, etag, has_range, lo, hi = r
    return FileSignature(str(path), int(size), int(mtime_ns),  # type: ignore[call-overload]
                         str(etag), datetime.fromisoformat(lo) if isinstance(lo, str) else None,
                         datetime.fromisoformat(hi) if isinstance(hi, str) else None,
                         bool(has_range))


def covers(done: list[Done], start: datetime, end: datetime) -> bool:
    """True when the union of the done intervals contains [start, end)."""
    if end <= start:
        return True
    reach = start
    for d in sorted(done, key=lambda d: d.start):
        if d.start > reach:
            break
        reach = max(reach, d.end)
        if reach >= end:
            return True
    return reach >= end
