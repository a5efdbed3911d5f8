"""Pushes onto cells the online load compacted (issue 14, now the default): a view with a
13-day window on a 1-hour slide is loaded compacted (FQC1), events are pushed into its source,
and lookups of every window of every function at many times up to the compaction horizon equal
the training set from the log and the brute-force oracle (before, its long windows were refused
until the next load)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pyarrow as pa

from featql.compiler.project import compile_project
from featql.core.config import load_config
from featql.core.diagnostics import Diagnostics
from featql.jobs.ingest import ingest_events
from featql.jobs.materialize import materialize
from featql.jobs.training import training_set
from featql.online import codec
from featql.online.lookup import OnlineService
from featql.online.stores import open_store

from .handover import USERS, as_json, make_events, same
from .oracle import aggregate, window_events
from .project import aggregate_calls, events_table, write_project

START = dt.datetime(2024, 3, 1)
END = dt.datetime(2024, 3, 16, 9)
WINDOWS = {"1h": 3600, "1d": 86400, "13d": 13 * 86400}
select = ",\n       ".join(f"{call} AS {name}" for name, call in aggregate_calls().items())
LONG = {
    "views/user_long.sql":
        "-- @feature_view(name = user_long, entity = user, timestamp = ts,\n"
        "--               windows = ['1h', '1d', '13d'], slide = '1h', start = '2024-03-01')\n"
        f"SELECT user_id,\n       {select}\nFROM events\nWHERE kind <> 'test'\nGROUP BY user_id\n",
    "services/long.sql": "-- @feature_service(name = long, features = [user_long.*])\n",
}


def _check(root: Any, manifest: Any, events: list[dict[str, Any]], times: list[dt.datetime]
           ) -> int:
    config = load_config(root, "featql.toml", Diagnostics())
    store = open_store(config, root, "dev")
    rows, spine_users, at = [], [], []
    try:
        service = OnlineService(manifest, store, root)
        for t in times:
            for u in USERS:
                rows.append(service.lookup("long", [{"user_id": u}], None,
                                           codec.to_micros(t))[0][0])
                spine_users.append(u)
                at.append(t)
    finally:
        store.close()
    spine = pa.table({"user_id": pa.array(spine_users, pa.int64()),
                      "ts": pa.array(at, pa.timestamp("us"))})
    train = training_set(root, manifest, config, "long", spine, workspace="dev",
                         use_store=False)
    view = manifest.view("user_long")
    checked = 0
    for r, (u, t, got) in enumerate(zip(spine_users, at, rows, strict=True)):
        floor_t = t.replace(minute=0, second=0, microsecond=0)  # the batch window
        for w, seconds in WINDOWS.items():
            evs = window_events(events, u, floor_t, seconds, 3600)
            for a in view.aggregations:
                column = "kind" if a.function in ("top_k", "approx_count_distinct") else "amount"
                values = [1 for _ in evs] if a.name == "n_events" else [e[column] for e in evs]
                name = "count_star" if a.name == "n_events" else a.function
                want = aggregate(name, values, tuple(getattr(a, "args", ())) or
                                 ((3,) if name.endswith("_n") else (2,)), a)
                feature = f"{a.name}_{w}"
                off = train.column(f"user_long__{feature}")[r].as_py()
                on = got[f"user_long.{feature}"]
                assert same(on, want) and same(off, want), (u, t, feature, on, off, want)
                checked += 1
    return checked


def test_pushes_onto_compacted_cells_equal_the_training_set(tmp_path) -> None:
    rng = random.Random(3)
    history = make_events(rng, 0, 420, START, END)
    root = write_project(tmp_path / "proj", stream=False, rows=events_table(history),
                         extra=LONG)
    result = compile_project(root)
    assert result.ok, [d.headline() for d in result.diagnostics]
    manifest = result.manifest
    materialize(root, manifest, "dev", online=True)
    config = load_config(root, "featql.toml", Diagnostics())
    store = open_store(config, root, "dev")
    try:
        magics = {bytes(p[:4]) for (p,) in store._conn().execute(
            f"SELECT payload FROM {store.table} WHERE view = ?",
            [codec.cell_name(manifest.view("user_long"))])}
    finally:
        store.close()
    assert b"FQC1" in magics  # compacted by default
    events = list(history)
    loaded = dt.datetime(2024, 3, 16, 9)
    for k in range(3):  # pushes (a late one each time) followed by lookups
        lo = loaded + dt.timedelta(hours=6 * k)
        push = make_events(rng, 1000 + 100 * k, 12, lo, lo + dt.timedelta(hours=6))
        # a late event, in a slide a coarse tile covers (unless past the log's retention)
        push.append({**push[0], "event_id": 1090 + 100 * k, "kind": "a",
                     "ts": loaded - dt.timedelta(hours=rng.randrange(26, 60), minutes=7)})
        rep = ingest_events(root, manifest, "dev", "events", as_json(push))
        assert rep.ingested + rep.expired == len(push) and rep.expired <= 1
        events.extend(push[:len(push) - rep.expired])
        newest = max(e["ts"] for e in push)
        times = [newest + dt.timedelta(hours=1), loaded + dt.timedelta(hours=24)]
        times += [newest + dt.timedelta(microseconds=rng.randrange(
            int((loaded + dt.timedelta(hours=24) - newest).total_seconds() * 10**6)))
            for _ in range(4)]
        assert _check(root, manifest, events, times) == \
            len(times) * len(USERS) * len(WINDOWS) * len(aggregate_calls())
