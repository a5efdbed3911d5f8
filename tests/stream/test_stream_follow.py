"""A running `featql stream` follows the workspace's applies (issue 13; PRODUCT §3: what runs is
what was applied): a stream view applied while it runs gets its own query and checkpoint,
starting where its backfill ended (no gap, no double count at the hand-over), a view removed
has its query stopped, and `--until-idle` still ends. A files stream: no broker."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest

from featql.cli.main import main
from featql.jobs.materialize import materialize
from featql.jobs.stream import run_stream
from featql.jobs.stream_follow import reload_plan, target_key
from featql.jobs.stream_state import view_folder
from featql.registry import load_applied

from .project import START, check_online_and_training, make_events, message
from .running import RunningStream
from .test_stream_files import _files_project

BOTH = "-- @feature_service(name = svc, features = [user_aggs.*, user_last.*])\n"


def _drop(root: Path, name: str, events: list[dict[str, Any]]) -> None:
    tmp = root / "data" / f".{name}"
    tmp.write_bytes(b"\n".join(message(e) for e in events) + b"\n")
    tmp.rename(root / "data/txns_stream" / name)  # whole, as Spark's files source expects


def _apply(root: Path) -> None:
    assert main(["apply", "--project", str(root), "--yes"]) == 0


@pytest.mark.slow
def test_a_running_stream_follows_the_applies(spark: Any, tmp_path: Path) -> None:
    root = _files_project(tmp_path / "proj")
    aggs_sql = (root / "views/user_aggs.sql").read_text()
    (root / "views/user_aggs.sql").unlink()  # first applied: user_last alone
    (root / "services/svc.sql").write_text(
        "-- @feature_service(name = svc, features = [user_last.*])\n")
    _apply(root)
    applied = load_applied(root, None)
    ws = applied.workspace
    rng = random.Random(11)
    first = make_events(rng, 0, 80, START, 3)
    _drop(root, "part-1.json", first)

    running = RunningStream(root, spark).start()
    until = running.until
    try:
        until(lambda: running.counts("user_last")[1] == 80, "user_last streams part-1")
        # apply user_aggs (its offline backfill runs with the apply) while the stream runs
        (root / "views/user_aggs.sql").write_text(aggs_sql)
        (root / "services/svc.sql").write_text(BOTH)
        _apply(root)
        until(lambda: running.noted("user_aggs added"), "user_aggs noticed")
        # its online backfill: the log's events (part-1's) once; its query skips them
        both = load_applied(root, None).run_manifest
        materialize(root, both, ws, views=["user_aggs"], online=True)
        second = make_events(rng, 500, 20, START + dt.timedelta(hours=3), 1)
        _drop(root, "part-2.json", second)
        until(lambda: running.counts("user_aggs")[1] == 20
              and running.counts("user_last")[1] == 100, "both stream part-2")
        assert running.counts("user_aggs") == (100, 20, 80)  # part-1: its backfill's, skipped
        everything = first + second
        last = max(e["event_ts"] for e in everything)
        times = [last + dt.timedelta(microseconds=1), last + dt.timedelta(minutes=9),
                 last + dt.timedelta(hours=1), last + dt.timedelta(hours=2, minutes=30)]
        assert check_online_and_training(root, everything, times) > 0

        # user_last removed: its query stops, user_aggs goes on
        (root / "views/user_last.sql").unlink()
        (root / "services/svc.sql").write_text(
            "-- @feature_service(name = svc, features = [user_aggs.*])\n")
        _apply(root)
        until(lambda: running.noted("user_last is no longer applied"),
              "user_last removed")
        until(lambda: "user_last" not in running.stats, "user_last's query gone")
        third = make_events(rng, 900, 10, START + dt.timedelta(hours=4), 1)
        _drop(root, "part-3.json", third)
        until(lambda: running.counts("user_aggs")[1] == 30, "user_aggs streams part-3")
    finally:
        running.stop()
    report = running.stop()
    assert [s.view for s in report.sources] == ["user_aggs"]
    assert len(report.reloads) == 2 and report.reloads == tuple(running.notes.lines)
    state = json.loads((view_folder(root, ws, "txns", "user_last") / "state.json").read_text())
    assert state["after"]["events"] == 100  # stopped before part-3

    # --until-idle still ends, with nothing new to read
    latest = load_applied(root, None)
    idle = run_stream(root, latest.run_manifest, ws, until_idle=True, spark=spark,
                      applied_id=latest.apply_id)
    assert [(s.view, s.events, s.ingested) for s in idle.sources] == [("user_aggs", 0, 0)]
    assert idle.reloads == ()


def test_the_reload_plan_starts_stops_and_restarts(tmp_path: Path) -> None:
    """Which queries a newer apply adds, removes, restarts (a view's or its source's
    declaration changed) or keeps: no Spark."""
    from featql.compiler.project import compile_project

    root = _files_project(tmp_path / "proj")
    m1 = compile_project(root).manifest
    running = {v.name: target_key(src, v) for v in m1.stream_views
               if (src := m1.stream_source(v)) is not None}
    assert sorted(running) == ["user_aggs", "user_last"]
    same = reload_plan(running, m1, None)
    assert same.empty and same.kept == ("user_aggs", "user_last")
    last = root / "views/user_last.sql"
    last.write_text(last.read_text().replace("amount AS last_amount", "amount * 2 AS "
                                             "last_amount"))
    (root / "views/user_aggs.sql").unlink()
    (root / "services/svc.sql").write_text(
        "-- @feature_service(name = svc, features = [user_last.*])\n")
    m2 = compile_project(root).manifest
    plan = reload_plan(running, m2, None)
    assert (plan.removed, [v.name for _, v in plan.changed], plan.added, plan.kept) == (
        ("user_aggs",), ["user_last"], (), ())
    # only the named views are followed
    assert reload_plan({"user_last": running["user_last"]}, m1, ["user_last"]).empty
    # the source's stream location changed: its views restart (their checkpoints reset)
    src = root / "sources/txns.sql"
    src.write_text(src.read_text().replace("data/txns_stream/", "data/txns_stream2/"))
    (root / "data/txns_stream2").mkdir()
    m3 = compile_project(root).manifest
    plan = reload_plan({"user_last": target_key(*m2_target(m2))}, m3, None)
    assert [v.name for _, v in plan.changed] == ["user_last"]
    # a view applied later: added
    plan = reload_plan({}, m3, None)
    assert [v.name for _, v in plan.added] == ["user_last"]


def m2_target(manifest: Any) -> tuple[Any, Any]:
    view = manifest.view("user_last")
    return manifest.stream_source(view), view


@pytest.mark.slow
def test_events_around_the_apply_of_a_view_count_once_in_it(spark: Any, tmp_path: Path) -> None:
    """A stream aggregate view applied while the stream runs, with events logged before the
    apply (streamed by its sibling's query, and pushed), pushed during it, logged by the
    sibling's query between the stream noticing it and its online backfill (the race: the
    view's own query reads those only after the backfill, which has them from the log), and
    arriving after: its online values and the training set equal the oracle's, each event
    once."""
    from featql.jobs.ingest import ingest_events

    root = _files_project(tmp_path / "proj")
    aggs_sql = (root / "views/user_aggs.sql").read_text()
    (root / "views/user_aggs.sql").unlink()
    (root / "services/svc.sql").write_text(
        "-- @feature_service(name = svc, features = [user_last.*])\n")
    _apply(root)
    applied = load_applied(root, None)
    ws = applied.workspace
    rng = random.Random(23)

    def push(manifest: Any, events: list[dict[str, Any]], **kw: Any) -> Any:
        return ingest_events(root, manifest, ws, "txns",
                             [json.loads(message(e)) for e in events], **kw)

    streamed = make_events(rng, 0, 60, START, 3)
    _drop(root, "part-1.json", streamed)
    running = RunningStream(root, spark).start()
    until = running.until
    try:
        until(lambda: running.counts("user_last")[1] == 60, "user_last streams part-1")
        before = make_events(rng, 1000, 15, START + dt.timedelta(hours=1), 2)
        assert push(applied.run_manifest, before).ingested == 15  # user_last's manifest
        (root / "views/user_aggs.sql").write_text(aggs_sql)
        (root / "services/svc.sql").write_text(BOTH)
        _apply(root)
        both = load_applied(root, None).run_manifest
        during = make_events(rng, 2000, 12, START + dt.timedelta(hours=2), 2)
        assert push(both, during).ingested == 12  # the stream may not know of the apply yet
        until(lambda: running.noted("user_aggs added"), "user_aggs noticed")
        # user_last's query takes these first (the very call its micro-batch makes), the
        # online backfill then reads them from the log, and user_aggs's query reads them
        # from the stream after it
        raced = make_events(rng, 3000, 20, START + dt.timedelta(hours=3), 1)
        rep = push(both, raced, batch_id="stream:sibling:0", view="user_last", limit=None)
        assert (rep.ingested, rep.logged) == (20, 20)
        materialize(root, both, ws, views=["user_aggs"], online=True)
        after = make_events(rng, 4000, 25, START + dt.timedelta(hours=3, minutes=30), 1)
        _drop(root, "part-2.json", raced + after)
        until(lambda: running.counts("user_aggs")[0] == 105
              and running.counts("user_last")[0] == 105, "both stream part-2")
        pushed_after = make_events(rng, 5000, 10, START + dt.timedelta(hours=4), 1)
        assert push(both, pushed_after).ingested == 10
        # user_aggs's query: part-1 is its backfill's (before its since), the raced events
        # are in its backfill too; only part-2's new events are its own
        assert running.counts("user_aggs") == (105, 25, 80), running.stats
        assert running.counts("user_last") == (105, 85, 20), running.stats
        everything = streamed + before + during + raced + after + pushed_after
        last = max(e["event_ts"] for e in everything)
        times = [last + dt.timedelta(microseconds=1), last + dt.timedelta(minutes=9),
                 last + dt.timedelta(hours=1), last + dt.timedelta(hours=2, minutes=30)]
        assert check_online_and_training(root, everything, times) > 0
        inside = [START + dt.timedelta(hours=h, minutes=10) for h in range(1, 5)]
        assert check_online_and_training(root, everything, inside, online=False) > 0
    finally:
        running.stop()
    running.stop()  # its error, if it got one


def test_an_online_load_marks_what_it_holds_applied_to_the_view(tmp_path: Path) -> None:
    """The ledger side of the race above, no Spark: events a sibling's query logged before a
    stream view's online load are in the load's cells; the view's own query (the same call
    its micro-batch makes) and a push of them later skip them, the new ones count once."""
    from featql.jobs.ingest import ingest_events
    from featql.jobs.ingest_log import locked

    root = _files_project(tmp_path / "proj")
    _apply(root)
    applied = load_applied(root, None)
    manifest, ws = applied.run_manifest, applied.workspace
    rng = random.Random(5)

    def call(events: list[dict[str, Any]], **kw: Any) -> Any:
        return ingest_events(root, manifest, ws, "txns",
                             [json.loads(message(e)) for e in events], limit=None, **kw)

    sibling = make_events(rng, 0, 40, START, 2)
    assert call(sibling, batch_id="stream:last:0", view="user_last").logged == 40
    materialize(root, manifest, ws, views=["user_aggs"], online=True)
    with locked(root) as ledger:  # the load marked the log's identities for user_aggs
        assert ledger.known_views("txns", [str(e["txn_id"]) for e in sibling], ws) == {
            str(e["txn_id"]): {"user_last", "user_aggs"} for e in sibling}
    new = make_events(rng, 100, 30, START + dt.timedelta(hours=2), 1)
    rep = call(sibling + new, batch_id="stream:aggs:0", view="user_aggs")
    assert (rep.ingested, rep.duplicates, rep.logged) == (30, 40, 30)
    rep = call(sibling + new, batch_id="stream:last:1", view="user_last")  # its query too
    assert (rep.ingested, rep.duplicates, rep.logged) == (30, 40, 0)
    call(sibling[:10])  # a push of some again: every view has them, no cell changes
    everything = sibling + new
    last = max(e["event_ts"] for e in everything)
    times = [last + dt.timedelta(microseconds=1), last + dt.timedelta(minutes=30),
             last + dt.timedelta(hours=1, minutes=5)]
    assert check_online_and_training(root, everything, times) > 0


@pytest.mark.slow
def test_a_view_loaded_before_its_first_stream_run_misses_nothing(spark: Any,
                                                                    tmp_path: Path) -> None:
    """A stream view applied and loaded online while its sibling's query runs alone (a
    `featql stream --view user_last` process), its own query started only later: what the
    sibling logged between the load and that start is the view's query's to apply (the load
    does not hold it), and what the load holds it skips."""
    from featql.jobs.ingest import ingest_events

    root = _files_project(tmp_path / "proj")
    aggs_sql = (root / "views/user_aggs.sql").read_text()
    (root / "views/user_aggs.sql").unlink()
    (root / "services/svc.sql").write_text(
        "-- @feature_service(name = svc, features = [user_last.*])\n")
    _apply(root)
    ws = load_applied(root, None).workspace
    rng = random.Random(31)

    def sibling(manifest: Any, events: list[dict[str, Any]], n: int) -> None:
        """user_last's query's micro-batch n (the call it makes), of a file it read."""
        _drop(root, f"part-{n}.json", events)
        rep = ingest_events(root, manifest, ws, "txns",
                            [json.loads(message(e)) for e in events],
                            batch_id=f"stream:last:{n}", limit=None, view="user_last")
        assert rep.logged == len(events)

    first = make_events(rng, 0, 40, START, 2)
    sibling(load_applied(root, None).run_manifest, first, 1)
    (root / "views/user_aggs.sql").write_text(aggs_sql)
    (root / "services/svc.sql").write_text(BOTH)
    _apply(root)
    latest = load_applied(root, None)
    materialize(root, latest.run_manifest, ws, views=["user_aggs"], online=True)
    later = make_events(rng, 500, 30, START + dt.timedelta(hours=2), 1)
    sibling(latest.run_manifest, later, 2)
    report = run_stream(root, latest.run_manifest, ws, ["user_aggs"], until_idle=True,
                        spark=spark)
    aggs = report.of("user_aggs")
    assert (aggs.events, aggs.ingested, aggs.duplicates) == (70, 30, 40)
    everything = first + later
    last = max(e["event_ts"] for e in everything)
    times = [last + dt.timedelta(microseconds=1), last + dt.timedelta(minutes=20),
             last + dt.timedelta(hours=1, minutes=5)]
    assert check_online_and_training(root, everything, times) > 0
