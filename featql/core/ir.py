"""The typed intermediate representation every later stage reads: frozen dataclasses only.

The IR is what `featql compile` serialises into `target/manifest.json` (see `manifest.py`) and
what the dialects, the runtime and the server consume. Names of feature views include their
variant (`user_profile:v2`); SQL is stored in featql's canonical dialect (DuckDB-flavoured), with
header comments stripped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ViewKind = Literal["row", "aggregate"]
AggFunction = Literal["count", "sum", "avg", "min", "max",
                      "stddev_samp", "stddev_pop", "var_samp", "var_pop",
                      "last_n", "last_distinct_n", "first_n", "first_distinct_n", "top_k",
                      "approx_count_distinct", "approx_percentile"]
OMIT_DEFAULT = "omit_default"
"""Field metadata key: the manifest leaves the field out while it holds its default, so a
manifest written before the field existed (and its fingerprints) stays byte-identical."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class Location:
    path: str
    line: int
    col: int


@dataclass(frozen=True)
class Meta:
    owner: str | None = None
    tags: tuple[str, ...] = ()
    description: str | None = None


@dataclass(frozen=True)
class BatchSpec:
    format: str  # parquet | csv | json
    path: str
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StreamSpec:
    """Where a source's events arrive: `files(path, format = ...)` (a folder Spark watches) or
    `kafka(topic = ..., bootstrap = ..., format = json|avro)` (then `path` is empty)."""

    kind: str  # files | kafka
    path: str
    format: str
    options: tuple[tuple[str, str], ...] = ()
    # kafka only; repr=False keeps the repr a files stream's fingerprint digests unchanged
    # (source_fingerprint adds topic and bootstrap itself)
    topic: str | None = field(default=None, repr=False, metadata={OMIT_DEFAULT: True})
    bootstrap: str | None = field(default=None, repr=False, metadata={OMIT_DEFAULT: True})


@dataclass(frozen=True)
class Source:
    name: str
    location: Location
    timestamp: str
    batch: BatchSpec
    columns: tuple[Column, ...]
    schema_from: Literal["ddl", "files"]
    created: str | None = None
    stream: StreamSpec | None = None
    pii: tuple[str, ...] = ()
    meta: Meta = field(default_factory=Meta)
    prevent_destroy: bool = False
    labels: tuple[str, ...] = ()  # what models predict: never read by a feature view
    # streams (PRODUCT §2): how late an event may arrive and still count (the watermark), and
    # the column naming an event's identity (a replayed or duplicated event counts once)
    lateness_seconds: int | None = field(default=None, metadata={OMIT_DEFAULT: True})
    key: str | None = field(default=None, metadata={OMIT_DEFAULT: True})
    # "as known at" (PRODUCT §3): the created column again; then a row is visible at t only when
    # created <= t (a NULL created: never visible)
    known_at: str | None = field(default=None, metadata={OMIT_DEFAULT: True})


@dataclass(frozen=True)
class Entity:
    name: str
    location: Location
    keys: tuple[Column, ...]
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True)
class Aggregation:
    """One aggregate of an aggregate view; expands to one feature per window."""

    name: str
    function: AggFunction
    input_sql: str | None  # None for COUNT(*)
    input_type: str | None
    type: str
    # the constant arguments after the input, in call order: LAST_N(x, 10) -> (10,),
    # APPROX_PERCENTILE(x, 0.5) -> (0.5,); () for the one-argument functions
    args: tuple[int | float, ...] = field(default=(), metadata={OMIT_DEFAULT: True})


@dataclass(frozen=True)
class Feature:
    name: str
    type: str
    fingerprint: str
    aggregation: str | None = None  # the Aggregation it comes from (aggregate views)
    window_seconds: int | None = None


@dataclass(frozen=True)
class FeatureView:
    name: str  # includes the variant: user_profile:v2
    base_name: str
    variant: str | None
    location: Location
    kind: ViewKind
    entity: str
    keys: tuple[Column, ...]
    timestamp: str
    sql: str  # canonical body SQL (featql dialect)
    depends_on: tuple[str, ...]
    features: tuple[Feature, ...]
    fingerprint: str
    schedule_seconds: int
    start: str  # ISO date or timestamp
    ttl_seconds: int | None = None
    windows: tuple[int, ...] = ()
    slide_seconds: int | None = None
    aggregations: tuple[Aggregation, ...] = ()
    created: str | None = None  # tie-break column carried from a single source
    deprecated: bool = False
    replacement: str | None = None
    online: bool = True
    offline: bool = True
    meta: Meta = field(default_factory=Meta)
    prevent_destroy: bool = False
    # its rows come from a `known_at` source (through `created`): a row is visible at t only
    # when its created <= t, offline and online
    known_at: bool = field(default=False, metadata={OMIT_DEFAULT: True})
    # the identity of its stored offline data (folder, materialization state): what the view's
    # fingerprint covers minus what applies only when reading (TTL; an aggregate's windows);
    # empty in manifests written before it existed (then the fingerprint is used)
    storage_fingerprint: str = field(default="", metadata={OMIT_DEFAULT: True})
    # per stored column group, in stored order: (aggregation or feature name, identity of its
    # stored columns); equal identities in two definitions mean equal stored values
    stored: tuple[tuple[str, str], ...] = field(default=(), metadata={OMIT_DEFAULT: True})
    # `lookback = '2d'`: an incremental materialization always recomputes the done intervals
    # ending within this many seconds of the newest done one (late rows; featql.jobs.stale)
    lookback_seconds: int | None = field(default=None, metadata={OMIT_DEFAULT: True})

    @property
    def stored_as(self) -> str:
        """The fingerprint its offline data is stored and recorded under."""
        return self.storage_fingerprint or self.fingerprint

    def feature(self, name: str) -> Feature | None:
        for f in self.features:
            if f.name == name:
                return f
        return None

    @property
    def output_columns(self) -> tuple[Column, ...]:
        """What a dependent view or a service sees: keys, timestamp, features."""
        ts = () if self.kind == "aggregate" else (Column(self.timestamp, "TIMESTAMP"),)
        return (*self.keys, *ts, *(Column(f.name, f.type) for f in self.features))


@dataclass(frozen=True)
class RequestTransform:
    name: str
    location: Location
    language: Literal["sql", "python"]
    request: tuple[Column, ...]
    inputs: tuple[str, ...]  # "view.feature"
    outputs: tuple[Column, ...]
    sql: str | None = None
    module: str | None = None  # python: path of the file, relative to the project
    function: str | None = None
    fingerprint: str = ""
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True)
class FeatureRef:
    view: str
    feature: str
    type: str

    @property
    def column(self) -> str:
        """Column name in training sets: `<view>__<feature>`."""
        return f"{self.view.replace(':', '_')}__{self.feature}"


@dataclass(frozen=True)
class FeatureService:
    name: str
    location: Location
    features: tuple[FeatureRef, ...]
    transforms: tuple[str, ...]
    keys: tuple[Column, ...]  # union of the entity keys, in first-use order
    meta: Meta = field(default_factory=Meta)
    prevent_destroy: bool = False
    # `max_read_kb = 256`: what one lookup may read at most (featql.semantics.read_cost), in KB
    max_read_kb: float | None = field(default=None, metadata={OMIT_DEFAULT: True})


@dataclass(frozen=True)
class LineageEdge:
    """`src` (object.column) feeds `dst` (object.column); kind says how."""

    src: str
    dst: str
    kind: Literal["value", "filter", "join", "group", "key", "time", "service"]


@dataclass(frozen=True)
class Manifest:
    project: str
    sources: tuple[Source, ...]
    entities: tuple[Entity, ...]
    views: tuple[FeatureView, ...]
    transforms: tuple[RequestTransform, ...]
    services: tuple[FeatureService, ...]
    lineage: tuple[LineageEdge, ...] = ()
    version: int = 1

    def view(self, name: str) -> FeatureView | None:
        return next((v for v in self.views if v.name == name), None)

    def stream_source(self, view: FeatureView) -> Source | None:
        """The stream source a *stream view* reads, directly or through stream views (the
        compiler lets a stream view read that one stream and nothing else), or None for a
        batch-only view."""
        for dep in view.depends_on:
            src = self.source(dep)
            if src is not None and src.stream is not None:
                return src
            up = self.view(dep)
            found = self.stream_source(up) if up is not None else None
            if found is not None:
                return found
        return None

    @property
    def stream_views(self) -> tuple[FeatureView, ...]:
        return tuple(v for v in self.views if self.stream_source(v) is not None)

    def source(self, name: str) -> Source | None:
        return next((s for s in self.sources if s.name == name), None)

    def entity(self, name: str) -> Entity | None:
        return next((e for e in self.entities if e.name == name), None)

    def service(self, name: str) -> FeatureService | None:
        return next((s for s in self.services if s.name == name), None)

    def transform(self, name: str) -> RequestTransform | None:
        return next((t for t in self.transforms if t.name == name), None)

    @property
    def dag(self) -> tuple[tuple[str, str], ...]:
        """(upstream, downstream) edges between sources, views, transforms and services."""
        edges: list[tuple[str, str]] = []
        for v in self.views:
            edges.extend((d, v.name) for d in v.depends_on)
        for t in self.transforms:
            edges.extend((i.split(".")[0], t.name) for i in t.inputs)
        for s in self.services:
            edges.extend((v, s.name) for v in dict.fromkeys(f.view for f in s.features))
            edges.extend((t, s.name) for t in s.transforms)
        return tuple(dict.fromkeys(edges))
