"""`featql stream`: Spark Structured Streaming from Kafka (`format("kafka")`) or a folder of
files into the online store and the offline log, through the one write path of pushes.

One streaming query, and one checkpoint, per workspace and stream view (`--view V` runs, or
`reset=True` resets, V's alone: its siblings' checkpoints are not touched). Its `foreachBatch`
collects each micro-batch to the driver as Arrow (raw message text and where it came from),
sorts the messages into events and dead letters (`stream_events`) and hands the events to
`featql.jobs.ingest.ingest_events` with a batch id naming the checkpoint and Spark's batch
number, for its one view. That one function appends them to the source's offline log
(partitioned like the batch log; once per source, whichever view's query reads them first),
drops events whose `key` was applied to the view before (by a push, or by this checkpoint:
the ledger keeps identities per view for streams), runs the view's SQL on them with the batch
semantics and writes the online store; a batch id it has applied before changes nothing. So a
micro-batch Spark replays after a crash is harmless and touches no sibling, and the stream,
the push API and the online read share one write path and one semantics. A view applied after
its source had streamed gets a checkpoint of its own that skips what the log held when it was
made (its backfill's: `stream_state.since`). The files of a checkpoint: `stream_state`.
Given the apply it runs (`applied_id`), a running stream follows later applies of the
workspace: it starts, stops and restarts view queries between its checks (`stream_follow`).

`--until-idle` uses `trigger(availableNow=True)`: what is there when the query starts, then
stop. Otherwise a processing-time trigger (`trigger_seconds`, 1 s by default) runs until
`stop` is set (Ctrl-C in the CLI) or `max_seconds` pass. Spark runs in the command's process;
micro-batches are collected to the driver (fine at the embedded scale: `max_events_per_batch`
bounds each; at scale the write would move to the executors, per partition, with the ledger
in a shared database).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featql.core.diagnostics import did_you_mean
from featql.core.errors import UserError
from featql.core.ir import FeatureView, Manifest, Source
from featql.core.progress import SILENT, Progress
from featql.jobs import stream_state as st
from featql.jobs.stream_events import Split, set_aside_lines, split_batch
from featql.jobs.stream_follow import RELOAD_S, AppliedWatch, Follow, target_key
from featql.jobs.stream_handover import drop_logged
from featql.registry.streams import FOLDER
from featql.semantics.types import spark_type

if TYPE_CHECKING:
    from featql.core.config import ProjectConfig

MAX_EVENTS_PER_BATCH = 50_000
MAX_FILES_PER_BATCH = 100
KAFKA_TIMEOUT_MS = 10_000
BROKER_GONE_S = 15.0  # the broker has not answered for this long: stop with an error
POLL_S = 0.25
_CORRUPT = "_featql_corrupt"


class StreamError(UserError):
    """The stream cannot run or stopped: the message says why and what to do."""


class _Drained(Exception):
    """A micro-batch of a query being stopped (a reload): not applied, so not committed;
    the restarted query (or a later `featql stream`) reads it again."""


@dataclass
class SourceStats:
    """What a view checkpoint's query did, in this run (`batches`, ...) and in total
    (`total_*`)."""

    source: str
    views: tuple[str, ...]  # the one view the checkpoint feeds
    location: str  # kafka topic 'txns' on host:port, or files in 'path'
    reset: bool = False  # the checkpoint was reset: the stream location changed
    batches: int = 0
    events: int = 0  # messages read
    ingested: int = 0  # events new to the online store
    duplicates: int = 0  # events the view had (a key applied before, its backfill's, a
    # replayed batch)
    late: int = 0
    dead: int = 0  # dead letters
    lag: int | None = None  # Kafka offsets behind the latest, after the last batch
    rate: float = 0.0  # events/s of the last batch (Spark's processedRowsPerSecond)
    watermark: dt.datetime | None = None
    total_events: int = 0
    total_late: int = 0
    total_dead: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def view(self) -> str:
        return self.views[0]

    @property
    def events_per_s(self) -> float:
        spent = time.monotonic() - self.started
        return self.events / spent if spent > 0 else 0.0


@dataclass(frozen=True)
class StreamReport:
    workspace: str
    sources: tuple[SourceStats, ...]  # one per checkpoint (source, view), by source and view
    folder: Path  # .featql/stream/<workspace>
    reloads: tuple[str, ...] = ()  # what the stream did on later applies (stream_follow)

    def of(self, view: str) -> SourceStats:
        return next(s for s in self.sources if s.view == view)


ProgressFn = Callable[[Sequence[SourceStats]], None]


# -- what to stream ------------------------------------------------------------------------
def stream_targets(manifest: Manifest, views: Sequence[str] | None
                   ) -> list[tuple[Source, list[FeatureView]]]:
    """The stream sources to read and, for each, the chosen stream views over it (every
    stream view when `views` is empty), each with a checkpoint of its own."""
    streams = manifest.stream_views
    if views:
        names = [v.name for v in manifest.views]
        chosen: list[FeatureView] = []
        for name in views:
            view = manifest.view(name)
            if view is None:
                hint = did_you_mean(name, names)
                raise StreamError(f"unknown feature view '{name}'" + (f": {hint}" if hint else ""))
            if view not in streams:
                raise StreamError(
                    f"feature view '{name}' is not a stream view: no source it reads declares "
                    "`stream = ...`" + (f" (stream views: {', '.join(v.name for v in streams)})"
                                        if streams else ""))
            chosen.append(view)
    else:
        chosen = list(streams)
    if not chosen:
        raise StreamError("nothing to stream: no applied source declares `stream = kafka(...)` "
                          "or `stream = files(...)` (see docs/language.md, @source)")
    by_source: dict[str, tuple[Source, list[FeatureView]]] = {}
    for view in chosen:
        src = manifest.stream_source(view)
        assert src is not None
        by_source.setdefault(src.name, (src, []))[1].append(view)
    for src, _ in by_source.values():
        if src.stream is not None and src.stream.format == "avro":
            from featql.jobs.stream_avro import avro_schema

            try:
                avro_schema(src)  # every column has an Avro type
            except UserError as e:
                raise StreamError(str(e)) from None
    return [by_source[n] for n in sorted(by_source)]


def describe(source: Source) -> str:
    s = source.stream
    assert s is not None
    if s.kind == "kafka":
        return f"kafka topic '{s.topic}' on {s.bootstrap}"
    return f"{s.format} files in '{s.path}'"


# -- the query --------------------------------------------------------------------------------
class _ViewRun:
    """One view checkpoint's streaming query and its foreachBatch."""

    def __init__(self, root: Path, manifest: Manifest, workspace: str, source: Source,
                 view: FeatureView, config: ProjectConfig | None,
                 max_batch: int = MAX_EVENTS_PER_BATCH, reset: bool = False) -> None:
        self.root, self.manifest, self.workspace = root, manifest, workspace
        self.max_batch = max_batch
        self.source, self.view, self.config = source, view.name, config
        self.folder = st.view_folder(root, workspace, source.name, view.name)
        self.identity, was_reset = st.identity(self.folder, source, root, reset)
        self.since = st.since(self.folder)
        self.state = st.State.load(self.folder / "state.json")
        self.stats = SourceStats(source.name, (view.name,), describe(source),
                                 reset=was_reset)
        after = self.state.after
        self.stats.total_events = int(after.get("events", 0))
        self.stats.total_late = int(after.get("late", 0))
        self.stats.total_dead = int(after.get("dead", 0))
        self.stats.watermark = st.watermark(after)
        self.error: BaseException | None = None
        self.query: Any = None
        self.lock = threading.Lock()
        self.key = target_key(source, view)
        self.busy = self.draining = False  # a batch is being applied; stop taking batches

    def stop(self) -> None:
        """Stop the query between micro-batches: the batch being applied finishes, a later
        one is refused (uncommitted, read again by whoever resumes the checkpoint)."""
        with self.lock:
            self.draining = True
        while self.busy:
            time.sleep(0.02)
        if self.query is not None and self.query.isActive:
            self.query.stop()

    def batch_id(self, batch: int) -> str:
        return f"stream:{self.identity}:{batch}"

    def handle(self, frame: Any, batch: int) -> None:
        """foreachBatch: runs on the driver, one batch at a time per query."""
        with self.lock:
            if self.draining:
                raise _Drained(self.view)
            self.busy = True
        try:
            raw = frame.toArrow()
            if "content" in raw.column_names:  # parquet files, whole
                from featql.jobs.stream_events import parquet_messages

                raw = parquet_messages(raw)
            self._handle(raw, batch)
        except BaseException as e:  # kept for the report: Spark wraps it in a Java error
            self.error = e
            raise
        finally:
            self.busy = False

    def _handle(self, raw: Any, batch: int) -> None:
        from featql.jobs.ingest import ingest_events

        start = self.state.start(batch)
        mark = st.watermark(start)
        # the ledger's horizon as it was after the batch before: a replay sets the same
        # events aside
        split: Split = split_batch(self.source, raw, mark, st.from_us(start.get("horizon")))
        report = None
        had = 0
        if split.events is not None:
            split.events, had = drop_logged(self.root, self.source, split.events)
            split.events, more = st.handed_over(self.root, self.source, split.events, self.since)
            had += more
        if split.events is not None and split.events.num_rows:
            # `now` for the write path's late count: the watermark (nothing of the first batch
            # is late)
            basis = mark or split.oldest
            now = int(basis.replace(tzinfo=dt.UTC).timestamp() * 1_000_000) if basis else None
            report = ingest_events(self.root, self.manifest, self.workspace, self.source.name,
                                   split.events, now, self.batch_id(batch),
                                   config=self.config, limit=None, view=self.view)
        if report is not None and report.expired_rows is not None:  # pushes moved it on
            from featql.jobs.stream_events import SetAside, expired_reason

            for rec in report.expired_rows.to_pylist():
                split.dead.append(SetAside("ingest", json.dumps(rec, default=str),
                                           expired_reason(self.source,
                                                          rec[self.source.timestamp], "the "
                                                          "horizon")))
        self._dead_letters(batch, split)
        # late: of the events new to the store (a duplicate of an old event is no late event)
        late = report.late if report is not None and not report.replayed else 0
        newest = max((t for t in (mark, split.newest) if t is not None), default=None)
        after = {"newest": newest.isoformat() if newest else None,
                 "events": int(start.get("events", 0)) + raw.num_rows,
                 "late": int(start.get("late", 0)) + late,
                 "dead": int(start.get("dead", 0)) + len(split.dead),
                 "horizon": st.horizon(self.root, self.source.name)}
        self.state.commit(batch, start, after)
        st.summarize(self.folder.parent)
        with self.lock:
            s = self.stats
            s.batches += 1
            s.events += raw.num_rows
            s.late += late
            s.dead += len(split.dead)
            s.duplicates += had
            if report is not None:
                s.ingested += report.ingested
                s.duplicates += report.duplicates
            s.total_events, s.total_late, s.total_dead = (after["events"], after["late"],
                                                          after["dead"])
            s.watermark = newest

    def _dead_letters(self, batch: int, split: Split) -> None:
        folder = self.folder / "deadletter"
        path = folder / f"batch-{self.identity}-{batch}.jsonl"
        if not split.dead:
            path.unlink(missing_ok=True)  # a replay that now has none
            return
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(set_aside_lines(split.dead))
        os.replace(tmp, path)

    # -- the Spark side
    def frame(self, spark: Any) -> Any:
        stream = self.source.stream
        assert stream is not None
        if stream.kind == "kafka":
            try:
                kafka = (spark.readStream.format("kafka")
                         .option("kafka.bootstrap.servers", stream.bootstrap)
                         .option("subscribe", stream.topic)
                         .option("startingOffsets", "earliest")
                         .option("failOnDataLoss", "true")
                         .option("maxOffsetsPerTrigger", str(self.max_batch))
                         .option("kafka.request.timeout.ms", str(KAFKA_TIMEOUT_MS))
                         .option("kafka.default.api.timeout.ms", str(KAFKA_TIMEOUT_MS))
                         .option("fetchOffset.numRetries", "1")
                         .load())
            except Exception as e:  # pyspark's AnalysisException [DATA_SOURCE_NOT_FOUND]
                if not _no_connector(e):
                    raise
                raise StreamError(connector_missing(self.source)) from None
            if stream.format == "avro":
                return _avro_frame(kafka, self.source)
            return (kafka.selectExpr("CAST(value AS STRING) AS value",
                                "concat(CAST(partition AS STRING), ':', "
                                "CAST(offset AS STRING)) AS origin"))
        path = str(Path(stream.path) if Path(stream.path).is_absolute()
                   else self.root / stream.path)
        reader = spark.readStream.option("maxFilesPerTrigger", str(MAX_FILES_PER_BATCH))
        if stream.format == "json":  # one message per line, decoded (or refused) in Python
            frame = reader.format("text").load(path)
            return frame.selectExpr("value", "input_file_name() AS origin")
        if stream.format == "parquet":  # whole files, decoded on the driver (stream_events)
            return (reader.format("binaryFile")
                    .schema("path STRING, modificationTime TIMESTAMP, length BIGINT, "
                            "content BINARY").load(path)
                    .selectExpr("content", "path AS origin"))
        # CSV: a row that does not parse against the source's columns is kept whole in a
        # corrupt-record column (never read as NULLs), and becomes a dead letter
        schema = ", ".join(f"`{c.name}` {spark_type(c.type)}" for c in self.source.columns)
        cols = ", ".join(f"`{c.name}`" for c in self.source.columns)
        frame = (reader.schema(f"{schema}, `{_CORRUPT}` STRING").option("header", "true")
                 .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", _CORRUPT)
                 .csv(path))
        return frame.selectExpr(
            f"CASE WHEN `{_CORRUPT}` IS NULL THEN to_json(struct({cols}), "
            f"map('ignoreNullFields', 'false')) ELSE `{_CORRUPT}` END AS value",
            f"CASE WHEN `{_CORRUPT}` IS NOT NULL THEN 'csv' END AS error",
            "input_file_name() AS origin")

    def start(self, spark: Any, until_idle: bool, trigger_seconds: float) -> None:
        writer = (self.frame(spark).writeStream
                  .foreachBatch(self.handle)
                  .option("checkpointLocation", str(self.folder / "checkpoint"))
                  .queryName(f"featql_{self.workspace}_{self.view}_{self.identity}"))
        writer = (writer.trigger(availableNow=True) if until_idle
                  else writer.trigger(processingTime=f"{trigger_seconds} seconds"))
        self.query = writer.start()

    def poll(self) -> None:
        """Spark's own figures of the last batch: rate and, for Kafka, the lag."""
        progress = self.query.lastProgress if self.query is not None else None
        if not progress:
            return
        with self.lock:
            self.stats.rate = float(progress.get("processedRowsPerSecond") or 0.0)
            for src in progress.get("sources") or ():
                lag = (src.get("metrics") or {}).get("maxOffsetsBehindLatest")
                if lag is not None:
                    self.stats.lag = int(float(lag))

    def failure(self) -> StreamError | None:
        """The query's failure as a clear error, or None while it runs or when it finished."""
        exc = self.query.exception() if self.query is not None else None
        if exc is None and self.error is None:
            return None
        return explain(self.source, self.error, exc)


def _avro_frame(kafka: Any, source: Source) -> Any:
    """The topic's messages decoded by Spark's `from_avro` (`featql.jobs.stream_avro`)."""
    from featql.jobs.stream_avro import decoded_frame

    try:
        return decoded_frame(kafka, source)
    except Exception as e:  # Spark 4: AnalysisException [AVRO_NOT_LOADED_SQL_FUNCTIONS_UNUSABLE]
        if "AVRO_NOT_LOADED" not in str(e) and "JavaPackage" not in str(e):
            raise
        from featql.engines.kafka_jars import SPARK_AVRO, jars_folder

        raise StreamError(
            f"source '{source.name}' (format = avro): Spark's Avro functions (spark-avro) are "
            f"not on the SparkSession's classpath: run `make kafka` to fetch them into "
            f"{jars_folder() / SPARK_AVRO}, then restart `featql stream` (it puts them on its "
            "session when they are there; a session of your own needs "
            "featql.engines.kafka_jars.spark_kafka_conf(avro=True))") from None


def _no_connector(error: BaseException) -> bool:
    """Spark has no `kafka` data source: its connector is not on the session's classpath."""
    text = str(error)
    return "DATA_SOURCE_NOT_FOUND" in text or "Failed to find data source: kafka" in text


def connector_missing(source: Source) -> str:
    from featql.engines.kafka_jars import SPARK_KAFKA, jars_folder

    return (f"source '{source.name}' ({describe(source)}): Spark's Kafka connector is not on "
            "this stream's SparkSession (it started without the connector: it was not "
            f"fetched then): run `make kafka` to fetch it into {jars_folder() / SPARK_KAFKA}, "
            "then restart `featql stream` (every view resumes from its checkpoint; what was "
            "applied stays applied)")


def explain(source: Source, inner: BaseException | None, spark_error: Any) -> StreamError:
    """A failed query in words: the user error raised in foreachBatch as is, a missing topic, a
    broker that does not answer, else Spark's first line."""
    if isinstance(inner, StreamError):
        return inner
    if isinstance(inner, UserError):
        return StreamError(f"source '{source.name}': {inner}")
    text = str(spark_error if spark_error is not None else inner)
    stream = source.stream
    assert stream is not None
    if stream.kind == "kafka":
        if "UnknownTopicOrPartition" in text or "does not host this topic" in text:
            return StreamError(topic_missing(source))
        if "TimeoutException" in text or "Timed out" in text or "disconnected" in text:
            return StreamError(broker_gone(source))
    if inner is not None and not isinstance(inner, Exception):
        raise inner  # KeyboardInterrupt, SystemExit
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "unknown error")
    return StreamError(f"the stream of source '{source.name}' ({describe(source)}) failed: "
                       f"{first[:500]}")


def topic_missing(source: Source) -> str:
    s = source.stream
    assert s is not None
    return (f"topic '{s.topic}' does not exist on the Kafka broker {s.bootstrap} (source "
            f"'{source.name}'): create it, or fix stream = kafka(topic = ...)")


def broker_gone(source: Source) -> str:
    s = source.stream
    assert s is not None
    return (f"the Kafka broker {s.bootstrap} of source '{source.name}' does not answer: start "
            "it (or fix bootstrap = ...) and run `featql stream` again; it resumes from its "
            "checkpoint, and what was applied stays applied")


def run_stream(root: Path | str, manifest: Manifest, workspace: str,
               views: Sequence[str] | None = None, *, until_idle: bool = False,
               trigger_seconds: float = 1.0, config: ProjectConfig | None = None,
               on_progress: ProgressFn | None = None, stop: threading.Event | None = None,
               max_seconds: float | None = None, spark: Any = None,
               max_batch: int = MAX_EVENTS_PER_BATCH, reset: bool = False,
               applied_id: int | None = None, reload_seconds: float = RELOAD_S,
               progress: Progress = SILENT) -> StreamReport:
    """Stream the chosen views into the workspace, one checkpoint each (see the module doc);
    `max_batch`: Kafka messages per micro-batch at most; `reset`: start the chosen views'
    checkpoints again (only with `views`: a sibling is never reset with them);
    `applied_id`: the apply `manifest` is, to follow the later ones (`stream_follow`: the
    registry asked every `reload_seconds`; what is done is reported to `progress` as one-step
    tasks, and in the report's `reloads`); None: run `manifest` only."""
    root = Path(root)
    if reset and not views:
        raise StreamError("a reset names the views whose checkpoints to start again "
                          "(--view V --reset): their siblings keep theirs")
    targets = stream_targets(manifest, views)
    _mark_since(root, manifest, workspace, [src for src, _ in targets])
    runs = [_ViewRun(root, manifest, workspace, src, v, config, max_batch, reset)
            for src, vs in targets for v in sorted(vs, key=lambda v: v.name)]
    kafka = [r.source for r in runs if r.source.stream is not None
             and r.source.stream.kind == "kafka"]
    from featql.jobs.stream_kafka import BrokerWatch, check_topics

    check_topics(kafka)
    if spark is None:
        spark = _session(config, bool(kafka), any(
            s.stream is not None and s.stream.format == "avro" for s in kafka))
    watch = BrokerWatch(kafka)
    done: list[str] = []

    def start(run: _ViewRun) -> None:
        run.start(spark, until_idle, trigger_seconds)
        watch.add(run.source)  # a Kafka view applied later: its broker watched too

    follow = None if applied_id is None else Follow(
        AppliedWatch(root, workspace, applied_id, reload_seconds), views, start,
        lambda m, srcs: _mark_since(root, m, workspace, srcs),
        lambda m, src, v: _ViewRun(root, m, workspace, src, v, config, max_batch),
        progress, done)
    try:
        for run in runs:
            start(run)
        _wait(runs, watch, until_idle, on_progress, stop, max_seconds, follow)
    finally:
        watch.close()
        for run in runs:
            if run.query is not None and run.query.isActive:
                run.query.stop()
    for run in runs:
        run.poll()
    runs.sort(key=lambda r: (r.source.name, r.view))
    return StreamReport(workspace, tuple(replace(r.stats) for r in runs),
                        root / FOLDER / workspace, tuple(done))


def _mark_since(root: Path, manifest: Manifest, workspace: str,
                sources: Sequence[Source]) -> None:
    """`since` of every stream view over `sources`, chosen or not (stream_state.since)."""
    for src in sources:
        for view in manifest.stream_views:
            if manifest.stream_source(view) == src:
                st.mark_since(st.view_folder(root, workspace, src.name, view.name), root)


def _wait(runs: list[_ViewRun], watch: Any, until_idle: bool,
          on_progress: ProgressFn | None, stop: threading.Event | None,
          max_seconds: float | None, follow: Follow[_ViewRun] | None = None) -> None:
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    while True:
        if follow is not None:
            follow(runs)
        for run in runs:
            run.poll()
            failure = run.failure()
            if failure is not None:
                raise failure
        gone = watch.gone()
        if gone is not None and any(r.source.name == gone.name for r in runs):  # still read
            raise StreamError(broker_gone(gone))
        if on_progress is not None:
            on_progress([r.stats for r in runs])
        if until_idle and not any(r.query.isActive for r in runs):
            for run in runs:  # a query that ended with an error
                failure = run.failure()
                if failure is not None:
                    raise failure
            if follow is not None:  # a last look: a view applied meanwhile is run too
                follow(runs, force=True)
                if any(r.query.isActive for r in runs):
                    continue
            return
        if (stop is not None and stop.is_set()) or (
                deadline is not None and time.monotonic() >= deadline):
            return
        time.sleep(POLL_S)


def _session(config: ProjectConfig | None, kafka: bool, avro: bool = False) -> Any:
    """The stream's SparkSession. Spark's Kafka connector (and spark-avro) goes on it whenever
    `make kafka` fetched it, Kafka views or not: the classpath is fixed once the JVM starts,
    and an apply may add a Kafka view to a running files stream (`stream_follow`). Missing, it
    is an error only when a Kafka view runs now (a later one is refused: `connector_missing`).
    The project's own `spark.jars` are kept."""
    from featql.engines.kafka_jars import KafkaJarsMissing, spark_kafka_conf
    from featql.engines.spark import spark_session

    conf = dict(config.spark_conf) if config is not None else {}
    try:
        extra = spark_kafka_conf(avro=avro)
    except KafkaJarsMissing:
        if kafka:
            raise
        extra = {}
    jars = [j for j in (conf.get("spark.jars", ""), extra.get("spark.jars", "")) if j]
    if jars:
        conf["spark.jars"] = ",".join(jars)
    master = config.spark_master if config is not None else "local[2]"
    return spark_session(master, conf)
