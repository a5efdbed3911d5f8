"""A push logged while `materialize` runs (issue 13 item b): the run records the source's files
as listed at its start (what its queries read), so the push's log file
(`<batch folder>/ingest/<day>/`) is new to the next run, which recomputes the interval it
falls in. Without that, the racing run recorded the file as seen without having read it and
the offline store never held the event."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from ingest.handover import as_json, make_events, same
from ingest.project import events_table, write_project

from featql.compiler.project import compile_project
from featql.core.config import load_config
from featql.core.diagnostics import Diagnostics
from featql.core.ir import Manifest
from featql.jobs.ingest import ingest_events
from featql.jobs.materialize import materialize
from featql.jobs.training import training_set

DAY = dt.datetime(2024, 3, 2)
END = DAY + dt.timedelta(hours=10)
USERS = (1, 2, 3)


def _training(root: Path, manifest: Manifest, use_store: bool,
              times: list[dt.datetime]) -> pa.Table:
    config = load_config(root, "featql.toml", Diagnostics())
    spine = pa.table({"user_id": pa.array([u for _ in times for u in USERS], pa.int64()),
                      "ts": pa.array([t for t in times for _ in USERS], pa.timestamp("us"))})
    return training_set(root, manifest, config, "svc", spine, workspace="dev",
                        use_store=use_store)


def _differs(a: pa.Table, b: pa.Table) -> list[str]:
    return [c for c in a.column_names
            if not all(same(x, y) for x, y in zip(a.column(c).to_pylist(),
                                                  b.column(c).to_pylist(), strict=True))]


def test_a_push_logged_during_a_run_is_in_the_offline_store_after_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import featql.engines.duckdb as duckdb_engine

    rng = random.Random(13)
    history = make_events(rng, 0, 200, DAY, END, USERS)
    root = write_project(tmp_path / "proj", stream=False, rows=events_table(history))
    manifest = compile_project(root).manifest
    first = materialize(root, manifest, "dev")
    assert first.written > 0
    # late events inside intervals the backfill did (both views: the 1d row view's day, the
    # aggregate view's hourly tiles)
    late = make_events(rng, 50_000, 4, DAY + dt.timedelta(hours=3),
                       DAY + dt.timedelta(hours=4), USERS)

    # the push lands while the run reads: right after the engine listed the source's files
    pushed: list[Any] = []
    listed = duckdb_engine.source_input

    def listing_then_push(source: Any, where: Path) -> Any:
        out = listed(source, where)
        if not pushed:
            pushed.append(ingest_events(root, manifest, "dev", "events", as_json(late)))
        return out

    monkeypatch.setattr(duckdb_engine, "source_input", listing_then_push)
    materialize(root, manifest, "dev")
    monkeypatch.undo()
    assert pushed and pushed[0].ingested == len(late)
    assert list((root / "data/events/ingest").rglob("*.parquet"))  # the push's log file

    times = [DAY + dt.timedelta(hours=h, minutes=m) for h in range(2, 12) for m in (0, 30)]
    from_sources = _training(root, manifest, False, times)
    # the racing run read the files before the push: the store does not hold it yet
    assert _differs(_training(root, manifest, True, times), from_sources)

    after = materialize(root, manifest, "dev")
    redone = {v.view: v for v in after.views if v.recomputed}
    assert set(redone) == {"user_aggs", "user_last"}, after.views
    assert all("1 new file in source events (data/events/ingest/" in v.reason
               for v in redone.values()), after.views
    assert _differs(_training(root, manifest, True, times), from_sources) == []
    # and both count every event once: the batch window [floor(t, 1h) - W, floor(t, 1h))
    stored = _training(root, manifest, True, times)
    everything = history + late
    for w, seconds in (("1h", 3600), ("2h", 7200), ("1d", 86400)):
        want = []
        for t in times:
            hi = t.replace(minute=0, second=0, microsecond=0)
            lo = hi - dt.timedelta(seconds=seconds)
            want += [sum(1 for e in everything if e["user_id"] == u and lo <= e["ts"] < hi
                         and e["kind"] not in (None, "test")) for u in USERS]
        assert stored.column(f"user_aggs__n_events_{w}").to_pylist() == want, w
