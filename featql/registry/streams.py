"""Stream views in a plan: which checkpoint of `featql stream` a change keeps or resets.

`featql stream` keeps one Spark checkpoint per workspace and stream view,
`.featql/stream/<workspace>/<source>/<view>/checkpoint/` (`checkpoint_path`; the stream job in
`featql.jobs.stream_state` uses the same layout). What a change does to them:

- the source's stream location changes (kind, topic, bootstrap, folder, format): the old
  checkpoint cannot be resumed against another location, so it **resets**: the next
  `featql stream` starts a new one, reading the new location from its start; events whose key
  was ingested before count once (the ingest ledger), events of the batch log too;
- a stream is added: a checkpoint is started by the first `featql stream`;
- a stream is removed, or the source deleted: the checkpoint is no longer read;
- a stream view is created: it is backfilled from the batch log, which holds the events
  streamed so far, and its checkpoint is started by its first `featql stream`, where the log
  is then (what the log held is the backfill's);
- a stream view is recreated: backfilled again, and its checkpoint is **kept** (the stream
  goes on where it was). Its siblings' checkpoints are never touched by a view's change.
"""

from __future__ import annotations

from featql.core.ir import Manifest, Source, StreamSpec

FOLDER = ".featql/stream"


def checkpoint_path(workspace: str, source: str, view: str = "*") -> str:
    """The checkpoint folder of a view (`*`: of every view over the source), relative to the
    project."""
    return f"{FOLDER}/{workspace}/{source}/{view}/checkpoint"


def show_stream(s: StreamSpec | None) -> str:
    if s is None:
        return "none"
    if s.kind == "kafka":
        return f"kafka(topic = '{s.topic}', bootstrap = '{s.bootstrap}', format = {s.format})"
    return f"{s.kind}('{s.path}', format = {s.format})"


def stream_notes(kind: str, name: str, action: str, old: Manifest | None, new: Manifest,
                 workspace: str) -> tuple[str, ...]:
    """The lines a plan shows for a change of a stream source or a stream view."""
    if kind == "source":
        return _source_notes(old.source(name) if old else None, new.source(name), workspace)
    if kind != "feature view" or action == "delete":
        return ()
    view = new.view(name)
    src = new.stream_source(view) if view is not None else None
    if view is None or src is None:
        return ()
    before = old.source(src.name) if old else None
    resets = before is not None and before.stream is not None and before.stream != src.stream
    where = checkpoint_path(workspace, src.name, view.name)
    fate = ("resets (the stream location of its source changed)" if resets
            else "is kept" if action != "create" and before is not None
            and before.stream is not None
            else "is started by the first `featql stream`, where the log then ends" if
            before is not None and before.stream is not None
            else "is started by the first `featql stream`")
    backfill = (" backfilled from the batch log (which holds the events streamed so far);"
                if action in ("create", "recreate") else "")
    return (f"stream view: fed by `featql stream` from source '{src.name}' "
            f"({show_stream(src.stream)});{backfill} checkpoint {where} {fate}",)


def _source_notes(old: Source | None, new: Source | None, workspace: str) -> tuple[str, ...]:
    named = new or old
    name = named.name if named is not None else ""
    where = checkpoint_path(workspace, name)
    was = old.stream if old is not None else None
    now = new.stream if new is not None else None
    if was is None and now is None:
        return ()
    if was is None:
        return (f"stream: new; the first `featql stream` starts the checkpoints {where} at "
                "the start of the stream (events already in the batch log count once)",)
    if now is None:
        return (f"stream: removed; the checkpoints {where} are no longer read",)
    if was != now:
        return (f"stream: the checkpoints {where} reset: {show_stream(was)} → "
                f"{show_stream(now)}; "
                "the next `featql stream` reads the new location from its start (events "
                "whose key was ingested before count once)",)
    return ()
