"""Pushes into a source without a stream: its aggregate views keep the batch window
`[floor(t,S) - W, floor(t,S))` online, as in training sets; a pushed event counts once its
slide is over, and the training set from the log agrees."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from featql.core.config import load_config
from featql.core.diagnostics import Diagnostics
from featql.jobs.ingest import ingest_events
from featql.jobs.training import training_set
from featql.online import codec
from featql.online.lookup import OnlineService
from featql.online.stores import open_store


def test_batch_views_count_a_pushed_event_once_its_slide_is_over(stream_project) -> None:
    root, manifest = stream_project(stream=False)
    records = [{"event_id": i, "user_id": 5, "amount": 2.0 * i, "kind": "a",
                "ts": f"2024-03-02T10:{10 * i:02d}:00"} for i in range(1, 4)]
    rep = ingest_events(root, manifest, "dev", "events", records)
    assert (rep.ingested, rep.late) == (3, 0)  # no lateness without a stream
    config = load_config(root, "featql.toml", Diagnostics())
    online = OnlineService(manifest, open_store(config, root, "dev"), root)
    times = [dt.datetime(2024, 3, 2, 10, 45), dt.datetime(2024, 3, 2, 11),
             dt.datetime(2024, 3, 2, 11, 59), dt.datetime(2024, 3, 2, 12, 30)]
    got = [online.lookup("aggs", [{"user_id": 5}], None, codec.to_micros(t))[0][0]
           for t in times]
    assert [g["user_aggs.n_events_1h"] for g in got] == [0, 3, 3, 0]
    assert [g["user_aggs.n_events_2h"] for g in got] == [0, 3, 3, 3]
    assert got[1]["user_aggs.f_sum_1h"] == 12.0
    spine = pa.table({"user_id": pa.array([5] * len(times), pa.int64()),
                      "ts": pa.array(times, pa.timestamp("us"))})
    train = training_set(root, manifest, config, "aggs", spine, workspace="dev",
                         use_store=False)
    for w in ("1h", "2h", "1d"):
        assert train.column(f"user_aggs__n_events_{w}").to_pylist() == \
            [g[f"user_aggs.n_events_{w}"] for g in got]
        assert train.column(f"user_aggs__f_sum_{w}").to_pylist() == \
            [g[f"user_aggs.f_sum_{w}"] for g in got]


CODES = ("-- @feature_view(name = user_codes, entity = user, timestamp = ts, ttl = '7d',\n"
         "--               schedule = '1d', start = '2024-03-01')\n"
         "SELECT user_id, ts, CAST(kind AS INT) AS code FROM events\n")


def test_a_view_failing_on_the_records_refuses_the_push_and_keeps_nothing(stream_project
                                                                           ) -> None:
    import pytest

    from featql.jobs.ingest_log import locked
    from featql.online.lookup import RequestError

    root, manifest = stream_project(extra={"views/user_codes.sql": CODES})
    bad = [{"event_id": 1, "user_id": 5, "amount": 1.0, "kind": "x",
            "ts": "2024-03-02T10:00:00"}]
    with pytest.raises(RequestError) as refused:
        ingest_events(root, manifest, "dev", "events", bad)
    assert (refused.value.status, refused.value.code) == (422, "view_failed")
    assert "user_codes" in refused.value.message
    with locked(root) as ledger:
        assert ledger.counts("events") == 0 and not ledger.unfinished()
    assert not (root / "data/events/ingest").exists()
    good = [{**bad[0], "kind": "7"}]  # the same event, now valid: ingested, not a duplicate
    rep = ingest_events(root, manifest, "dev", "events", good)
    assert (rep.ingested, rep.duplicates) == (1, 0)
