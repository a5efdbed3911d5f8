"""The ingest ledger and the source's offline log: what makes a push exactly-once.

The ledger is one SQLite file per project (`.featql/ingest.db`, WAL). Every push is a *batch*
with a sequence number; its events are identified by the source's `key` (or, without one, by a
digest of the whole record). One transaction records, at once, the identities of the new
events (per source for the log, per workspace for the online store) and the batch itself with
its events (Arrow IPC): that commit is the point where the push happened. Then:

The online cells the batch produces are computed first, under the lock and before anything
is recorded (a view whose SQL fails on the records refuses the push, nothing kept), and are
stored in that same transaction (a redo record): the batch is `applying`. Then:

1. the events new to the source are written to its offline log as Parquet
   (`featql.jobs.ingest_files`), one file per batch and event day,
   `<batch path>/ingest/<YYYY-MM-DD>/ingest-<seq>.parquet` (written under a hidden name,
   then renamed: readers never see half a file; the name depends only on the batch, so
   redoing the step rewrites the same file);
2. the cells are written to the online store;
3. `done`: the redo record is dropped.

(A batch recorded `new`, by a call from another workspace's recovery or an older version,
has its log written and its cells computed by the next call of its workspace.)

A crashed push (kill -9 anywhere) is finished by the next one, which redoes the steps of every
unfinished batch (`recover`): rewriting the same files and the same cells changes nothing, and
a batch is never applied twice because its cells are computed once, before it is recorded.
A client retrying a push whose answer it did not get sends events the ledger already holds:
they are counted as duplicates, not ingested again. All of it runs under one file lock per
project (`.featql/ingest.lock`): pushes are serialized across threads and processes. Calls
that wait on the lock together in one process are one batch (`ingest_group`: group commit):
one batch row holds their events and cells, and each further call has a batch row of its own,
`done` from the same commit (its `batch_id` is applied), so recovery is a single batch's.

**Per view, for streams.** A push applies its events to every view over the source at once
(`applied`: per workspace). `featql stream` keeps a checkpoint per workspace and view, and each
checkpoint's micro-batches apply their events to that one view: `view_applied` holds the
identities applied per (workspace, view). An event counts once in a view when its identity is
in either table for it, so a replayed or re-read batch of one view changes nothing, and never
touches its siblings; a push of an event some views have streamed applies it to the others
only.

**Retention: the ledger is bounded.** Each identity is kept with its event time, and a
source's *horizon* is the newest event time the ledger took for it minus the source's
retention (`retention_us`: `RETENTION_S`, 7 days, or the source's `lateness` when that is
longer). Every commit forgets the identities whose event time is before the horizon, so the
ledger holds about a retention's worth of keys per source however long a stream runs. An event
older than the horizon cannot be told from a re-delivery any more, so it is never applied:
`expired` sets it aside (the push report and the stream count it, the stream writes it as a
dead letter with the reason), never dropped without a word and never counted twice. The
horizon only moves forward and an identity is forgotten only behind it, so every event at or
after the horizon is still deduplicated exactly (an event keeps its event time when it is
re-delivered; identities recorded before retention existed have none and are kept).

**Batch rows are bounded too.** A `done` batch row is kept only so that a retried `batch_id`
is recognised (`replayed`). Every commit deletes, through an index on `created`, at most
`PRUNE_ROWS` of those made more than `BATCH_RETENTION_S` (7 days, wall-clock) before it: a
retry comes from a client that got no answer, within its timeouts, whatever the event times,
so the period is wall-clock time, not the source's retention. `replayed` is exact within it.
Retried after it, the batch is not known any more, but its events still count once: each is
still remembered by its identity (event time at or after the horizon: a duplicate) or is
before the horizon (expired, set aside); only the answer differs (`replayed` false). A batch
not `done` is never deleted (recovery needs it), nor the newest row: SQLite numbers a new row
one past the largest seq in the table, so seq numbers (`ingest-<seq>.parquet`, `last_seq`, a
stream view's `since`) keep increasing, never reused. Which sources were pushed or streamed
into each workspace has a table of its own (`pushed`, filled by a trigger on `batches`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from featql.core.errors import UserError
from featql.core.ir import Source

if TYPE_CHECKING:
    import pyarrow as pa

LEDGER = ".featql/ingest.db"
LOCK = ".featql/ingest.lock"
RETENTION_S = 7 * 86_400  # event time the ledger remembers identities for, at least
BATCH_RETENTION_S = 7 * 86_400  # wall-clock time a done batch row (its batch_id) is kept
PRUNE_ROWS = 256  # done batch rows deleted per commit at most (more when a commit adds more)
_US = 1_000_000
_THREAD_LOCK = threading.Lock()
_LEDGERS: dict[tuple[str, int], Ledger] = {}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logged (source TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (source, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS applied (workspace TEXT NOT NULL, source TEXT NOT NULL,
    key TEXT NOT NULL, PRIMARY KEY (workspace, source, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY, source TEXT NOT NULL,
    workspace TEXT NOT NULL, batch_id TEXT, state TEXT NOT NULL, log_rows BLOB,
    apply_rows BLOB, received INTEGER NOT NULL, created TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS batch_ids ON batches (source, workspace, batch_id)
    WHERE batch_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS batches_open ON batches (seq) WHERE state <> 'done';
CREATE INDEX IF NOT EXISTS batches_done ON batches (created) WHERE state = 'done';
CREATE TABLE IF NOT EXISTS view_applied (workspace TEXT NOT NULL, source TEXT NOT NULL,
    key TEXT NOT NULL, view TEXT NOT NULL, ts INTEGER,
    PRIMARY KEY (workspace, source, key, view)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS view_applied_ts ON view_applied (source, ts);
CREATE TABLE IF NOT EXISTS horizon (source TEXT PRIMARY KEY, newest INTEGER NOT NULL,
    retention INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS view_loaded (workspace TEXT NOT NULL, source TEXT NOT NULL,
    view TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (workspace, source, view)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS redo (seq INTEGER NOT NULL, item TEXT NOT NULL, view TEXT NOT NULL,
    version TEXT NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (seq, item, view)) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Batch:
    seq: int
    source: str
    workspace: str
    batch_id: str | None
    state: str  # new | logged | applying | done
    log_rows: pa.Table | None
    apply_rows: pa.Table | None


def _ipc(table: pa.Table | None) -> bytes | None:
    if table is None or table.num_rows == 0:
        return None
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _table(blob: bytes | None) -> pa.Table | None:
    if blob is None:
        return None
    import pyarrow as pa

    return pa.ipc.open_stream(pa.py_buffer(blob)).read_all()


class Ledger:
    """The ledger of one project (see the module doc); use it inside `locked(root)`."""

    def __init__(self, root: Path):
        path = root / LEDGER
        path.parent.mkdir(parents=True, exist_ok=True)
        # used under the ingest lock only, from whichever thread holds it (a server's workers,
        # the py4j threads Spark calls a stream's foreachBatch on)
        self.con = sqlite3.connect(path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        self.con.executescript(_SCHEMA)
        _add_times(self.con)
        _add_pushed(self.con)

    def close(self) -> None:
        self.con.close()

    def known(self, table: str, source: str, keys: Sequence[str],
              workspace: str | None = None) -> set[str]:
        """The keys among `keys` the ledger already holds (per source, or per workspace)."""
        found: set[str] = set()
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 900):
            chunk = uniq[i:i + 900]
            marks = ",".join("?" * len(chunk))
            if workspace is None:
                rows = self.con.execute(f"SELECT key FROM {table} WHERE source = ? AND key IN "
                                        f"({marks})", [source, *chunk])
            else:
                rows = self.con.execute(f"SELECT key FROM {table} WHERE workspace = ? AND "
                                        f"source = ? AND key IN ({marks})",
                                        [workspace, source, *chunk])
            found.update(r[0] for r in rows)
        return found

    def horizon(self, source: str) -> int | None:
        """Event times (µs) before this are past the source's retention: identities of such
        events may be forgotten, so they are `expired`, never applied (see the module doc)."""
        row = self.con.execute("SELECT newest - retention FROM horizon WHERE source = ?",
                               (source,)).fetchone()
        return None if row is None else int(row[0])

    def remembered(self, source: str, workspace: str | None = None) -> int:
        """How many identities the ledger holds for `source` (its offline log's, or those
        applied to `workspace`'s online store)."""
        args: tuple[str, ...]
        if workspace is None:
            q, args = "SELECT COUNT(*) FROM logged WHERE source = ?", (source,)
        else:
            q, args = ("SELECT COUNT(*) FROM applied WHERE workspace = ? AND source = ?",
                       (workspace, source))
        return int(self.con.execute(q, args).fetchone()[0])

    def known_views(self, source: str, keys: Sequence[str], workspace: str
                    ) -> dict[str, set[str]]:
        """The views each of `keys` was applied to one view at a time (`view_applied`)."""
        found: dict[str, set[str]] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 900):
            chunk = uniq[i:i + 900]
            rows = self.con.execute(
                f"SELECT key, view FROM view_applied WHERE workspace = ? AND source = ? AND key "
                f"IN ({','.join('?' * len(chunk))})", [workspace, source, *chunk])
            for key, view in rows:
                found.setdefault(key, set()).add(view)
        return found

    def streamed(self, workspace: str, source: str) -> bool:
        """Whether a stream applied events of `source` to single views of `workspace`."""
        return self.con.execute("SELECT 1 FROM view_applied WHERE workspace = ? AND source = ? "
                                "LIMIT 1", (workspace, source)).fetchone() is not None

    def logged_before(self, source: str, keys: Sequence[str], seq: int) -> set[str]:
        """The keys among `keys` the offline log took in a batch numbered `seq` or less."""
        found: set[str] = set()
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 900):
            chunk = uniq[i:i + 900]
            found.update(r[0] for r in self.con.execute(
                f"SELECT key FROM logged WHERE source = ? AND seq <= ? AND key IN "
                f"({','.join('?' * len(chunk))})", [source, seq, *chunk]))
        return found

    def loaded(self, workspace: str, source: str, view: str) -> None:
        """An online load rebuilt `view`'s cells from the log as it is (under the lock): every
        identity the log holds counts as applied to it from now on (`view_applied`), so the
        view's query reading one from the stream later, or a push of one, skips it; and the
        cells hold the log through `last_seq` (`loaded_through`)."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("INSERT OR IGNORE INTO view_applied (workspace, source, key, view, ts) "
                        "SELECT ?, source, key, ?, ts FROM logged WHERE source = ?",
                        (workspace, view, source))
            con.execute("INSERT OR REPLACE INTO view_loaded (workspace, source, view, seq) "
                        "VALUES (?, ?, ?, ?)", (workspace, source, view, self.last_seq()))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def loaded_through(self, workspace: str, source: str, view: str) -> int | None:
        """The last batch the view's latest online load held (`loaded`); None: never loaded."""
        row = self.con.execute("SELECT seq FROM view_loaded WHERE workspace = ? AND source = ? "
                               "AND view = ?", (workspace, source, view)).fetchone()
        return None if row is None else int(row[0])

    def pushed(self, workspace: str) -> set[str]:
        """The sources events were pushed or streamed into in `workspace` (see `pushed_sources`:
        the same without the lock)."""
        return _pushed(self.con, workspace)

    def batch_rows(self) -> int:
        """How many batch rows the ledger holds (bounded: see the module doc)."""
        return int(self.con.execute("SELECT COUNT(*) FROM batches").fetchone()[0])

    def last_seq(self) -> int:
        return int(self.con.execute("SELECT COALESCE(MAX(seq), 0) FROM batches").fetchone()[0])

    def replayed(self, source: str, workspace: str, batch_id: str) -> bool:
        return self.con.execute("SELECT 1 FROM batches WHERE source = ? AND workspace = ? AND "
                                "batch_id = ?", (source, workspace, batch_id)).fetchone() \
            is not None

    def record(self, source: str, workspace: str, batch_id: str | None, received: int,
               log_keys: Sequence[str], log_rows: pa.Table | None, apply_keys: Sequence[str],
               apply_rows: pa.Table | None,
               cells: Sequence[tuple[str, str, str, bytes]] | None = None,
               members: Sequence[tuple[str | None, int]] = (),
               times: Source | None = None,
               view_keys: Sequence[tuple[str, str, int | None]] = ()) -> int:
        """The commit point of a push: identities, events and (when given) the online cells
        they produce, in one transaction; its seq. With `cells` the batch is `applying`:
        only its log files and the cells' writes are left, both redone as they are.

        `members` (group commit: further calls applied with this one, each `(batch_id,
        received)`): each gets a batch row of its own, `done` at once and holding nothing
        (its events and cells are this batch's), so that its batch id is known as applied
        from this same commit on.

        `times`: the source, whose event time column gives each identity its event time
        (the rows are in the order of the keys); the source's horizon then moves on to the
        newest of them and identities behind it are forgotten (retention, see the module
        doc). Without it identities are kept with no event time (never forgotten).
        `view_keys`: (view, key, event time) of events applied to single views (a stream
        checkpoint's), besides or instead of `apply_keys` (applied to every view)."""
        con = self.con
        log_ts = times_of(log_rows, times, len(log_keys))
        apply_ts = log_ts if apply_rows is log_rows and len(apply_keys) == len(log_keys) \
            else times_of(apply_rows, times, len(apply_keys))
        logged = _ipc(log_rows)
        now = _now()
        created = now.isoformat(timespec="microseconds")
        con.execute("BEGIN IMMEDIATE")
        try:
            state = "done" if not (log_keys or apply_keys or view_keys) else \
                "new" if cells is None else "applying"
            cur = con.execute(
                "INSERT INTO batches (source, workspace, batch_id, state, log_rows, apply_rows, "
                "received, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (source, workspace, batch_id, state, logged, logged if apply_rows is log_rows
                 else _ipc(apply_rows), received, created))
            seq = int(cur.lastrowid or 0)
            con.executemany(
                "INSERT INTO batches (source, workspace, batch_id, state, received, created) "
                "VALUES (?, ?, ?, 'done', ?, ?)",
                [(source, workspace, b, n, created) for b, n in members])
            con.executemany("INSERT INTO logged (source, key, seq, ts) VALUES (?, ?, ?, ?)",
                            [(source, k, seq, t) for k, t in zip(log_keys, log_ts,
                                                                 strict=True)])
            con.executemany("INSERT INTO applied (workspace, source, key, ts) VALUES "
                            "(?, ?, ?, ?)", [(workspace, source, k, t) for k, t in
                                             zip(apply_keys, apply_ts, strict=True)])
            con.executemany("INSERT OR IGNORE INTO view_applied (workspace, source, key, view, "
                            "ts) VALUES (?, ?, ?, ?, ?)",
                            [(workspace, source, k, v, t) for v, k, t in view_keys])
            if times is not None:
                _forget(con, times, [t for t in (*log_ts, *apply_ts) if t is not None]
                        + [t for _, _, t in view_keys if t is not None])
            if cells and state == "applying":
                con.executemany("INSERT INTO redo (seq, item, view, version, payload) VALUES "
                                "(?, ?, ?, ?, ?)", [(seq, *c) for c in cells])
            _prune(con, now, 1 + len(members))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return seq

    def unfinished(self) -> list[Batch]:
        rows = self.con.execute("SELECT seq, source, workspace, batch_id, state, log_rows, "
                                "apply_rows FROM batches WHERE state <> 'done' ORDER BY seq")
        return [Batch(r[0], r[1], r[2], r[3], r[4], _table(r[5]), _table(r[6])) for r in rows]

    def set_state(self, seq: int, state: str) -> None:
        if state == "done":
            self.con.execute("BEGIN IMMEDIATE")
            self.con.execute("DELETE FROM redo WHERE seq = ?", (seq,))
            self.con.execute("UPDATE batches SET state = 'done', log_rows = NULL, "
                             "apply_rows = NULL WHERE seq = ?", (seq,))
            self.con.execute("COMMIT")
        else:
            self.con.execute("UPDATE batches SET state = ? WHERE seq = ?", (state, seq))

    def save_redo(self, seq: int, cells: Sequence[tuple[str, str, str, bytes]]) -> None:
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("DELETE FROM redo WHERE seq = ?", (seq,))
            con.executemany("INSERT INTO redo (seq, item, view, version, payload) VALUES "
                            "(?, ?, ?, ?, ?)", [(seq, *c) for c in cells])
            con.execute("UPDATE batches SET state = 'applying' WHERE seq = ?", (seq,))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def redo_cells(self, seq: int) -> list[tuple[str, str, str, bytes]]:
        return [(r[0], r[1], r[2], bytes(r[3])) for r in self.con.execute(
            "SELECT item, view, version, payload FROM redo WHERE seq = ?", (seq,))]

    def counts(self, source: str) -> int:
        return int(self.con.execute("SELECT COUNT(*) FROM logged WHERE source = ?",
                                    (source,)).fetchone()[0])


class IngestLockBusy(UserError):
    """The ingest lock was not free within a caller's timeout (`locked(root, timeout)`)."""


def retention_us(source: Source) -> int:
    """How far behind the newest event time a source's identities are remembered."""
    lateness = getattr(source, "lateness_seconds", None) or 0
    return max(RETENTION_S, lateness) * _US


def _add_times(con: sqlite3.Connection) -> None:
    """Ledgers made before retention: their identities get an event time column (NULL for
    the old ones: kept) and the index the forgetting uses."""
    for table in ("logged", "applied"):
        cols = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        if "ts" not in cols:
            con.execute(f"ALTER TABLE {table} ADD COLUMN ts INTEGER")
    con.execute("CREATE INDEX IF NOT EXISTS logged_ts ON logged (source, ts)")
    con.execute("CREATE INDEX IF NOT EXISTS applied_ts ON applied (source, ts)")


_PUSHED = (
    "CREATE TABLE pushed (workspace TEXT NOT NULL, source TEXT NOT NULL, "
    "PRIMARY KEY (workspace, source)) WITHOUT ROWID",
    "CREATE TRIGGER pushed_on_batch AFTER INSERT ON batches BEGIN INSERT OR IGNORE INTO pushed "
    "(workspace, source) VALUES (new.workspace, new.source); END",
    "INSERT OR IGNORE INTO pushed (workspace, source) SELECT DISTINCT workspace, source "
    "FROM batches")


def _add_pushed(con: sqlite3.Connection) -> None:
    """The `pushed` table and the trigger filling it (every insert into `batches`, also by an
    older featql sharing the file), made once: a ledger made before them gets its pairs from
    its batch rows, in the same transaction."""
    if _has_pushed(con):
        return
    con.execute("BEGIN IMMEDIATE")
    try:
        if not _has_pushed(con):  # another process may have made it meanwhile
            for statement in _PUSHED:
                con.execute(statement)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _has_pushed(con: sqlite3.Connection) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pushed'"
                       ).fetchone() is not None


def _pushed(con: sqlite3.Connection, workspace: str) -> set[str]:
    if _has_pushed(con):
        rows = con.execute("SELECT source FROM pushed WHERE workspace = ?", (workspace,))
    else:  # a ledger no version with `pushed` has opened yet (read-only: not migrated)
        rows = con.execute("SELECT DISTINCT source FROM batches WHERE workspace = ?",
                           (workspace,))
    return {r[0] for r in rows}


def pushed_sources(root: Path, workspace: str) -> set[str]:
    """The sources events were pushed or streamed into in `workspace`, read without the ingest
    lock (a read-only connection: a load may run while a push holds it); none without a
    ledger, or when it cannot be read."""
    path = root / LEDGER
    if not path.exists():
        return set()
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
        try:
            return _pushed(con, workspace)
        finally:
            con.close()
    except sqlite3.Error:
        return set()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _prune(con: sqlite3.Connection, now: dt.datetime, added: int) -> None:
    """Delete done batch rows created more than `BATCH_RETENTION_S` before `now`, the oldest
    first and at most `PRUNE_ROWS` (twice `added` when more: a backlog drains), never the
    newest row (it keeps seq increasing; see the module doc). An index seek when none is due."""
    cutoff = (now - dt.timedelta(seconds=BATCH_RETENTION_S)).isoformat(timespec="microseconds")
    con.execute("DELETE FROM batches WHERE seq IN (SELECT seq FROM batches WHERE state = 'done' "
                "AND created < ? ORDER BY created LIMIT ?) "
                "AND seq < (SELECT MAX(seq) FROM batches)",
                (cutoff, max(PRUNE_ROWS, 2 * added)))


def times_of(rows: pa.Table | None, source: Source | None, n: int) -> list[int | None]:
    """The event time (µs) of each of the first `n` rows, or None each without a source."""
    if source is None or rows is None or n == 0:
        return [None] * n
    import pyarrow as pa
    import pyarrow.compute as pc

    column = rows.column(source.timestamp).slice(0, n)
    if pa.types.is_timestamp(column.type) and column.type.unit == "us":  # µs already: a view
        return [v for chunk in column.chunks for v in chunk.view(pa.int64()).to_pylist()]
    micros = pc.cast(pc.cast(column, pa.timestamp("us")), pa.int64())
    return micros.to_pylist()


def _forget(con: sqlite3.Connection, source: Source, times: list[int]) -> None:
    """Move the source's horizon on to the newest of `times` and forget the identities behind
    it (in the caller's transaction)."""
    keep = retention_us(source)
    row = con.execute("SELECT newest FROM horizon WHERE source = ?", (source.name,)).fetchone()
    newest = max([*times, *([row[0]] if row else [])], default=None)
    if newest is None:
        return
    con.execute("INSERT INTO horizon (source, newest, retention) VALUES (?, ?, ?) ON CONFLICT "
                "(source) DO UPDATE SET newest = excluded.newest, retention = "
                "excluded.retention", (source.name, newest, keep))
    bound = newest - keep
    con.execute("DELETE FROM logged WHERE source = ? AND ts < ?", (source.name, bound))
    con.execute("DELETE FROM applied WHERE source = ? AND ts < ?", (source.name, bound))
    con.execute("DELETE FROM view_applied WHERE source = ? AND ts < ?", (source.name, bound))


def expired(source: Source, rows: pa.Table, horizon: int | None) -> list[int]:
    """The indexes of the rows whose event time is before `horizon` (`Ledger.horizon`)."""
    if horizon is None or rows.num_rows == 0:
        return []
    return [i for i, t in enumerate(times_of(rows, source, rows.num_rows))
            if t is not None and t < horizon]


@contextmanager
def locked(root: Path, timeout: float | None = None) -> Iterator[Ledger]:
    """The project's ingest lock (threads and processes), with its ledger open; `timeout`
    (seconds): raise `IngestLockBusy` when it is not free by then (None: wait for it)."""
    import time

    path = root / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    if not _THREAD_LOCK.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
        raise IngestLockBusy(f"the ingest lock {path} was not free within {timeout:g} s")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while deadline is not None:  # poll: flock itself cannot time out
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise IngestLockBusy(f"the ingest lock {path} was not free within "
                                             f"{timeout:g} s") from None
                    time.sleep(0.02)
            else:
                fcntl.flock(fd, fcntl.LOCK_EX)
            key = (os.path.abspath(root), os.getpid())  # no resolve(): a stat per part
            ledger = _LEDGERS.get(key)
            if ledger is None:  # one connection per process and project, kept open
                ledger = _LEDGERS[key] = Ledger(root)
            try:
                yield ledger
            except BaseException:
                _LEDGERS.pop(key, None)
                ledger.close()
                raise
        finally:
            os.close(fd)  # closing the descriptor releases the lock
    finally:
        _THREAD_LOCK.release()


def record_keys(source: Source, rows: pa.Table) -> list[str]:
    """Each event's identity: its `key` value, else a digest of the whole record."""
    import hashlib

    import orjson

    key = getattr(source, "key", None)
    if key is not None:
        return [orjson.dumps(v, default=str).decode() for v in rows.column(key).to_pylist()]
    out = []
    for rec in rows.to_pylist():
        blob = orjson.dumps([rec[c.name] for c in source.columns], default=str)
        out.append("#" + hashlib.blake2b(blob, digest_size=16).hexdigest())
    return out


def select(rows: pa.Table, index: Sequence[int]) -> pa.Table:
    import pyarrow as pa

    return rows.take(pa.array(index, pa.int64()))

