"""Embedded SQLite online store (the default): one WAL-mode file, one table per workspace.

Layout mirrors the DynamoDB one: a row per (item, view) cell with its version; a request reads
all the cells it needs with one `SELECT ... WHERE item IN (...)`. Last-writer-wins is a single
atomic upsert: `ON CONFLICT DO UPDATE ... WHERE excluded.version > version`.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

from featql.online.base import STATE_PREFIX, Cell, OnlineStoreError, WriteReport

_BATCH = 500


def table_name(workspace: str) -> str:
    """The workspace's table: `online_<workspace>` when the name is already a plain identifier
    (`[a-z][a-z0-9_]*`: the tables of existing stores keep their names), else
    `online__<sanitised>_<hash>` with a hash of the exact name, so that `team-a` and `team_a`
    never share a table. The two forms cannot meet (only the second has `_` after `online_`)."""
    if re.fullmatch(r"[a-z][a-z0-9_]*", workspace):
        return "online_" + workspace
    import hashlib

    digest = hashlib.sha256(workspace.encode()).hexdigest()[:10]
    return f"online__{re.sub(r'[^a-z0-9_]', '_', workspace.lower())}_{digest}"


class SqliteStore:
    kind = "sqlite"

    def __init__(self, path: Path, workspace: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.table = table_name(workspace)
        self._local = threading.local()
        conn = self._conn()
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (item TEXT NOT NULL, view TEXT NOT NULL, "
            "version TEXT NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (item, view)) "
            "WITHOUT ROWID")
        conn.commit()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as e:
                raise OnlineStoreError(f"cannot open SQLite online store {self.path}: {e}") from e
            self._local.conn = conn
        return conn

    def write(self, cells: Iterable[Cell]) -> WriteReport:
        conn = self._conn()
        sql = (f"INSERT INTO {self.table} (item, view, version, payload) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (item, view) DO UPDATE SET version = excluded.version, "
               f"payload = excluded.payload WHERE excluded.version > {self.table}.version")
        outcomes: list[tuple[str, bool]] = []
        batch: list[Cell] = []

        def flush() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for c in batch:
                    before = conn.total_changes
                    conn.execute(sql, (c.item, c.view, c.version, c.payload))
                    outcomes.append((c.view, conn.total_changes > before))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        for c in cells:
            batch.append(c)
            if len(batch) >= _BATCH:
                flush()
                batch.clear()
        if batch:
            flush()
        return WriteReport.of(outcomes)

    def read(self, items: Sequence[str], views: Sequence[str],
             full: Collection[str] = ()) -> dict[str, dict[str, bytes]]:
        """Payloads as written (always complete: `full` changes nothing here)."""
        out: dict[str, dict[str, bytes]] = {}
        if not items or not views:
            return out
        uniq = list(dict.fromkeys(items))
        wanted = set(views)
        conn = self._conn()
        for i in range(0, len(uniq), 900):  # SQLite's default host-parameter limit is 999+
            chunk = uniq[i:i + 900]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT item, view, payload FROM {self.table} WHERE item IN ({marks})", chunk)
            for item, view, payload in rows:
                if view in wanted:
                    out.setdefault(item, {})[view] = payload
        return out

    def get_state(self, name: str) -> bytes | None:
        row = self._conn().execute(
            f"SELECT payload FROM {self.table} WHERE item = ? AND view = ''",
            (STATE_PREFIX + name,)).fetchone()
        return None if row is None else bytes(row[0])

    def put_state(self, name: str, payload: bytes) -> None:
        self._conn().execute(
            f"INSERT INTO {self.table} (item, view, version, payload) VALUES (?, '', '', ?) "
            "ON CONFLICT (item, view) DO UPDATE SET payload = excluded.payload",
            (STATE_PREFIX + name, payload))

    def drop(self) -> None:
        self._conn().execute(f"DROP TABLE IF EXISTS {self.table}")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
