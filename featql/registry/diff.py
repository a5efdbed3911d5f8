"""Diff two manifests object by object and classify every change.

Classification (from least to most severe):
- *metadata*: owner, tags, description, pii, deprecation, `prevent_destroy`: nothing recomputed.
- *non-breaking*: existing features keep their values (same feature fingerprints): features
  added, schedule/start changed, columns added to a source, outputs added to a service.
- *breaking*: an existing feature's meaning or type changed or it disappeared (its fingerprint
  changed: filter, aggregate, window, TTL, CAST, keys, upstream): a view is recreated.
A cosmetic edit (reformatting, comments, renamed aliases) changes no fingerprint and shows no
change at all. Creating breaks nothing (non-breaking); deleting is breaking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from featql.core.durations import format_duration
from featql.core.ir import (
    Entity,
    FeatureService,
    FeatureView,
    Manifest,
    Meta,
    RequestTransform,
    Source,
)
from featql.registry.streams import show_stream

Action = Literal["create", "update", "recreate", "delete"]
Level = Literal["metadata", "non-breaking", "breaking"]
KINDS = ("source", "entity", "feature view", "transform", "service")
_RANK = {"metadata": 1, "non-breaking": 2, "breaking": 3}
LIST_LIMIT = 8


@dataclass(frozen=True)
class Detail:
    level: Level
    text: str


@dataclass(frozen=True)
class ObjectDiff:
    """One object's change, before impact and backfill are known."""

    kind: str
    name: str
    action: Action
    level: Level
    details: tuple[Detail, ...]
    added_features: tuple[str, ...] = ()


def names(items: Sequence[str], limit: int = LIST_LIMIT) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _q(v: object) -> str:
    if v is None:
        return "none"
    if isinstance(v, str):
        return f"'{v}'"
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_q(x) if isinstance(x, str) else str(x) for x in v) + "]"
    return str(v).lower() if isinstance(v, bool) else str(v)


def _dur(v: int | None) -> str:
    return "none" if v is None else format_duration(v)


def _durs(v: Sequence[int]) -> str:
    return "[" + ", ".join(format_duration(x) for x in v) + "]"


def _field(out: list[Detail], level: Level, label: str, old: Any, new: Any,
           fmt: Callable[[Any], str] = _q) -> None:
    if old != new:
        out.append(Detail(level, f"{label}: {fmt(old)} → {fmt(new)}"))


def _meta(out: list[Detail], old: Meta, new: Meta) -> None:
    _field(out, "metadata", "owner", old.owner, new.owner)
    _field(out, "metadata", "tags", old.tags, new.tags)
    if old.description != new.description:
        out.append(Detail("metadata", f"description: {_q(_short(old.description))} → "
                                      f"{_q(_short(new.description))}"))


def _short(text: str | None, limit: int = 48) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 3] + "..."


def _level(details: Sequence[Detail]) -> Level | None:
    if not details:
        return None
    worst = max(details, key=lambda d: _RANK[d.level])
    return worst.level


def _cols(cols: Sequence[Any]) -> str:
    return "[" + ", ".join(f"{c.name} {c.type}" for c in cols) + "]"


# -- per kind --------------------------------------------------------------------------------
def diff_source(old: Source, new: Source) -> list[Detail]:
    out: list[Detail] = []
    oc = {c.name: c.type for c in old.columns}
    nc = {c.name: c.type for c in new.columns}
    added = [f"{n} {t}" for n, t in nc.items() if n not in oc]
    removed = [n for n in oc if n not in nc]
    if added:
        out.append(Detail("non-breaking", f"columns added: {names(added)}"))
    if removed:
        out.append(Detail("breaking", f"columns removed: {names(removed)}"))
    for n in nc:
        if n in oc and oc[n] != nc[n]:
            out.append(Detail("breaking", f"column {n}: {oc[n]} → {nc[n]}"))
    _field(out, "breaking", "timestamp", old.timestamp, new.timestamp)
    _field(out, "breaking", "created", old.created, new.created)
    _field(out, "breaking", "known_at", old.known_at, new.known_at)
    if old.batch != new.batch:
        out.append(Detail("breaking", f"batch: {old.batch.format}('{old.batch.path}') → "
                                      f"{new.batch.format}('{new.batch.path}')"))
    if old.stream != new.stream:
        out.append(Detail("breaking", f"stream: {show_stream(old.stream)} → "
                                      f"{show_stream(new.stream)}"))
    _field(out, "breaking", "key", old.key, new.key)  # the events' identity
    _field(out, "non-breaking", "lateness", old.lateness_seconds, new.lateness_seconds,
           lambda v: "none" if v is None else f"'{format_duration(v)}'")
    _field(out, "non-breaking", "schema from", old.schema_from, new.schema_from)
    _field(out, "metadata", "pii", old.pii, new.pii)
    # a view reading a new label is refused at compile time, so marking one changes no feature
    _field(out, "metadata", "labels", old.labels, new.labels)
    _field(out, "metadata", "prevent_destroy", old.prevent_destroy, new.prevent_destroy)
    _meta(out, old.meta, new.meta)
    return out


def diff_entity(old: Entity, new: Entity) -> list[Detail]:
    out: list[Detail] = []
    if old.keys != new.keys:
        out.append(Detail("breaking", f"keys: {_cols(old.keys)} → {_cols(new.keys)}"))
    _meta(out, old.meta, new.meta)
    return out


def diff_view(old: FeatureView, new: FeatureView, old_m: Manifest,
              new_m: Manifest) -> tuple[list[Detail], tuple[str, ...]]:
    out: list[Detail] = []
    header: list[Detail] = []
    _field(header, "breaking", "keys", old.keys, new.keys, _cols)
    _field(header, "breaking", "timestamp", old.timestamp, new.timestamp)
    _field(header, "breaking", "ttl", old.ttl_seconds, new.ttl_seconds, _dur)
    _field(header, "breaking", "windows", old.windows, new.windows, _durs)
    _field(header, "breaking", "slide", old.slide_seconds, new.slide_seconds, _dur)
    if new.kind == "row":  # the tie-break column; aggregates do not break ties
        _field(header, "breaking", "created", old.created, new.created)
        _field(header, "breaking", "known_at", old.known_at, new.known_at)
    out.extend(header)
    of = {f.name: f for f in old.features}
    nf = {f.name: f for f in new.features}
    added = tuple(n for n in nf if n not in of)
    removed = [n for n in of if n not in nf]
    retyped = [f"{n}: {of[n].type} → {nf[n].type}" for n in nf
               if n in of and of[n].type != nf[n].type]
    changed = [n for n in nf if n in of and of[n].fingerprint != nf[n].fingerprint
               and of[n].type == nf[n].type]
    if old.fingerprint != new.fingerprint and not header:
        if old.sql != new.sql:
            if changed or retyped or removed:
                out.append(Detail("breaking", "query changed"))
            else:
                out.append(Detail("non-breaking", "query changed; existing features keep "
                                                  "their meaning"))
        else:
            ups = [d for d in new.depends_on if _upstream_changed(d, old_m, new_m)]
            out.append(Detail("breaking", f"upstream changed: {names(ups) or 'inputs'}"))
    for r in retyped:
        out.append(Detail("breaking", f"feature type {r}"))
    if changed:
        what = (f"all {len(changed)} features change meaning" if len(changed) == len(nf)
                else f"features change meaning: {names(changed)}")
        out.append(Detail("breaking", what))
    if removed:
        out.append(Detail("breaking", f"features removed: {names(removed)}"))
    if added:
        out.append(Detail("non-breaking", f"features added: {names(list(added))}"))
    if old.fingerprint != new.fingerprint and not _level(out):
        out.append(Detail("breaking", "query changed"))
    _field(out, "non-breaking", "entity", old.entity, new.entity)
    _field(out, "non-breaking", "schedule", old.schedule_seconds, new.schedule_seconds, _dur)
    _field(out, "metadata", "lookback", old.lookback_seconds, new.lookback_seconds, _dur)
    _field(out, "non-breaking", "start", old.start, new.start)
    _field(out, "non-breaking", "online", old.online, new.online)
    _field(out, "non-breaking", "offline", old.offline, new.offline)
    _field(out, "metadata", "deprecated", old.deprecated, new.deprecated)
    _field(out, "metadata", "replacement", old.replacement, new.replacement)
    _field(out, "metadata", "prevent_destroy", old.prevent_destroy, new.prevent_destroy)
    _meta(out, old.meta, new.meta)
    return out, added


def _upstream_changed(dep: str, old_m: Manifest, new_m: Manifest) -> bool:
    ov, nv = old_m.view(dep), new_m.view(dep)
    if ov is not None or nv is not None:
        return ov is None or nv is None or ov.fingerprint != nv.fingerprint
    return old_m.source(dep) != new_m.source(dep)


def diff_transform(old: RequestTransform, new: RequestTransform) -> list[Detail]:
    out: list[Detail] = []
    oo = {c.name: c.type for c in old.outputs}
    no = {c.name: c.type for c in new.outputs}
    added = [n for n in no if n not in oo]
    removed = [n for n in oo if n not in no]
    if removed:
        out.append(Detail("breaking", f"outputs removed: {names(removed)}"))
    for n in no:
        if n in oo and oo[n] != no[n]:
            out.append(Detail("breaking", f"output type {n}: {oo[n]} → {no[n]}"))
    if old.fingerprint != new.fingerprint or old.language != new.language:
        same_logic = old.language == new.language == "sql" and all(
            _projection(old.sql, n) == _projection(new.sql, n) for n in oo if n in no)
        if not same_logic:
            out.append(Detail("breaking", "logic changed"))
    _field(out, "breaking", "request", old.request, new.request, _cols)
    if added:
        out.append(Detail("non-breaking", f"outputs added: {names(added)}"))
    _meta(out, old.meta, new.meta)
    return out


def _projection(sql: str | None, name: str) -> str | None:
    if sql is None:
        return None
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, dialect="duckdb")
    if isinstance(tree, exp.Select):
        for p in tree.selects:
            if p.alias_or_name.lower() == name:
                inner = p.this if isinstance(p, exp.Alias) else p
                return inner.sql(dialect="duckdb", normalize=True)
    return None


def diff_service(old: FeatureService, new: FeatureService) -> list[Detail]:
    out: list[Detail] = []
    of = {(r.view, r.feature): r.type for r in old.features}
    nf = {(r.view, r.feature): r.type for r in new.features}
    removed = [f"{v}.{f}" for v, f in of if (v, f) not in nf]
    added = [f"{v}.{f}" for v, f in nf if (v, f) not in of]
    retyped = [f"{v}.{f}: {of[(v, f)]} → {t}" for (v, f), t in nf.items()
               if (v, f) in of and of[(v, f)] != t]
    if removed:
        out.append(Detail("breaking", f"features removed: {names(removed)}"))
    for r in retyped:
        out.append(Detail("breaking", f"feature type {r}"))
    t_removed = [t for t in old.transforms if t not in new.transforms]
    t_added = [t for t in new.transforms if t not in old.transforms]
    if t_removed:
        out.append(Detail("breaking", f"transforms removed: {names(t_removed)}"))
    if old.keys != new.keys:
        out.append(Detail("breaking", f"keys: {_cols(old.keys)} → {_cols(new.keys)}"))
    if added:
        out.append(Detail("non-breaking", f"features added: {names(added)}"))
    if t_added:
        out.append(Detail("non-breaking", f"transforms added: {names(t_added)}"))
    _field(out, "metadata", "prevent_destroy", old.prevent_destroy, new.prevent_destroy)
    _field(out, "metadata", "max_read_kb", old.max_read_kb, new.max_read_kb)
    _meta(out, old.meta, new.meta)
    return out


# -- whole manifests -------------------------------------------------------------------------
def _objects(m: Manifest | None, kind: str) -> dict[str, Any]:
    if m is None:
        return {}
    items: Sequence[Any] = {
        "source": m.sources, "entity": m.entities, "feature view": m.views,
        "transform": m.transforms, "service": m.services}[kind]
    return {o.name: o for o in items}


_DIFFERS: dict[str, Callable[[Any, Any], list[Detail]]] = {
    "source": diff_source, "entity": diff_entity, "transform": diff_transform,
    "service": diff_service}
_EMPTY = Manifest("", (), (), (), (), ())


def diff_manifests(old: Manifest | None, new: Manifest) -> list[ObjectDiff]:
    """Every created, changed and deleted object, in kind order then by name."""
    old_m = old or _EMPTY
    out: list[ObjectDiff] = []
    for kind in KINDS:
        before, after = _objects(old, kind), _objects(new, kind)
        for name in sorted(set(before) | set(after)):
            o, n = before.get(name), after.get(name)
            if o is None:
                added = tuple(f.name for f in n.features) if isinstance(n, FeatureView) else ()
                out.append(ObjectDiff(kind, name, "create", "non-breaking", (), added))
                continue
            if n is None:
                out.append(ObjectDiff(kind, name, "delete", "breaking", ()))
                continue
            added_features: tuple[str, ...] = ()
            if kind == "feature view":
                details, added_features = diff_view(o, n, old_m, new)
            else:
                differ: Callable[[Any, Any], list[Detail]] = _DIFFERS[kind]
                details = differ(o, n)
            level = _level(details)
            if level is None:
                continue
            action: Action = "recreate" if kind == "feature view" and level == "breaking" \
                else "update"
            out.append(ObjectDiff(kind, name, action, level, tuple(details), added_features))
    return out


def same_definitions(a: Manifest, b: Manifest) -> bool:
    """True when nothing but locations differ (a no-op apply)."""
    return not diff_manifests(a, b)

