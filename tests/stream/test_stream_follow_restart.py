"""A stream view changed while `featql stream` runs (issue 13) restarts on its new definition,
end to end on a files stream: events streamed; `user_aggs`' filter changed and applied (its
backfill); its query restarted from its checkpoint (part-1 not read again); new events
streamed, then `materialize --online` (as documented: until then the view's online cells hold
only what streamed since the restart), then more events; the online values and a training set
equal the oracle of the new definition over every event, and the sibling `user_last` kept its
query (never restarted, each event applied once)."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from featql.jobs.materialize import materialize
from featql.registry import load_applied

from .project import START, USERS, close, expected, make_events
from .running import RunningStream
from .test_stream_files import _files_project
from .test_stream_follow import _apply, _drop

_SWAP = {"web": "test", "test": "web"}


def _oracle(events: list[dict[str, Any]], user: int, t: dt.datetime) -> dict[str, Any]:
    """svc's values under the new definition (`WHERE channel <> 'web'`): `expected` (which
    filters out 'test') over the events with 'web' and 'test' swapped, for `user_aggs`;
    `user_last` (unchanged) over the events as they are."""
    swapped = [{**e, "channel": _SWAP.get(e["channel"], e["channel"])} for e in events]
    new = expected(swapped, user, t)
    old = expected(events, user, t)
    return {k: (new if k.startswith("user_aggs.") else old)[k] for k in old}


def _check(root: Path, events: list[dict[str, Any]], times: list[dt.datetime]) -> int:
    """Online lookups and a training set of `svc` at `times` equal `_oracle`; the number of
    user_aggs values where the old definition would have given something else."""
    from featql.api import Project

    project = Project(root)
    differ = 0
    spine, wanted = [], []
    for t in times:
        rows = project.online("svc", [{"user_id": u} for u in USERS], at=t)
        for u, row in zip(USERS, rows, strict=True):
            want = _oracle(events, u, t)
            bad = {k: (row.get(k), v) for k, v in want.items() if not close(row.get(k), v)}
            assert bad == {}, ("online", u, t, bad)
            old = expected(events, u, t)
            differ += sum(not close(old[k], v) for k, v in want.items())
            spine.append({"user_id": u, "ts": t})
            wanted.append(want)
    table = project.training_set("svc", pa.Table.from_pylist(spine, schema=pa.schema(
        [("user_id", pa.int64()), ("ts", pa.timestamp("us"))]))).to_pylist()
    for row, want, at in zip(table, wanted, spine, strict=True):
        bad = {k: (row[k.replace(".", "__")], v) for k, v in want.items()
               if not close(row[k.replace(".", "__")], v)}
        assert bad == {}, ("training", at, bad)
    return differ


@pytest.mark.slow
def test_a_changed_view_restarts_on_its_new_definition(spark: Any, tmp_path: Path) -> None:
    root = _files_project(tmp_path / "proj")
    _apply(root)
    ws = load_applied(root, None).workspace
    rng = random.Random(31)
    first = make_events(rng, 0, 80, START, 3)
    _drop(root, "part-1.json", first)
    running = RunningStream(root, spark).start()
    try:
        running.until(lambda: running.counts("user_aggs")[1] == 80
                      and running.counts("user_last")[1] == 80, "both stream part-1")
        aggs_before, last_before = running.stats["user_aggs"], running.stats["user_last"]
        view = root / "views/user_aggs.sql"
        sql = view.read_text()
        assert "WHERE channel <> 'test'" in sql
        view.write_text(sql.replace("WHERE channel <> 'test'", "WHERE channel <> 'web'"))
        _apply(root)  # backfills the new definition from the log (part-1 is in it)
        running.until(lambda: running.noted("user_aggs changed"), "user_aggs restarted")
        second = make_events(rng, 500, 30, START + dt.timedelta(hours=3), 1)
        _drop(root, "part-2.json", second)
        running.until(lambda: running.counts("user_aggs")[1] == 110
                      and running.counts("user_last")[1] == 110, "both stream part-2")
        # its online cells from the backfill and the log (the documented `materialize
        # --online`), part-2 streamed already: each event once
        materialize(root, load_applied(root, None).run_manifest, ws, views=["user_aggs"],
                    online=True)
        third = make_events(rng, 900, 10, START + dt.timedelta(hours=4), 1)
        _drop(root, "part-3.json", third)
        running.until(lambda: running.counts("user_aggs")[1] == 120
                      and running.counts("user_last")[1] == 120, "both stream part-3")
        aggs_after, last_after = running.stats["user_aggs"], running.stats["user_last"]
    finally:
        running.stop()
    report = running.stop()
    assert aggs_after is not aggs_before  # a new query for user_aggs ...
    assert last_after is last_before  # ... and the very same one for user_last
    # from its checkpoint: part-1 not read again (its counters carried over); each event once
    assert [(s.view, s.events, s.ingested, s.duplicates, s.dead, s.reset)
            for s in report.sources] == [("user_aggs", 120, 120, 0, 0, False),
                                         ("user_last", 120, 120, 0, 0, False)]
    assert report.reloads == ("apply #2 of workspace 'dev': user_aggs changed: its query "
                              "restarted on the new definition, from its checkpoint; once its "
                              "backfill is done, `featql materialize --online` loads it into "
                              "the online store (until then the view's online values hold "
                              "only what streamed since)",)

    everything = first + second + third
    last = max(e["event_ts"] for e in everything)
    times = [last + dt.timedelta(microseconds=1), last + dt.timedelta(minutes=9),
             last.replace(minute=0, second=0) + dt.timedelta(hours=1),
             last + dt.timedelta(hours=2, minutes=30)]  # the 1d windows hold every event
    assert _check(root, everything, times) > 0  # the new definition shows
