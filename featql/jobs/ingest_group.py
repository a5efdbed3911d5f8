"""Group commit of concurrent pushes: many calls, one pass of the write path.

A push's cost is mostly fixed (a DuckDB pass per view, a ledger transaction, a Parquet file, an
online write) and pushes are serialized by the project's ingest lock, so a server taking pushes
from several clients spends its time on those fixed costs, one call after the other, while the
other calls wait on the lock. Here every call is queued per project; the first thread that
finds no leader becomes the leader, takes the ingest lock and then everything queued by then
(calls keep arriving while it waits for the lock, from this process's threads), and applies
them together: per (store, workspace, source) one group, one DuckDB pass over all their
events, one ledger transaction (each call keeps its own batch row, so its `batch_id` is known
as applied), one log file per event day, one online write. Each call is answered once that
write is done, so read-after-write holds for every call of a group, and a crash anywhere is
recovered exactly as a single call's (`ingest_log`: the group is one batch).

A group applied together gives the same online cells and log contents as its calls applied one
after the other in queue order: events are deduplicated against the ledger and against the
calls before them in the group, row views keep the newest row by the semantics core's order
whichever call carried it, and aggregate cells receive every event once (the merge does not
depend on how the events were split into calls).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featql.jobs.ingest_log import Ledger, locked

if TYPE_CHECKING:
    import pyarrow as pa

    from featql.core.ir import Manifest, Source
    from featql.online.base import OnlineStore

MAX_GROUP_ROWS = 20_000  # events applied in one pass at most (a call bigger than this: alone)


@dataclass
class Done:
    """What applying a call did (`replayed`: its batch id was applied before)."""

    replayed: bool = False
    seq: int | None = None
    ingested: int = 0
    logged: int = 0
    views: dict[str, int] = field(default_factory=dict)  # cells written by the call's group
    apply_rows: Any = None  # pa.Table: the call's events new to the workspace
    expired_rows: Any = None  # pa.Table: the call's events past the ledger's retention


@dataclass(eq=False)
class Call:
    root: Path
    manifest: Manifest
    workspace: str
    source: Source
    rows: pa.Table
    batch_id: str | None
    store: OnlineStore
    done: Done | None = None
    error: BaseException | None = None
    expired_rows: Any = None  # set aside by the write path (past the ledger's retention)
    view: str | None = None  # a stream checkpoint's one view (None: every view)

    def group_key(self) -> tuple[int, int, str, str, str | None]:
        return (id(self.store), id(self.manifest), self.workspace, self.source.name, self.view)


class _Queue:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.pending: list[Call] = []
        self.leading = False


_QUEUES: dict[str, _Queue] = {}
_QUEUES_LOCK = threading.Lock()


def _queue(root: Path) -> _Queue:
    key = os.path.abspath(root)
    with _QUEUES_LOCK:
        q = _QUEUES.get(key)
        if q is None:
            q = _QUEUES[key] = _Queue()
        return q


def submit(call: Call, apply: Callable[[Ledger, list[Call]], None]) -> None:
    """Queue `call` and return once it is applied (by this thread or another's group); its
    error, if it got one, is raised here."""
    q = _queue(call.root)
    leader = False
    with q.cond:
        q.pending.append(call)
        while call.done is None and call.error is None:
            if not q.leading:
                q.leading = leader = True
                break
            q.cond.wait(1.0)
    if leader:
        try:
            while call.done is None and call.error is None:  # until its own call is in
                _lead(q, call.root, apply)
        finally:
            with q.cond:
                q.leading = False
                q.cond.notify_all()
    if call.error is not None:
        raise call.error


def _lead(q: _Queue, root: Path, apply: Callable[[Ledger, list[Call]], None]) -> None:
    """One round of the leader: the lock, then every call queued by then, applied by group."""
    with locked(root) as ledger:
        with q.cond:
            taken: list[Call] = []
            size = 0
            for c in q.pending:
                if taken and size + c.rows.num_rows > MAX_GROUP_ROWS:
                    break
                taken.append(c)
                size += c.rows.num_rows
            del q.pending[:len(taken)]
        groups: dict[tuple[int, int, str, str, str | None], list[Call]] = {}
        for c in taken:
            groups.setdefault(c.group_key(), []).append(c)
        try:
            for calls in groups.values():
                try:
                    apply(ledger, calls)
                except Exception as e:  # each call of the group gets it
                    for c in calls:
                        if c.done is None and c.error is None:
                            c.error = e
        except BaseException as e:  # interrupted: every call not answered gets it
            for c in taken:
                if c.done is None and c.error is None:
                    c.error = e
            raise
        finally:
            with q.cond:
                q.cond.notify_all()
