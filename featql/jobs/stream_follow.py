"""A running `featql stream` follows the workspace's applies (PRODUCT §3: what runs is what was
applied).

Every few seconds (`RELOAD_S`) between its checks of the queries, the stream asks the registry
for the workspace's head apply (`AppliedWatch`). When it is a newer one, `reload_plan` compares
the stream views it would run now with the ones running, each keyed by its source's name and
fingerprint and its own fingerprint:

- an **added** view gets a query and checkpoint of its own, started the way a restarted
  `featql stream` would start it: `since` marked now (`stream_state`), so it skips what the log
  took before (its backfill's) and applies what comes later;
- a **removed** one (deleted, no longer a stream view, or no longer chosen) has its query
  stopped; its checkpoint stays on disk (a later apply bringing the view back resumes it);
- a **changed** one (its definition or its source's) is stopped and started again on the new
  definition, from its checkpoint (reset when the stream location changed, as on a restart);
- the others keep running, on the new manifest from their next micro-batch.

An added or changed view's online cells are those of its definition (its fingerprint): they
hold what its query streamed until `featql materialize --online` loads the backfill (the apply
records itself before its backfill runs, so the stream cannot load it at once); the note on
the `Progress` says so. Loaded after events streamed, the load builds the cells from the log
(those events included) and the query goes on from its checkpoint: each event counts once.

With `--view V`, only the named views are followed (V removed: its query stops).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from featql.core.ir import FeatureView, Manifest, Source
from featql.core.progress import Progress

if TYPE_CHECKING:
    from featql.registry.applied import Applied

RELOAD_S = 2.0
"""How often a running stream asks the registry for a newer apply of its workspace."""

_LOAD = ("; once its backfill is done, `featql materialize --online` loads it into the online "
         "store (until then the view's online values hold only what streamed since)")

Key = tuple[str, str, str]  # (source, its declaration's digest, view fingerprint)


class Run(Protocol):
    """A view checkpoint's running query (`featql.jobs.stream._ViewRun`)."""

    view: str
    key: Key
    manifest: Manifest
    stats: Any

    def stop(self) -> None: ...


R = TypeVar("R", bound=Run)


def target_key(source: Source, view: FeatureView) -> Key:
    """What a view's query runs: its source's declaration (its stream, key and lateness
    included; not where it is written) and its own fingerprint."""
    import hashlib
    from dataclasses import fields

    declared = repr(tuple(getattr(source, f.name) for f in fields(source)
                          if f.name != "location"))
    return (source.name, hashlib.sha256(declared.encode()).hexdigest()[:16], view.fingerprint)


def chosen_targets(manifest: Manifest, views: Sequence[str] | None
                   ) -> dict[str, tuple[Source, FeatureView]]:
    """The stream views a stream over `manifest` runs (every one, or the named ones that are
    stream views in it), by name, with their stream source."""
    out: dict[str, tuple[Source, FeatureView]] = {}
    for view in manifest.stream_views:
        if views and view.name not in views:
            continue
        src = manifest.stream_source(view)
        if src is not None:
            out[view.name] = (src, view)
    return out


@dataclass(frozen=True)
class ReloadPlan:
    added: tuple[tuple[Source, FeatureView], ...]
    removed: tuple[str, ...]
    changed: tuple[tuple[Source, FeatureView], ...]
    kept: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def reload_plan(running: dict[str, Key], manifest: Manifest, views: Sequence[str] | None
                ) -> ReloadPlan:
    """What to start, stop and restart so that the stream runs `manifest`'s stream views
    (`running`: the key of each view's running query)."""
    now = chosen_targets(manifest, views)
    added, changed, kept = [], [], []
    for name in sorted(now):
        src, view = now[name]
        if name not in running:
            added.append((src, view))
        elif running[name] != target_key(src, view):
            changed.append((src, view))
        else:
            kept.append(name)
    removed = tuple(sorted(n for n in running if n not in now))
    return ReloadPlan(tuple(added), removed, tuple(changed), tuple(kept))


class AppliedWatch:
    """The workspace's head apply, asked at most every `every` seconds."""

    def __init__(self, root: Path, workspace: str, apply_id: int,
                 every: float = RELOAD_S) -> None:
        self.root, self.workspace, self.apply_id, self.every = root, workspace, apply_id, every
        self._next = time.monotonic() + every

    def newer(self, force: bool = False) -> Applied | None:
        """The head apply when it is newer than the last one seen (then it is the one seen),
        else None; asks the registry only when `every` seconds passed (or `force`)."""
        now = time.monotonic()
        if not force and now < self._next:
            return None
        self._next = now + self.every
        from featql.registry.applied import find_applied

        applied = find_applied(self.root, self.workspace)
        if applied is None or applied.apply_id == self.apply_id:
            return None
        self.apply_id = applied.apply_id
        return applied


class Follow(Generic[R]):
    """The running stream's side of `stream_follow`: a newer apply's plan carried out on the
    running queries (`runs`, changed in place)."""

    def __init__(self, watch: AppliedWatch, views: Sequence[str] | None,
                 start: Callable[[R], None],
                 mark: Callable[[Manifest, list[Source]], None],
                 make: Callable[[Manifest, Source, FeatureView], R], progress: Progress,
                 done: list[str]) -> None:
        self.watch, self.views, self.start, self.mark, self.make = (watch, views, start, mark,
                                                                    make)
        self.progress, self.done = progress, done

    def __call__(self, runs: list[R], force: bool = False) -> None:
        applied = self.watch.newer(force)
        if applied is None:
            return
        manifest = applied.run_manifest
        by_name = {r.view: r for r in runs}
        plan = reload_plan({r.view: r.key for r in runs}, manifest, self.views)
        label = applied.label
        if plan.empty:
            for r in runs:  # same definitions: the next batches run on the new manifest
                r.manifest = manifest
            return
        self.mark(manifest, sorted({src for src, _ in plan.added + plan.changed},
                                   key=lambda s: s.name))
        for name in plan.removed:
            by_name[name].stop()
            runs.remove(by_name[name])
            self._say(f"{label}: {name} is no longer applied as a stream view: its query "
                      "stopped (its checkpoint is kept)")
        for src, view in plan.changed:
            old = by_name[view.name]
            old.stop()
            new = self.make(manifest, src, view)
            for f in ("batches", "events", "ingested", "duplicates", "late", "dead"):
                setattr(new.stats, f, getattr(old.stats, f))
            runs[runs.index(old)] = new
            self._kafka(src)
            self.start(new)
            self._say(f"{label}: {view.name} changed: its query restarted on the new "
                      "definition" + (" (its checkpoint was reset: the stream location "
                                      "changed)" if new.stats.reset else
                                      ", from its checkpoint") + _LOAD)
        for src, view in plan.added:
            new = self.make(manifest, src, view)
            self._kafka(src)
            self.start(new)
            runs.append(new)
            self._say(f"{label}: {view.name} added: its query started ({new.stats.location}; "
                      "the events after its backfill)" + _LOAD)
        for name in plan.kept:
            by_name[name].manifest = manifest

    def _kafka(self, src: Source) -> None:
        if src.stream is not None and src.stream.kind == "kafka":
            from featql.jobs.stream_kafka import check_topics

            check_topics([src])

    def _say(self, text: str) -> None:
        self.done.append(text)
        with self.progress.task(text, 1) as advance:
            advance(1)
