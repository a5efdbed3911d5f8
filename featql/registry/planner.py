"""A plan: the classified diff plus downstream impact, backfills, warnings and refusals.

`make_plan` is pure apart from reading Parquet footers and the registry's materialization state
(both through arguments), so the same inputs always give the same plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from featql.core.ir import LineageEdge, Manifest
from featql.registry.backfill import BackfillEstimate, SourceStats, estimate, with_reuse
from featql.registry.diff import KINDS, Action, Detail, Level, ObjectDiff, diff_manifests
from featql.registry.store import ApplyRecord, Interval
from featql.registry.streams import stream_notes

Materialized = Callable[[str, str], list[Interval]]  # (view, storage fp) -> intervals


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: Action
    level: Level
    details: tuple[Detail, ...] = ()
    downstream: tuple[str, ...] = ()  # "kind name", transitively
    backfill: BackfillEstimate | None = None
    warnings: tuple[str, ...] = ()
    refused: str | None = None  # why apply refuses this change
    notes: tuple[str, ...] = ()  # what it does to `featql stream` (registry/streams.py)


@dataclass(frozen=True)
class Plan:
    workspace: str
    base: ApplyRecord | None
    manifest: Manifest
    changes: tuple[Change, ...]

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    @property
    def refusals(self) -> list[str]:
        return [c.refused for c in self.changes if c.refused]

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)

    def level_count(self, level: str) -> int:
        return sum(1 for c in self.changes if c.level == level)

    @property
    def backfills(self) -> list[BackfillEstimate]:
        return [c.backfill for c in self.changes if c.backfill is not None]


def kind_of(manifest: Manifest, name: str) -> str:
    if manifest.source(name):
        return "source"
    if manifest.view(name):
        return "feature view"
    if manifest.transform(name):
        return "transform"
    if manifest.service(name):
        return "service"
    return "entity" if manifest.entity(name) else "object"


def downstream(manifest: Manifest, name: str, changed: set[str] | None = None,
               before: Manifest | None = None) -> list[str]:
    """Every object reading `name`, transitively, as "kind name", in kind then name order.

    With `changed` (the changed columns of `name`) and column lineage in the manifest, each is
    annotated with how many of its features / outputs the change reaches: "(3 of 40 features)",
    counted as its consumers know it (`before` the change, when it existed then).
    """
    edges: dict[str, set[str]] = {}
    for up, down in manifest.dag:
        edges.setdefault(up, set()).add(down)
    for v in manifest.views:
        edges.setdefault(v.entity, set()).add(v.name)
    seen: set[str] = set()
    stack = [name]
    while stack:
        for d in edges.get(stack.pop(), ()):
            if d not in seen:
                seen.add(d)
                stack.append(d)
    order = {"source": 0, "entity": 1, "feature view": 2, "transform": 3, "service": 4}
    found = sorted(seen, key=lambda n: (order.get(kind_of(manifest, n), 9), n))
    lineage = (*manifest.lineage, *(before.lineage if before else ()))
    reached = _reached(lineage, name, changed) if changed and manifest.lineage else None
    out = []
    for n in found:
        label = f"{kind_of(manifest, n)} {n}"
        total, unit = _size(before, n) if before else (0, "")
        if not total:
            total, unit = _size(manifest, n)
        if reached is not None and total:
            label += f" ({len(reached.get(n, ()))} of {total} {unit})"
        out.append(label)
    return out


def _reached(lineage: Iterable[LineageEdge], name: str,
             changed: set[str]) -> dict[str, set[str]]:
    """object -> its columns (for services: the features served) the change flows into."""
    forward: dict[str, list[tuple[str, str]]] = {}
    for e in set(lineage):
        forward.setdefault(e.src, []).append((e.dst, e.kind))
    out: dict[str, set[str]] = {}
    stack = [f"{name}.{c}" for c in changed]
    seen = set(stack)
    while stack:
        src = stack.pop()
        for dst, kind in forward.get(src, ()):
            if kind == "service":
                out.setdefault(dst, set()).add(src)
                continue
            obj, _, col = dst.partition(".")
            out.setdefault(obj, set()).add(col)
            if dst not in seen:
                seen.add(dst)
                stack.append(dst)
    return out


def _size(manifest: Manifest, name: str) -> tuple[int, str]:
    if (v := manifest.view(name)) is not None:
        return len(v.features), "features"
    if (t := manifest.transform(name)) is not None:
        return len(t.outputs), "outputs"
    if (s := manifest.service(name)) is not None:
        outputs = sum(len(tr.outputs) for tr in manifest.transforms if tr.name in s.transforms)
        return len(s.features) + outputs, "features"
    return 0, ""


def changed_columns(d: ObjectDiff, old: Manifest | None, new: Manifest) -> set[str] | None:
    """The columns of a changed object whose meaning changes (None: not known per column)."""
    if old is None:
        return None
    if d.kind == "feature view":
        ov, nv = old.view(d.name), new.view(d.name)
        if ov is None:
            return None
        if nv is None:
            return {f.name for f in ov.features}
        nf = {f.name: f for f in nv.features}
        out = {f.name for f in ov.features if f.name not in nf
               or (nf[f.name].fingerprint, nf[f.name].type) != (f.fingerprint, f.type)}
        return out or {f.name for f in ov.features}
    if d.kind == "source":
        os_, ns = old.source(d.name), new.source(d.name)
        if os_ is None:
            return None
        every = {c.name for c in os_.columns}
        if ns is None or (os_.timestamp, os_.created, os_.known_at, os_.batch, os_.stream) != (
                ns.timestamp, ns.created, ns.known_at, ns.batch, ns.stream):
            return every
        now = {c.name: c.type for c in ns.columns}
        return {c.name for c in os_.columns if now.get(c.name) != c.type}
    if d.kind == "transform":
        ot, nt = old.transform(d.name), new.transform(d.name)
        if ot is None:
            return None
        if nt is None or any(x.text == "logic changed" for x in d.details):
            return {c.name for c in ot.outputs}
        now = {c.name: c.type for c in nt.outputs}
        return {c.name for c in ot.outputs if now.get(c.name) != c.type}
    return None


def _needs_backfill(d: ObjectDiff) -> bool:
    if d.kind != "feature view" or d.action == "delete":
        return False
    if d.action in ("create", "recreate"):
        return True
    return bool(d.added_features) or any(
        x.text.startswith(("start:", "offline:")) for x in d.details)


def _warnings(d: ObjectDiff, new: Manifest) -> tuple[str, ...]:
    out: list[str] = []
    if d.action == "delete":
        return ()
    if d.kind == "feature view":
        v = new.view(d.name)
        if v is not None and v.deprecated:
            out.append(f"warning[W801]: feature view '{v.name}' is deprecated"
                       + (f"; use '{v.replacement}'" if v.replacement else ""))
    elif d.kind == "service":
        s = new.service(d.name)
        for view in dict.fromkeys(r.view for r in (s.features if s else ())):
            v = new.view(view)
            if v is not None and v.deprecated:
                out.append(f"warning[W801]: service '{d.name}' uses deprecated feature view "
                           f"'{view}'" + (f"; use '{v.replacement}'" if v.replacement else ""))
    return tuple(out)


def _refusal(d: ObjectDiff, old: Manifest | None, new: Manifest) -> str | None:
    if old is None or d.action not in ("delete", "recreate"):
        return None
    protected = {s.name for s in old.sources if s.prevent_destroy} if d.kind == "source" \
        else {v.name for v in old.views if v.prevent_destroy} if d.kind == "feature view" \
        else {s.name for s in old.services if s.prevent_destroy} if d.kind == "service" \
        else set()
    if d.name in protected:
        what = "delete" if d.action == "delete" else "recreate (and discard the data of)"
        return (f"refusing to {what} {d.kind} '{d.name}': it is marked prevent_destroy = true; "
                "apply a change removing the flag first")
    if d.action == "delete" and d.kind == "feature view":
        # services kept by this plan that would read a deleted view (possible when the
        # manifest does not come from a clean compile, e.g. an artifact built elsewhere)
        users = [s.name for s in new.services
                 if any(r.view == d.name for r in s.features)
                 or any(i.split(".")[0] == d.name for t in new.transforms
                        if t.name in s.transforms for i in t.inputs)]
        if users:
            return (f"refusing to delete feature view '{d.name}': applied service "
                    f"{', '.join(repr(u) for u in sorted(users))} still uses it; remove it "
                    "from the service first")
    return None


def make_plan(root: Path, workspace: str, base: ApplyRecord | None, old: Manifest | None,
              new: Manifest, materialized: Materialized, now: datetime) -> Plan:
    stats: dict[str, SourceStats] = {}
    changes: list[Change] = []
    for d in diff_manifests(old, new):
        down: tuple[str, ...] = ()
        if d.level == "breaking":
            graph = new if d.action != "delete" else (old or new)
            down = tuple(downstream(graph, d.name, changed_columns(d, old, new), old))
        backfill = None
        if _needs_backfill(d):
            view = new.view(d.name)
            assert view is not None
            done = materialized(view.name, view.stored_as)
            backfill = with_reuse(estimate(root, new, view, done, now, stats),
                                  old.view(d.name) if old else None, view, old, new, done,
                                  materialized)
        changes.append(Change(d.kind, d.name, d.action, d.level, d.details, down, backfill,
                              _warnings(d, new), _refusal(d, old, new),
                              stream_notes(d.kind, d.name, d.action, old, new, workspace)))
    changes.extend(_moved_storage(root, old, new, {c.name for c in changes if c.kind ==
                                                   "feature view"}, materialized, now, stats))
    changes.sort(key=lambda c: (KINDS.index(c.kind), c.name))  # stable: diff order kept
    return Plan(workspace, base, new, tuple(changes))


MOVED = ("stored data keyed by its storage fingerprint (applied by an older featql, which keyed "
         "it by the view's fingerprint): materialized again once")


def _moved_storage(root: Path, old: Manifest | None, new: Manifest, listed: set[str],
                   materialized: Materialized, now: datetime,
                   stats: dict[str, SourceStats]) -> list[Change]:
    """Unchanged views whose applied definition predates storage fingerprints: their data moves
    to a new folder, so the plan says so and backfills them rather than leaving it unsaid."""
    out: list[Change] = []
    for view in new.views:
        ov = old.view(view.name) if old else None
        if view.name in listed or ov is None or ov.storage_fingerprint \
                or not view.storage_fingerprint or not view.offline:
            continue
        b = estimate(root, new, view, materialized(view.name, view.stored_as), now, stats)
        out.append(Change("feature view", view.name, "update", "non-breaking",
                          (Detail("non-breaking", MOVED),), backfill=b))
    return out
