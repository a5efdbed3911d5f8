"""The hand-over from the backfill to pushes inside the slide the backfill ended in (issue 13
item 5): `materialize --online` backfills the stream view from its batch log, whose newest
event is in the middle of a slide; pushed events after it land in that same slide. A lookup
inside that slide (before and after the backfill's end, before and after the first push) must
give the training set's value and the oracle's: the slide's head = the backfilled events up to
the backfill's end + the pushed ones, no gap, no double count, for every aggregate function."""

from __future__ import annotations

import datetime as dt
import random

from featql.compiler.project import compile_project
from featql.jobs.ingest import ingest_events
from featql.jobs.materialize import materialize
from featql.semantics.aggregates import FUNCTIONS

from .handover import as_json, check, make_events
from .project import events_table, write_project

DAY = dt.datetime(2024, 3, 2)
END = DAY + dt.timedelta(hours=10, minutes=30)  # the backfill ends inside the 10:00 slide
SLIDE_START = DAY + dt.timedelta(hours=10)


def _times(rng: random.Random, events: list[dict], n: int) -> list[dt.datetime]:
    """Inside the backfill's last slide (before and after its end), at its boundaries, at
    events and just after them, and later (earlier slides: the online store keeps the tiles of
    the longest window before that slide, a lookup before is refused, as before a load)."""
    times = [SLIDE_START, SLIDE_START + dt.timedelta(hours=1), END,
             END + dt.timedelta(microseconds=1), END - dt.timedelta(microseconds=1)]
    times += [SLIDE_START + dt.timedelta(microseconds=rng.randrange(3600 * 1_000_000))
              for _ in range(n // 2)]
    recent = [e for e in events if e["ts"] >= SLIDE_START]  # earlier: before the tiles kept
    for e in rng.sample(recent, min(10, len(recent))):
        times += [e["ts"], e["ts"] + dt.timedelta(microseconds=1)]
    while len(times) < n:
        times.append(SLIDE_START + dt.timedelta(microseconds=rng.randrange(6 * 3600 * 10**6)))
    return times


def test_lookups_inside_the_backfills_last_slide_are_exact(tmp_path) -> None:
    rng = random.Random(5)
    history = make_events(rng, 0, 300, DAY, END)
    history[-1]["ts"] = END  # the backfill's end is an event time
    root = write_project(tmp_path / "proj", rows=events_table(history))
    result = compile_project(root)
    assert result.ok, [d.headline() for d in result.diagnostics]
    manifest = result.manifest
    view = manifest.view("user_aggs")
    assert view is not None and len(view.aggregations) == len(FUNCTIONS) + 1

    report = materialize(root, manifest, "dev", online=True)
    loads = {v.view: v for v in report.online.views}
    assert loads["user_aggs"].through == "2024-03-02T11:00:00"  # the load ends after 10:00's
    # right after the backfill: lookups inside 10:00-11:00 give the exact head already
    checked = check(root, manifest, history, _times(rng, history, 40))
    assert checked >= 40 * 3 * 3 * len(view.aggregations)

    # pushes: the rest of the 10:00 slide (after the backfill's end), later slides, and late
    # events inside the backfill's slides that the batch log did not have
    after = make_events(rng, 10_000, 120, END + dt.timedelta(microseconds=1),
                        DAY + dt.timedelta(hours=13))
    late = make_events(rng, 20_000, 20, DAY + dt.timedelta(hours=8), END)
    pushed = after + late
    rng.shuffle(pushed)
    for i in range(0, len(pushed), 23):
        rep = ingest_events(root, manifest, "dev", "events", as_json(pushed[i:i + 23]))
        assert rep.ingested == len(pushed[i:i + 23])
    everything = history + pushed
    times = _times(rng, everything, 80)
    inside = [t for t in times if SLIDE_START < t < SLIDE_START + dt.timedelta(hours=1)]
    assert len(inside) >= 40 and any(t < END for t in inside) and any(t > END for t in inside)
    check(root, manifest, everything, times)

    # a second `materialize --online` after the pushes (their log files are new files): the
    # load now ends after the 12:00 slide, whose head is opened the same way; more pushes
    report = materialize(root, manifest, "dev", online=True)
    assert {v.view: v for v in report.online.views}["user_aggs"].through == \
        "2024-03-02T13:00:00"
    more = make_events(rng, 30_000, 60, DAY + dt.timedelta(hours=12, minutes=40),
                       DAY + dt.timedelta(hours=14))
    for i in range(0, len(more), 17):
        ingest_events(root, manifest, "dev", "events", as_json(more[i:i + 17]))
    everything += more
    times = [DAY + dt.timedelta(hours=12, minutes=m, seconds=rng.randrange(60))
             for m in range(0, 150, 3)] + [e["ts"] for e in more[:10]]
    check(root, manifest, everything, times)


def test_batch_log_events_after_the_materialized_range_are_online(tmp_path) -> None:
    """A batch log whose newest events are after the last interval `materialize` computes
    (`--end`): the stream drops events whose key is in the batch log (`drop_logged`), so the
    online cells of a stream view come from the log itself, every event of it, whatever
    `--end` (the offline store stops there)."""
    rng = random.Random(8)
    history = make_events(rng, 0, 200, DAY, END)
    root = write_project(tmp_path / "proj", rows=events_table(history))
    manifest = compile_project(root).manifest
    report = materialize(root, manifest, "dev", end="2024-03-02T09:00", online=True)
    assert [v.written for v in report.views if v.view == "user_aggs"] == [33]  # to 09:00
    assert {v.view: v for v in report.online.views}["user_aggs"].through == \
        "2024-03-02T11:00:00"
    times = [END + dt.timedelta(minutes=m) for m in (1, 20, 45, 90)]
    times += [SLIDE_START + dt.timedelta(minutes=m) for m in (0, 1, 30, 59)]
    assert check(root, manifest, history, times) > 0
