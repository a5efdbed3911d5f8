"""The online read path shared by the HTTP server and `Project.online`: validate, fetch, merge.

`OnlineService(manifest, store, root)` precomputes a plan per feature service (which entity
items and views to read, which features to output, which transforms to run). `lookup()` then
costs one store round trip for up to `max_entities` entities (a second one only when a store
answered aggregate heads made for another slide: see `_read_tiles`), decodes each cell once,
applies TTL (row-level views) or merges tiles (aggregate views) at time `now`, runs the request
transforms, and returns one dict per entity: `"<view>.<feature>"` and `"<transform>.<output>"`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from featql.core.diagnostics import did_you_mean
from featql.core.errors import UserError
from featql.core.ir import Column, FeatureService, FeatureView, Manifest
from featql.online import codec
from featql.online.base import OnlineStore, OnlineStoreError
from featql.online.cell_decode import EMPTY, DecodeItems, Entry, items_decoder
from featql.online.tiles import IncompleteWindow, TileMerger, merged_at
from featql.semantics.types import python_accepts
from featql.transforms import CompiledTransform, TransformError, compile_transforms

MAX_ENTITIES = 100


class RequestError(UserError, ValueError):
    """A user mistake in a lookup: becomes a 4xx JSON error naming the field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            err["field"] = self.field
        return {"error": err}


@dataclass(frozen=True)
class ViewRead:
    view: FeatureView
    entity: str
    key_names: tuple[str, ...]
    outputs: tuple[tuple[int, str], ...]  # (feature index in the view, output name)
    env: tuple[tuple[int, str], ...]  # (feature index, "view.feature") transforms read
    cell: str  # the store's name for the view's cells
    group: int  # index into ServiceRead.groups: whose item keys the view reads
    merge: TileMerger | None  # an aggregate view's tiles -> its values at a time
    pick: Callable[[list[Any]], tuple[Any, ...]]  # values -> output values, in `outputs` order
    pick_env: Callable[[list[Any]], tuple[Any, ...]]  # values -> transform inputs, `env` order
    decode_items: DecodeItems  # cells -> `pick` + `pick_env` of their values, many items




@dataclass(frozen=True)
class ServiceRead:
    service: FeatureService
    keys: tuple[Column, ...]
    views: tuple[ViewRead, ...]
    columns: tuple[str, ...]  # output names, in order
    transforms: tuple[CompiledTransform, ...]
    request_fields: tuple[Column, ...]
    groups: tuple[tuple[str, tuple[int, ...]], ...]  # (entity, key positions in the request)
    cells: tuple[str, ...]
    # (outputs of each view that has some, then of each transform) -> one entity's features,
    # keyed and ordered like `columns`
    assemble: Callable[..., dict[str, Any]]
    times: Callable[[tuple[Any, ...]], dict[str, Any]]  # row views' event times -> by view


def _getter(positions: list[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """values -> tuple(values[p] for p in positions), at C speed."""
    if not positions:
        return lambda _values: ()
    if len(positions) == 1:
        p = positions[0]
        return lambda values: (values[p],)
    return operator.itemgetter(*positions)


def _dict_builder(keys: Sequence[str], sources: Sequence[tuple[int, int]], parts: int,
                  ) -> Callable[..., dict[str, Any]]:
    """A function `(part_0, ..., part_n-1) -> {keys[i]: part_p[j] for (p, j) = sources[i]}`,
    generated once per service: one dict display builds a 50-feature row in a third of the
    time `dict(zip(...))` over a re-ordered tuple takes, and rows are most of a 100-entity
    response."""
    args = ", ".join(f"p{i}" for i in range(parts))
    body = ", ".join(f"{k!r}: p{p}[{j}]" for k, (p, j) in zip(keys, sources, strict=True))
    namespace: dict[str, Any] = {}
    exec(compile(f"def build({args}):\n    return {{{body}}}\n", "<featql row builder>",
                 "exec"), namespace)
    built: Callable[..., dict[str, Any]] = namespace["build"]
    return built


def _kind(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}.get(type(value), type(value).__name__)


def parse_time(value: Any, field: str = "at") -> int:
    """Microseconds of an ISO timestamp (naive = UTC); RequestError when it is not one."""
    if not isinstance(value, str):
        raise RequestError(400, "invalid_field", f"'{field}' must be an ISO timestamp string",
                           field)
    try:
        ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(400, "invalid_field",
                           f"'{field}' is not an ISO timestamp: {value!r}", field) from None
    try:
        return codec.to_micros(ts)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise RequestError(400, "invalid_field", f"'{field}' is out of range once converted to "
                           f"UTC: {value!r}", field) from None


def build_reads(manifest: Manifest, service: FeatureService, root: Path) -> ServiceRead:
    transforms = compile_transforms(manifest, root, service.transforms)
    wanted: dict[str, dict[str, None]] = {}  # view -> features needed
    for ref in service.features:
        wanted.setdefault(ref.view, {})[ref.feature] = None
    inputs: set[str] = set()
    for ct in transforms.values():
        for inp in ct.inputs:
            vn, feat = inp.split(".", 1)
            wanted.setdefault(vn, {})[feat] = None
            inputs.add(inp)
    outputs = {(ref.view, ref.feature) for ref in service.features}
    plans = []
    key_pos = {k.name: i for i, k in enumerate(service.keys)}
    groups: dict[tuple[str, tuple[int, ...]], int] = {}
    for vname, feats in wanted.items():
        view = manifest.view(vname)
        assert view is not None, vname
        index = {f.name: i for i, f in enumerate(view.features)}
        group = groups.setdefault((view.entity, tuple(key_pos[k.name] for k in view.keys)),
                                  len(groups))
        outs = tuple((index[f], f"{vname}.{f}") for f in feats if (vname, f) in outputs)
        env = tuple((index[f], f"{vname}.{f}") for f in feats if f"{vname}.{f}" in inputs)
        needed = {index[f] for f in feats}
        pick, pick_env = _getter([i for i, _ in outs]), _getter([i for i, _ in env])
        # an aggregate view computes only the features the service needs
        merge = TileMerger(view, needed) if view.kind == "aggregate" else None
        plans.append(ViewRead(
            view=view, entity=view.entity, key_names=tuple(k.name for k in view.keys),
            outputs=outs, env=env, cell=codec.cell_name(view), group=group,
            merge=merge, pick=pick, pick_env=pick_env,
            decode_items=items_decoder(view, merge, codec.cell_name(view), pick, pick_env)))
    columns = [f"{r.view}.{r.feature}" for r in service.features]
    request_fields: dict[str, Column] = {}
    for name in service.transforms:
        ct = transforms[name]
        columns.extend(f"{name}.{c.name}" for c in ct.outputs)
        for c in ct.request:
            request_fields.setdefault(c.name, c)
    # where each output column comes from: (part, position) over the parts `lookup` builds
    source: dict[str, tuple[int, int]] = {}
    parts = [[name for _, name in p.outputs] for p in plans if p.outputs]
    parts += [[f"{n}.{c.name}" for c in transforms[n].outputs] for n in service.transforms]
    for k, names in enumerate(parts):
        source.update({name: (k, j) for j, name in enumerate(names)})
    timed = [p.view.name for p in plans if p.view.kind == "row" and p.outputs]
    return ServiceRead(service, service.keys, tuple(plans), tuple(columns),
                       tuple(transforms[n] for n in service.transforms),
                       tuple(request_fields.values()), tuple(groups),
                       tuple(p.cell for p in plans),
                       _dict_builder(columns, [source[c] for c in columns], len(parts)),
                       _dict_builder(timed, [(0, j) for j in range(len(timed))], 1))


class OnlineService:
    """Feature lookups for every service of a manifest against one online store."""

    def __init__(self, manifest: Manifest, store: OnlineStore, root: Path,
                 max_entities: int = MAX_ENTITIES):
        self.manifest = manifest
        self.store = store
        self.max_entities = max_entities
        self.reads = {s.name: build_reads(manifest, s, root) for s in manifest.services}
        # aggregate cells read with their tiles: their heads were for another slide lately
        self._tiles_first: set[str] = set()

    def unloaded_views(self) -> list[str]:
        """Views of some service never loaded into this store (under their current
        definition): their features are NULL until `featql materialize --online`."""
        seen = {vp.view.name: vp.cell for p in self.reads.values() for vp in p.views}
        return sorted(v for v, cell in seen.items()
                      if self.store.get_state("loaded:" + cell) is None)

    def service_read(self, service: str) -> ServiceRead:
        plan = self.reads.get(service)
        if plan is None:
            hint = did_you_mean(service, self.reads)
            raise RequestError(404, "unknown_service", f"unknown feature service '{service}'"
                               + (f": {hint}" if hint else ""), "service")
        return plan

    # -- validation --------------------------------------------------------------------------
    def _entities(self, plan: ServiceRead, entities: Any) -> list[tuple[Any, ...]]:
        if not isinstance(entities, list):
            raise RequestError(400, "invalid_field",
                               f"'entities' must be an array of objects, got {_kind(entities)}",
                               "entities")
        if not entities:
            raise RequestError(400, "invalid_field", "'entities' is empty", "entities")
        if len(entities) > self.max_entities:
            raise RequestError(413, "too_many_entities",
                               f"{len(entities)} entities in one request; the limit is "
                               f"{self.max_entities}", "entities")
        rows = []
        names = [k.name for k in plan.keys]
        # keys whose value, of this exact type (and range), is valid: no full check
        fast = [(k.name, _FAST_KEYS.get(k.type, (_ABSENT, 0, 0))) for k in plan.keys]
        for i, ent in enumerate(entities):
            if type(ent) is dict:
                values = []
                for name, (kind, lo, hi) in fast:
                    v: Any = ent.get(name)
                    if type(v) is not kind or (kind is int and not lo <= v <= hi):
                        break
                    values.append(v)
                else:
                    rows.append(tuple(values))
                    continue
            if not isinstance(ent, dict):
                raise RequestError(400, "invalid_field",
                                   f"entities[{i}] must be an object, got {_kind(ent)}",
                                   f"entities[{i}]")
            for k in plan.keys:
                if k.name not in ent:
                    extra = [x for x in ent if x not in names]
                    close = difflib.get_close_matches(k.name, extra, n=1, cutoff=0.5)
                    raise RequestError(
                        400, "missing_key", f"entities[{i}] lacks key '{k.name}' "
                        f"(service {plan.service.name} needs {', '.join(names)})"
                        + (f"; did you mean '{k.name}' instead of '{close[0]}'?"
                           if close else ""),
                        f"entities[{i}].{k.name}")
                v = ent[k.name]
                if isinstance(v, int) and not isinstance(v, bool) and "INT" in k.type \
                        and not python_accepts(v, k.type):
                    raise RequestError(
                        400, "invalid_key", f"entities[{i}].{k.name} = {v} is out of the "
                        f"{k.type} range", f"entities[{i}].{k.name}")
                if v is None or not python_accepts(v, k.type):
                    raise RequestError(
                        400, "invalid_key", f"entities[{i}].{k.name} must be "
                        f"{'an integer' if 'INT' in k.type else 'a string'} ({k.type}), got "
                        f"{_kind(v)}", f"entities[{i}].{k.name}")
            rows.append(tuple(ent[n] for n in names))
        return rows

    def _requests(self, plan: ServiceRead, request: Any, n: int) -> dict[str, Sequence[Any]]:
        """The request fields as environment columns `{"request.<field>": [per entity]}`."""
        if not plan.request_fields:
            return {}
        if request is None:
            raise RequestError(400, "missing_field",
                               f"'request' is required by the transforms of {plan.service.name}: "
                               f"fields {', '.join(c.name for c in plan.request_fields)}",
                               "request")
        shared = isinstance(request, dict)  # one object for every entity: checked once
        if shared:
            request = [request]
        elif not isinstance(request, list) or len(request) != n:
            raise RequestError(400, "invalid_field",
                               f"'request' must be an object or an array of {n} objects "
                               "(one per entity)", "request")
        cols: dict[str, Sequence[Any]] = {}
        for c in plan.request_fields:
            # values of this exact type are valid as they are (any other: the full check)
            fast = {"DOUBLE": float, "STRING": str, "VARCHAR": str, "BOOLEAN": bool}.get(c.type)
            double = c.type == "DOUBLE"
            col = []
            for i, r in enumerate(request):
                v: Any = r.get(c.name, _ABSENT) if type(r) is dict else _ABSENT
                if type(v) is not fast:
                    if v is _ABSENT or not python_accepts(v, c.type):
                        self._request_field(plan, request, i, c)  # raises the first error
                        v = request[i][c.name]
                    if double and v is not None:
                        v = float(v)
                col.append(v)
            cols["request." + c.name] = col * n if shared else col
        return cols

    def _request_field(self, plan: ServiceRead, request: list[Any], i: int, c: Column) -> None:
        """Raises the first error of the request fields, row by row then field by field (the
        order lookups report them in), up to `request[i].<c>`; returns if there is none."""
        for k, r in enumerate(request[:i + 1]):
            if not isinstance(r, dict):
                raise RequestError(400, "invalid_field", f"request[{k}] must be an object",
                                   f"request[{k}]")
            for f in plan.request_fields:
                if f.name not in r:
                    hint = did_you_mean(f.name, list(r))
                    raise RequestError(400, "missing_field", f"request[{k}] lacks field "
                                       f"'{f.name}' ({f.type})" + (f": {hint}" if hint else ""),
                                       f"request[{k}].{f.name}")
                if not python_accepts(r[f.name], f.type):
                    raise RequestError(400, "invalid_field", f"request[{k}].{f.name} must be "
                                       f"{f.type}, got {_kind(r[f.name])}",
                                       f"request[{k}].{f.name}")
                if k == i and f is c:
                    return

    # -- the lookup ----------------------------------------------------------------------------
    def lookup(self, service: str, entities: Any, request: Any = None,
               now_us: int | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        plan = self.service_read(service)
        rows = self._entities(plan, entities)
        now = now_us if now_us is not None else time.time_ns() // 1000
        n = len(rows)
        cols = self._requests(plan, request, n)  # the transforms' environment, as columns
        items_by_group = []
        all_items: dict[str, None] = {}
        for entity, pos in plan.groups:
            if len(pos) == 1:
                p0 = pos[0]
                prefix = entity + "#["
                items = [prefix + orjson.dumps(row[p0]).decode() + "]" for row in rows]
            else:
                items = [codec.item_key(entity, [row[p] for p in pos]) for row in rows]
            items_by_group.append(items)
            all_items.update(dict.fromkeys(items))
        full = self._tiles_first.intersection(plan.cells)
        cells = self.store.read(list(all_items), plan.cells, full)
        # each distinct item of a view is decoded (TTL, tile merge) once, whatever its repeats
        distinct = [dict.fromkeys(items) for items in items_by_group]
        try:
            per_view = self._decode(plan, cells, full, distinct, now, replay=now_us is not None)
        except IncompleteWindow as e:
            raise RequestError(422, "at_before_online_data",
                               f"cannot replay the lookup at {codec.from_micros(now).isoformat()}: "
                               f"{e}; compute a training set to see older values", "at") from e
        out_cols: list[list[tuple[Any, ...]]] = []  # per view (then transform): per row
        ts_cols: list[list[str | None]] = []  # per row view with outputs: per row
        with_env = bool(plan.transforms)
        for vp, decoded in zip(plan.views, per_view, strict=True):
            per_row = [decoded[item] for item in items_by_group[vp.group]]
            if vp.outputs:
                out_cols.append([got[0] for got in per_row])
            if with_env and vp.env:
                per_feature = zip(*[got[1] for got in per_row], strict=True)
                for (_, name), col in zip(vp.env, per_feature, strict=True):
                    cols[name] = col
            if vp.view.kind == "row" and vp.outputs:
                ts_cols.append([got[2] for got in per_row])
        for ct in plan.transforms:  # each over all entities at once
            try:
                outs = ct.columns(cols, n)
            except TransformError as e:
                i = e.row or 0
                raise RequestError(422, "transform_failed", f"{e} (entities[{i}])",
                                   f"entities[{i}]") from e
            out_cols.append(list(zip(*outs, strict=True)) if outs else [()] * n)
        assemble, times = plan.assemble, plan.times
        ordered = ([assemble(*parts) for parts in zip(*out_cols, strict=True)]
                   if out_cols else [{} for _ in range(n)])
        event_times = ([times(ts) for ts in zip(*ts_cols, strict=True)]
                       if ts_cols else [{} for _ in range(n)])
        meta = {"service": service, "at": codec.from_micros(now).isoformat(),
                "event_times": event_times}
        return ordered, meta

    def _decode(self, plan: ServiceRead, cells: dict[str, Any], full: set[str],
                distinct: list[dict[str, None]], now: int, *, replay: bool
                ) -> list[dict[str, Entry]]:
        """Each view's entries for its distinct items at `now`. `replay` (an explicit `at`):
        a row newer than `now` refuses the lookup instead of serving NULL (_refuse_replay)."""
        cells_get = cells.get
        per_view: list[dict[str, Entry]] = []
        heads_missed: dict[str, list[str]] = {}  # cell -> items whose head is for another slide
        for vp in plan.views:
            decoded, missed = vp.decode_items(cells_get, distinct[vp.group], now)
            if missed and vp.merge is None:  # rows not before `now`
                if replay:
                    _refuse_replay(vp, missed[0], now)
            elif missed:
                heads_missed[vp.cell] = missed
            per_view.append(decoded)
        if heads_missed or full:
            self._read_tiles(plan, per_view, heads_missed, full, cells, now)
        return per_view

    def _read_tiles(self, plan: ServiceRead, per_view: list[dict[str, Any]],
                    heads_missed: dict[str, list[str]], full: set[str],
                    cells: dict[str, dict[str, bytes]], now: int) -> None:
        """Aggregate cells whose head (values merged at load) is for another slide than now's:
        read their tiles (a second round trip) and merge them. Views that needed this are
        read with their tiles from then on, until a load catches up with the slide again."""
        if heads_missed:
            items = list(dict.fromkeys(i for its in heads_missed.values() for i in its))
            tiles = self.store.read(items, list(heads_missed), heads_missed)
            for vp, decoded in zip(plan.views, per_view, strict=True):
                missed = heads_missed.get(vp.cell)
                if not missed:
                    continue
                for item in missed:
                    assert vp.merge is not None, "only aggregate cells have heads"
                    vals = vp.merge(tiles.get(item, EMPTY).get(vp.cell), now)
                    if vals is None:  # the store answered a head again: never a guess
                        raise OnlineStoreError(f"the tiles of {vp.cell} for {item} could not "
                                               "be read")
                    decoded[item] = (vp.pick(vals), vp.pick_env(vals), None)
            self._tiles_first.update(heads_missed)
        for vp in plan.views:
            if vp.cell not in full or vp.cell in heads_missed:
                continue
            assert vp.merge is not None, "only aggregate cells are read with their tiles"
            cell, hi = vp.cell, vp.merge.slide_start(now)
            payloads = [c[cell] for c in cells.values() if cell in c]
            # a load caught up (some cell was merged for this slide; cells of idle entities,
            # which loads do not rewrite, keep older ones): heads serve again
            if not payloads or any(merged_at(p) == hi for p in payloads):
                self._tiles_first.discard(cell)


_ABSENT = object()
_FAST_KEYS: dict[str, tuple[Any, int, int]] = {
    "BIGINT": (int, -(2**63), 2**63 - 1), "STRING": (str, 0, 0), "VARCHAR": (str, 0, 0)}


def _refuse_replay(vp: ViewRead, item: str, now: int) -> None:
    """A lookup `at` a time before the newest row of an entity cannot be answered: the online
    store keeps only that newest row, and the row a training set would use at `at` (the
    newest one before it) is gone. NULL would be a wrong answer, so the lookup is refused."""
    raise RequestError(
        422, "at_before_online_data",
        f"cannot replay {vp.view.name} for {item} at {codec.from_micros(now).isoformat()}: the "
        "online store keeps only the newest row per entity, and that row is from that time or "
        "later" + (" or was created after it (the view is known_at)" if vp.view.known_at else "")
        + "; compute a training set to see older values", "at")


def describe(plan: ServiceRead) -> dict[str, Any]:
    """`GET /v1/services/<name>`: keys, request fields, output columns and their types."""
    s = plan.service
    types = {f"{r.view}.{r.feature}": r.type for r in s.features}
    for ct in plan.transforms:
        types.update({f"{ct.name}.{c.name}": c.type for c in ct.outputs})
    return {
        "name": s.name,
        "description": s.meta.description,
        "owner": s.meta.owner,
        "keys": [{"name": k.name, "type": k.type} for k in s.keys],
        "request": [{"name": c.name, "type": c.type} for c in plan.request_fields],
        "features": [{"name": c, "type": types[c]} for c in plan.columns],
    }

