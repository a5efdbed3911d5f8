"""The ledger's batch rows are bounded (issue 13): a done batch row is deleted once it was
created `BATCH_RETENTION_S` (wall-clock) ago, so the table holds about a week of pushes however
long a server runs; a batch id retried within that is still `replayed`, one retried after it
counts its events once all the same (duplicates by their identities); seq numbers (and the log
files named by them) are never reused; and which sources were pushed or streamed into a
workspace (`pushed_sources`, what the online load asks) outlives the rows it came from."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from featql.core.ir import Manifest
from featql.jobs import ingest_log
from featql.jobs.ingest import ingest_events
from featql.jobs.ingest_log import BATCH_RETENTION_S, LEDGER, Ledger, locked, pushed_sources
from featql.jobs.online_load import _pushed_sources

H = 3600
T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
EVENTS = dt.datetime(2024, 3, 2)


class Clock:
    """The ledger's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    c = Clock()
    monkeypatch.setattr(ingest_log, "_now", c)
    yield c


def _records(first: int, n: int, hour: int = 0) -> list[dict[str, Any]]:
    return [{"event_id": first + i, "user_id": 1 + i % 3, "amount": float(i), "kind": "a",
             "ts": (EVENTS + dt.timedelta(hours=hour, seconds=i)).isoformat()}
            for i in range(n)]


def _rows(root: Path) -> int:
    with locked(root) as ledger:
        return ledger.batch_rows()


def _log_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "data/events/ingest").rglob("ingest-*.parquet"))


def test_many_pushes_keep_the_batch_rows_bounded_and_seq_increasing(
        stream_project: Callable[..., tuple[Path, Manifest]], clock: Clock) -> None:
    root, manifest = stream_project()
    step = 6 * H  # 60 pushes over 15 days: more than twice the retention
    per_retention = BATCH_RETENTION_S // step
    seqs: list[int] = []
    rows: list[int] = []
    for i in range(60):
        rep = ingest_events(root, manifest, "dev", "events", _records(1000 * i, 3, hour=i),
                            batch_id=f"b{i}")
        assert (rep.ingested, rep.replayed) == (3, False), i
        assert rep.seq is not None
        seqs.append(rep.seq)
        rows.append(_rows(root))
        clock.advance(step)
    # a week of rows at most (plus the one just due), never one per push
    assert max(rows) <= per_retention + 2, rows
    assert rows[-1] >= per_retention - 1, rows  # and the week is kept: replayed stays exact
    assert rows[:per_retention] == list(range(1, per_retention + 1))
    # every push has its own seq, increasing, so its own log file: none rewritten or reused
    assert seqs == sorted(set(seqs)) and len(seqs) == 60
    files = _log_files(root)
    assert len(files) == len(set(files)) == 60
    assert {f"ingest-{s:012d}.parquet" for s in seqs} == set(files)

    # nothing pushed for a month: every row is due but the newest, which keeps seq going
    clock.advance(30 * 86_400)
    rep = ingest_events(root, manifest, "dev", "events", _records(900_000, 2, hour=80))
    assert rep.seq == seqs[-1] + 1 and _rows(root) == 1
    with locked(root) as ledger:
        assert ledger.last_seq() == rep.seq
    clock.advance(30 * 86_400)
    rep2 = ingest_events(root, manifest, "dev", "events", _records(900_100, 2, hour=81))
    assert rep2.seq == rep.seq + 1 and _rows(root) == 1  # only the newest: seq goes on
    assert len(set(_log_files(root))) == 62


def test_a_batch_id_retried_within_the_retention_is_replayed_and_after_it_counts_once(
        stream_project: Callable[..., tuple[Path, Manifest]], clock: Clock) -> None:
    root, manifest = stream_project()
    first = _records(0, 5)
    rep = ingest_events(root, manifest, "dev", "events", first, batch_id="retry-me")
    assert rep.ingested == 5
    for i in range(20):  # other pushes, 8 h apart: about a week
        clock.advance(8 * H)
        ingest_events(root, manifest, "dev", "events", _records(100 * (i + 1), 2, hour=1 + i),
                      batch_id=f"other-{i}")
    # 160 h after it: within the 168 h retention, still known as applied
    again = ingest_events(root, manifest, "dev", "events", first, batch_id="retry-me")
    assert (again.replayed, again.ingested, again.duplicates) == (True, 0, 5)
    clock.advance(9 * H)  # 169 h: the next commit deletes its row
    ingest_events(root, manifest, "dev", "events", _records(50_000, 1, hour=30))
    with locked(root) as ledger:
        assert not ledger.replayed("events", "dev", "retry-me")
        assert ledger.replayed("events", "dev", "other-19")
    # retried now: not replayed any more, but its events are remembered by their identities
    late = ingest_events(root, manifest, "dev", "events", first, batch_id="retry-me")
    assert (late.replayed, late.ingested, late.logged, late.duplicates, late.expired) == \
        (False, 0, 0, 5, 0)
    with locked(root) as ledger:
        assert ledger.replayed("events", "dev", "retry-me")  # known again from this retry on
        assert ledger.counts("events") == 5 + 40 + 1


def test_group_members_rows_are_deleted_and_open_batches_never(tmp_path: Path,
                                                              clock: Clock) -> None:
    ledger = Ledger(tmp_path)
    try:
        # a batch left open by a crash (state new), with group members done at once
        open_seq = ledger.record("s", "dev", "open", 3, ["k1"], None, [], None,
                                 members=[("m1", 1), ("m2", 2)])
        for i in range(400):  # 400 h of empty pushes: 17 days
            clock.advance(H)
            ledger.record("s", "dev", f"b{i}", 1, [], None, [], None,
                          members=[(f"b{i}-m", 1)])
        n = ledger.batch_rows()
        assert n <= 2 * (BATCH_RETENTION_S // H + 1) + 1, n
        assert [b.seq for b in ledger.unfinished()] == [open_seq]  # never deleted
        assert ledger.replayed("s", "dev", "open")
        assert not ledger.replayed("s", "dev", "m1") and not ledger.replayed("s", "dev", "b0")
        assert ledger.replayed("s", "dev", "b399-m")
        assert ledger.replayed("s", "dev", f"b{399 - BATCH_RETENTION_S // H + 1}")
        assert ledger.last_seq() == 3 + 2 * 400
    finally:
        ledger.close()


def test_a_backlog_of_due_rows_is_deleted_a_bounded_number_per_commit(tmp_path: Path,
                                                                       clock: Clock) -> None:
    ledger = Ledger(tmp_path)
    try:
        ledger.record("s", "dev", None, 1, [], None, [], None,
                      members=[(f"m{i}", 1) for i in range(1000)])
        clock.advance(BATCH_RETENTION_S + 1)
        ledger.record("s", "dev", None, 1, [], None, [], None)
        assert ledger.batch_rows() == 1002 - ingest_log.PRUNE_ROWS
        for _ in range(5):
            ledger.record("s", "dev", None, 1, [], None, [], None)
        # the backlog drained in 4 commits (745 + 256 * 3 > 1000); the new rows kept
        assert ledger.batch_rows() == 6
    finally:
        ledger.close()


def test_pushed_sources_are_the_same_after_their_batch_rows_are_deleted(
        stream_project: Callable[..., tuple[Path, Manifest]], clock: Clock) -> None:
    root, manifest = stream_project()
    assert _pushed_sources(root, "dev") == set()
    # pushed into dev; streamed (one view's checkpoint) into the workspace stage
    ingest_events(root, manifest, "dev", "events", _records(0, 3), batch_id="p1")
    ingest_events(root, manifest, "stage", "events", _records(10, 3), batch_id="s1",
                  view="user_aggs")
    want = {"dev": {"events"}, "stage": {"events"}, "prod": set()}
    assert {ws: _pushed_sources(root, ws) for ws in want} == want
    clock.advance(BATCH_RETENTION_S + H)
    ingest_events(root, manifest, "dev", "events", _records(20, 1))
    with locked(root) as ledger:
        assert ledger.batch_rows() == 1  # the two batches above are gone
        assert not ledger.replayed("events", "stage", "s1")
        assert ledger.pushed("stage") == {"events"}
    assert {ws: _pushed_sources(root, ws) for ws in want} == want


def test_a_ledger_made_before_pushed_is_migrated_once(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    con = ledger.con
    con.execute("DROP TRIGGER pushed_on_batch")
    con.execute("DROP TABLE pushed")
    for ws, src in (("dev", "a"), ("dev", "b"), ("dev", "a"), ("prod", "c")):
        con.execute("INSERT INTO batches (source, workspace, batch_id, state, received, created)"
                    " VALUES (?, ?, NULL, 'done', 1, '2025-01-01T00:00:00.000000+00:00')",
                    (src, ws))
    ledger.close()
    # read-only (a load not holding the lock): the old ledger is answered from its batches
    assert pushed_sources(tmp_path, "dev") == {"a", "b"}
    assert not _has_table(tmp_path, "pushed")
    ledger = Ledger(tmp_path)  # opened by this version: migrated
    try:
        assert _has_table(tmp_path, "pushed")
        ledger.con.execute("DELETE FROM batches")
        assert ledger.pushed("dev") == {"a", "b"} and ledger.pushed("prod") == {"c"}
        ledger.record("d", "dev", None, 1, [], None, [], None)  # the trigger fills it
        assert pushed_sources(tmp_path, "dev") == {"a", "b", "d"}
    finally:
        ledger.close()
    Ledger(tmp_path).close()  # opened again: nothing migrated twice, nothing lost
    assert pushed_sources(tmp_path, "dev") == {"a", "b", "d"}


def _has_table(root: Path, name: str) -> bool:
    con = sqlite3.connect(root / LEDGER)
    try:
        return con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)
                           ).fetchone() is not None
    finally:
        con.close()
