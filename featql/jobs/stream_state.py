"""The bookkeeping of `featql stream`'s checkpoints: one per workspace and view.

`.featql/stream/<workspace>/<source>/<view>/` holds, for each stream view:

- `checkpoint/`: Spark's checkpoint of the view's query (offsets or files read, batches
  committed). Restarting resumes from it; `featql plan` says when a change would reset it
  (`featql.registry.streams.checkpoint_path`, the same layout);
- `identity`: a random id made with the checkpoint, part of every batch id, so a reset
  checkpoint (batch numbers from 0 again) never passes for batches already applied;
- `since`: the ingest ledger's last batch number when `featql stream` first ran with the
  view applied (every run marks it for every stream view over the sources it reads, chosen or
  not: `mark_since`), or, when the view was loaded online before that, the last batch that
  load held (`Ledger.loaded_through`: a sibling's query may have logged events since). A view
  applied after its source had streamed starts where its backfill ended: events the offline
  log took before are the backfill's (the log is what the backfill read), so its query skips
  them; later ones, which a sibling's query may have logged before this view's first run, it
  applies (`handed_over`). A stream left running across an apply that adds a stream view
  marks it when it notices the apply (`stream_follow`), as a restart would; an online load
  after that marks what it holds applied to the view (`Ledger.loaded`);
- `stream`: the stream location the checkpoint reads (a change resets it);
- `state.json`: the watermark and the counters after the last batch (and before it, for the
  replay of that batch), written after each batch is applied;
- `deadletter/batch-<id>-<n>.jsonl`: the messages of batch n that are not events, with the
  reason.

`.featql/stream/<workspace>/<source>/state.json` sums the source's view checkpoints up (the
batches applied over all of them, each view's state), for tools and tests; nothing reads it
back.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featql.core.ir import Source
from featql.registry.streams import FOLDER, show_stream

if TYPE_CHECKING:
    import pyarrow as pa

_SUMMARY_LOCK = threading.Lock()


def source_folder(root: Path, workspace: str, source: str) -> Path:
    return root / FOLDER / workspace / source


def view_folder(root: Path, workspace: str, source: str, view: str) -> Path:
    return source_folder(root, workspace, source) / view


@dataclass
class State:
    """After batch `batch`: `after`; before it: `before` (a replay of `batch` starts there)."""

    path: Path
    batch: int = -1
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> State:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(path)
        return cls(path, int(data["batch"]), data["before"], data["after"])

    def start(self, batch: int) -> dict[str, Any]:
        """The state a batch starts from: a replayed last batch starts where it did."""
        return dict(self.before if batch == self.batch else self.after)

    def commit(self, batch: int, before: dict[str, Any], after: dict[str, Any]) -> None:
        self.batch, self.before, self.after = batch, before, after
        _write(self.path, json.dumps({"batch": batch, "before": before, "after": after},
                                     sort_keys=True))


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def summarize(folder: Path) -> None:
    """Rewrite a source folder's `state.json` from its views' (see the module doc)."""
    with _SUMMARY_LOCK:
        views: dict[str, Any] = {}
        batches = 0
        for state in sorted(folder.glob("*/state.json")):
            try:
                data = json.loads(state.read_text())
            except (OSError, ValueError):
                continue
            views[state.parent.name] = data.get("after", {})
            batches += int(data.get("batch", -1)) + 1
        _write(folder / "state.json", json.dumps({"batch": batches - 1, "views": views},
                                                 sort_keys=True))


def watermark(state: dict[str, Any]) -> dt.datetime | None:
    value = state.get("newest")
    return dt.datetime.fromisoformat(value) if value else None


def from_us(value: int | None) -> dt.datetime | None:
    return None if value is None else dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=value)


def horizon(root: Path, source: str) -> int | None:
    """The ingest ledger's horizon of `source` (`featql.jobs.ingest_log`), in µs."""
    from featql.jobs.ingest_log import locked

    with locked(root) as ledger:
        return ledger.horizon(source)


def identity(folder: Path, source: Source, root: Path | None = None,
             reset: bool = False) -> tuple[str, bool]:
    """The checkpoint's id (made with it; a new checkpoint gets a new one), and whether the
    checkpoint was reset: asked (`reset`), or because the source's stream location changed
    (Spark cannot resume a checkpoint against another location; `featql plan` announces
    it). A checkpoint made where none was before records `since` (the module doc); with no
    `root`, no ledger is read (0)."""
    path = folder / "identity"
    checkpoint = folder / "checkpoint"
    where = folder / "stream"
    location = show_stream(source.stream) + "\n"
    moved = where.is_file() and where.read_text() != location
    if moved or reset:
        shutil.rmtree(checkpoint, ignore_errors=True)
        shutil.rmtree(folder / "deadletter", ignore_errors=True)
    elif path.is_file() and checkpoint.is_dir():
        if not where.is_file():
            where.write_text(location)
        return path.read_text().strip(), False
    folder.mkdir(parents=True, exist_ok=True)
    where.write_text(location)
    mark_since(folder, root)  # a reset checkpoint keeps its `since`
    ident = uuid.uuid4().hex[:12]
    _write(path, ident + "\n")
    (folder / "state.json").unlink(missing_ok=True)  # counters belong to the old checkpoint
    return ident, moved or reset


def mark_since(folder: Path, root: Path | None) -> None:
    """Record the view's `since` unless it has one (see the module doc)."""
    if (folder / "since").is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "since", f"{_last_seq(root, folder)}\n")


def since(folder: Path) -> int:
    try:
        return int((folder / "since").read_text().strip())
    except (OSError, ValueError):
        return 0


def _last_seq(root: Path | None, folder: Path) -> int:
    """The ledger's last batch; for a view loaded online before (`Ledger.loaded`), the last
    one its cells hold: what the log took after it is the view's query's to apply."""
    if root is None:
        return 0
    from featql.jobs.ingest_log import locked

    workspace, source, view = folder.parent.parent.name, folder.parent.name, folder.name
    with locked(root) as ledger:
        through = ledger.loaded_through(workspace, source, view)
        return ledger.last_seq() if through is None else through


def handed_over(root: Path, source: Source, events: pa.Table, before: int
                ) -> tuple[pa.Table, int]:
    """`events` without those the offline log took in batch `before` or earlier (the view's
    backfill holds them: its checkpoint's `since`); and how many."""
    if before <= 0 or events.num_rows == 0:
        return events, 0
    import pyarrow as pa

    from featql.jobs.ingest_log import locked, record_keys

    keys = record_keys(source, events)
    with locked(root) as ledger:
        known = ledger.logged_before(source.name, keys, before)
    if not known:
        return events, 0
    kept = [i for i, k in enumerate(keys) if k not in known]
    return events.take(pa.array(kept, pa.int64())), events.num_rows - len(kept)
