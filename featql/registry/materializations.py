"""What batch materialization has done, kept in the registry (`<project>/.featql/registry.db`).

The offline engine (featql.jobs) reads and writes it only through `MaterializationState`; the
table is created with the registry's others (featql/registry/sqlite.py):

    materializations(
        workspace      TEXT NOT NULL,     -- "dev", "prod", ...
        view           TEXT NOT NULL,     -- feature view name, variant included (user_profile:v2)
        fingerprint    TEXT NOT NULL,     -- the view's fingerprint when its data was written
        interval_start TEXT NOT NULL,     -- UTC, ISO 8601 without zone: 2024-01-01T00:00:00
        interval_end   TEXT NOT NULL,     -- exclusive, same format
        rows           INTEGER NOT NULL,  -- rows (row-level views) or tiles written
        files          INTEGER NOT NULL,  -- Parquet files written for the interval
        finished_at    TEXT NOT NULL,     -- UTC, ISO 8601 with offset, when the run recorded it
        PRIMARY KEY (workspace, view, fingerprint, interval_start))

A row means: the interval's data is in the offline store under
`<offline path>/<workspace>/<view>/<fingerprint>/`. Rows are written after the data is in place
(re-running an interval replaces its row). Intervals follow the view's schedule from its start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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
