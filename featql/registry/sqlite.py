"""The embedded registry: one SQLite file, `<project>/.featql/registry.db`.

Applies are serialized by SQLite itself: `record_apply` runs in `BEGIN IMMEDIATE`, which takes
the database's write lock, and a second writer waits up to the busy timeout, then fails with a
clear message. Inside the lock the workspace's head is compared with the head the plan was
computed against, so an apply never overwrites a change it has not shown the user.

The file is created whole: the tables are written into a temporary file that is then linked
into place, so a `registry.db` that exists is either complete or not featql's. An empty
(zero-length) or unreadable file is an error naming the file, never a new registry.

The materialization state (`materializations`, written by the offline engine through
`featql.registry.materializations`) lives in the same file; nothing outside this package runs
SQL on it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from featql.core.ir import Manifest
from featql.core.manifest import ManifestError, from_data
from featql.registry.store import (
    AppliedState,
    ApplyRecord,
    BackfillRecord,
    Interval,
    NewApply,
    RegistryError,
    StalePlanError,
    WorkspaceInfo,
)

SCHEMA_VERSION = 3  # 2: registry_hooks (the Python hook sources of each apply)
# 3: materialization_files / materialization_sources (source file signatures, for late rows)
REGISTRY_FILE = "registry.db"
DEFAULT_TIMEOUT = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registry_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS registry_workspaces (
  name TEXT PRIMARY KEY,
  created_at TEXT NOT NULL,
  head INTEGER
);
CREATE TABLE IF NOT EXISTS registry_applies (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  workspace TEXT NOT NULL,
  parent INTEGER,
  applied_at TEXT NOT NULL,
  user TEXT NOT NULL,
  git_commit TEXT,
  summary TEXT NOT NULL,
  changes TEXT NOT NULL,
  manifest TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS registry_applies_ws ON registry_applies (workspace, id);
CREATE TABLE IF NOT EXISTS registry_backfills (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  apply_id INTEGER NOT NULL,
  workspace TEXT NOT NULL,
  view TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  status TEXT NOT NULL,
  message TEXT NOT NULL DEFAULT '',
  updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_hooks (
  apply_id INTEGER NOT NULL,
  module TEXT NOT NULL,
  source TEXT NOT NULL,
  PRIMARY KEY (apply_id, module)
);
CREATE TABLE IF NOT EXISTS materializations (
  workspace      TEXT NOT NULL,
  view           TEXT NOT NULL,
  fingerprint    TEXT NOT NULL,
  interval_start TEXT NOT NULL,
  interval_end   TEXT NOT NULL,
  rows           INTEGER NOT NULL,
  files          INTEGER NOT NULL,
  finished_at    TEXT NOT NULL,
  PRIMARY KEY (workspace, view, fingerprint, interval_start)
);
CREATE TABLE IF NOT EXISTS materialization_sources (
  workspace   TEXT NOT NULL,
  view        TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  source      TEXT NOT NULL,
  recorded_at TEXT NOT NULL,
  PRIMARY KEY (workspace, view, fingerprint, source)
);
CREATE TABLE IF NOT EXISTS materialization_files (
  workspace   TEXT NOT NULL,
  view        TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  source      TEXT NOT NULL,
  path        TEXT NOT NULL,
  size        INTEGER NOT NULL,
  mtime_ns    INTEGER NOT NULL,
  etag        TEXT NOT NULL,
  has_range   INTEGER NOT NULL,
  min_ts      TEXT,
  max_ts      TEXT,
  PRIMARY KEY (workspace, view, fingerprint, source, path)
);
CREATE INDEX IF NOT EXISTS materialization_files_src ON materialization_files (source, path);
"""


def now_iso() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def registry_path(project_root: Path) -> Path:
    return project_root / ".featql" / REGISTRY_FILE


def _create_tables(db: sqlite3.Connection) -> None:
    for stmt in _SCHEMA.split(";"):
        if stmt.strip():
            db.execute(stmt)
    db.execute("INSERT OR REPLACE INTO registry_meta VALUES ('schema_version', ?)",
               (str(SCHEMA_VERSION),))


def connect(path: Path, timeout: float = DEFAULT_TIMEOUT) -> sqlite3.Connection:
    """A connection to the registry file at `path` (autocommit; see the module docstring).

    A missing file is created whole (tables written into a temporary file, then linked into
    place: a concurrent opener sees no file or a complete one). An existing file that is
    empty or is not an SQLite database raises RegistryError naming it."""
    if not path.exists():
        _create_file(path)
    elif path.stat().st_size == 0:
        raise RegistryError(
            f"{path} is empty (0 bytes), not a featql registry; restore it from a backup, or "
            "delete it to start a new registry (applies and materialization state are lost)")
    try:
        db = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        raise RegistryError(f"{path} is not a readable featql registry: {e}; restore it from a "
                            "backup, or delete it to start a new registry") from e
    return db


def _create_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        db = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            db.execute("BEGIN")
            _create_tables(db)
            db.execute("COMMIT")
        finally:
            db.close()
        with contextlib.suppress(FileExistsError):  # another process created it meanwhile
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class SqliteRegistry:
    """`Registry` over one SQLite file (see module docstring for the locking protocol)."""

    def __init__(self, path: Path, timeout: float | None = None):
        self.path = path
        if timeout is None:
            timeout = float(os.environ.get("FEATQL_REGISTRY_TIMEOUT", DEFAULT_TIMEOUT))
        self.timeout = timeout
        self._db = connect(path, timeout)
        self._db.row_factory = sqlite3.Row
        try:
            version = self._version()
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise RegistryError(f"{path} is not a readable featql registry: {e}") from e
        if version is None or int(version["value"]) < SCHEMA_VERSION:
            # an older registry (or a file holding only the materialization state): add
            # the missing tables, once, under the write lock
            with self._write():
                _create_tables(self._db)
            version = self._version()
        if version is None or int(version["value"]) > SCHEMA_VERSION:
            raise RegistryError(f"{path} was written by a newer featql (registry schema "
                                f"{version['value'] if version else '?'}); upgrade featql")

    # -- plumbing -------------------------------------------------------------------------
    def _version(self) -> sqlite3.Row | None:
        try:
            return self._one("SELECT value FROM registry_meta WHERE key = 'schema_version'")
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return None
            raise

    @contextmanager
    def _write(self) -> Iterator[None]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise RegistryError(
                    f"the registry {self.path} is locked by another featql apply (waited "
                    f"{self.timeout:g}s); try again when it has finished") from e
            raise
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.execute(sql, params).fetchone()
        return row

    def close(self) -> None:
        self._db.close()

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for this package's own modules (materializations.py)."""
        return self._db

    def write(self) -> AbstractContextManager[None]:
        """A write transaction under the database's write lock (BEGIN IMMEDIATE)."""
        return self._write()

    # -- workspaces -----------------------------------------------------------------------
    def workspaces(self) -> list[WorkspaceInfo]:
        rows = self._db.execute(
            "SELECT w.name, w.created_at, w.head, "
            "(SELECT COUNT(*) FROM registry_applies a WHERE a.workspace = w.name) AS n "
            "FROM registry_workspaces w ORDER BY w.name").fetchall()
        return [WorkspaceInfo(r["name"], r["created_at"], r["head"], r["n"]) for r in rows]

    def has_workspace(self, name: str) -> bool:
        return self._one("SELECT 1 FROM registry_workspaces WHERE name = ?", (name,)) is not None

    def create_workspace(self, name: str) -> None:
        with self._write():
            if self.has_workspace(name):
                raise RegistryError(f"workspace '{name}' already exists")
            self._db.execute("INSERT INTO registry_workspaces (name, created_at) VALUES (?, ?)",
                             (name, now_iso()))

    def ensure_workspace(self, name: str) -> None:
        with self._write():
            self._db.execute("INSERT OR IGNORE INTO registry_workspaces (name, created_at) "
                             "VALUES (?, ?)", (name, now_iso()))

    def delete_workspace(self, name: str) -> None:
        with self._write():
            if not self.has_workspace(name):
                raise RegistryError(f"workspace '{name}' does not exist")
            self._db.execute("DELETE FROM registry_hooks WHERE apply_id IN "
                             "(SELECT id FROM registry_applies WHERE workspace = ?)", (name,))
            for table in ("registry_backfills", "registry_applies"):
                self._db.execute(f"DELETE FROM {table} WHERE workspace = ?", (name,))
            self._db.execute("DELETE FROM registry_workspaces WHERE name = ?", (name,))

    # -- applies --------------------------------------------------------------------------
    def applied(self, workspace: str) -> AppliedState | None:
        row = self._one("SELECT a.* FROM registry_workspaces w JOIN registry_applies a "
                        "ON a.id = w.head WHERE w.name = ?", (workspace,))
        if row is None:
            return None
        return AppliedState(row["id"], _manifest(row["manifest"], row["id"]), _record(row))

    def record_apply(self, new: NewApply) -> int:
        with self._write():
            ws = self._one("SELECT head FROM registry_workspaces WHERE name = ?",
                           (new.workspace,))
            if ws is None:
                raise RegistryError(f"workspace '{new.workspace}' was deleted")
            if ws["head"] != new.base_apply:
                other = self._one("SELECT * FROM registry_applies WHERE id = ?", (ws["head"],))
                who = (f" (apply #{other['id']} by {other['user']} at {other['applied_at']})"
                       if other else "")
                raise StalePlanError(
                    f"workspace '{new.workspace}' changed while this plan was computed{who}")
            cur = self._db.execute(
                "INSERT INTO registry_applies (workspace, parent, applied_at, user, git_commit, "
                "summary, changes, manifest) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (new.workspace, new.base_apply, now_iso(), new.user, new.git_commit,
                 new.summary, new.changes_json, new.manifest_json))
            apply_id = int(cur.lastrowid or 0)
            self._db.execute("UPDATE registry_workspaces SET head = ? WHERE name = ?",
                             (apply_id, new.workspace))
            for view, fingerprint in new.backfills:
                self._db.execute(
                    "INSERT INTO registry_backfills (apply_id, workspace, view, fingerprint, "
                    "status, updated_at) VALUES (?, ?, ?, ?, 'pending', ?)",
                    (apply_id, new.workspace, view, fingerprint, now_iso()))
            self._db.executemany("INSERT INTO registry_hooks VALUES (?, ?, ?)",
                                 [(apply_id, module, text) for module, text in new.hooks])
        return apply_id

    def hooks_of(self, apply_id: int) -> dict[str, str]:
        rows = self._db.execute("SELECT module, source FROM registry_hooks WHERE apply_id = ? "
                                "ORDER BY module", (apply_id,)).fetchall()
        return {r["module"]: r["source"] for r in rows}

    def history(self, workspace: str) -> list[ApplyRecord]:
        rows = self._db.execute("SELECT * FROM registry_applies WHERE workspace = ? ORDER BY id",
                                (workspace,)).fetchall()
        return [_record(r) for r in rows]

    def manifest_of(self, apply_id: int) -> Manifest:
        row = self._one("SELECT id, manifest FROM registry_applies WHERE id = ?", (apply_id,))
        if row is None:
            raise RegistryError(f"no apply #{apply_id}")
        return _manifest(row["manifest"], apply_id)

    # -- backfills ------------------------------------------------------------------------
    def backfills(self, workspace: str) -> list[BackfillRecord]:
        rows = self._db.execute("SELECT * FROM registry_backfills WHERE workspace = ? "
                                "ORDER BY id", (workspace,)).fetchall()
        return [BackfillRecord(r["id"], r["apply_id"], r["workspace"], r["view"],
                               r["fingerprint"], r["status"], r["message"], r["updated_at"])
                for r in rows]

    def set_backfill(self, backfill_id: int, status: str, message: str = "") -> None:
        with self._write():
            self._db.execute("UPDATE registry_backfills SET status = ?, message = ?, "
                             "updated_at = ? WHERE id = ?",
                             (status, message, now_iso(), backfill_id))

    def materialized(self, workspace: str, view: str, fingerprint: str) -> list[Interval]:
        rows = self._db.execute(
            "SELECT interval_start, interval_end FROM materializations "
            "WHERE workspace = ? AND view = ? AND fingerprint = ?",
            (workspace, view, fingerprint)).fetchall()
        out: list[Interval] = []
        for r in rows:
            start, end = _when(r[0]), _when(r[1])
            if start is not None and end is not None:
                out.append(Interval(start, end))
        return out


def _record(row: sqlite3.Row) -> ApplyRecord:
    return ApplyRecord(row["id"], row["workspace"], row["applied_at"], row["user"],
                       row["git_commit"], row["summary"], row["changes"])


def _manifest(text: str, apply_id: int) -> Manifest:
    import json

    try:
        return from_data(json.loads(text))
    except (ManifestError, ValueError, KeyError, TypeError) as e:
        raise RegistryError(f"apply #{apply_id} holds a manifest this featql cannot read: "
                            f"{e}") from e


_EPOCH = datetime(1970, 1, 1)


def _when(value: object) -> datetime | None:
    """A timestamp as the runtime may store it: ISO text, or epoch s / ms / us numbers."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    if isinstance(value, int | float):
        v = float(value)
        scale = 1e6 if abs(v) > 1e14 else 1e3 if abs(v) > 1e11 else 1.0
        return _EPOCH + timedelta(seconds=v / scale)
    return None
