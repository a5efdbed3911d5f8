"""Shared by the hand-over tests: events, and online lookups plus a training set at many times
compared with the brute-force oracle for every aggregate function of the semantics core."""

from __future__ import annotations

import datetime as dt
import math
import random
from pathlib import Path
from typing import Any

import pyarrow as pa

from featql.core.config import load_config
from featql.core.diagnostics import Diagnostics
from featql.core.ir import Manifest
from featql.jobs.training import training_set
from featql.online import codec
from featql.online.lookup import OnlineService
from featql.online.stores import open_store

from .oracle import aggregate, window_events
from .project import WINDOWS

SLIDE = 3600
SECONDS = {"1h": 3600, "2h": 7200, "1d": 86400}
USERS = (1, 2, 3)


def make_events(rng: random.Random, first_id: int, n: int, lo: dt.datetime, hi: dt.datetime,
                users: tuple[int, ...] = USERS) -> list[dict[str, Any]]:
    """`n` events in [lo, hi) at distinct microseconds, NULL amounts and kinds included."""
    span = int((hi - lo).total_seconds() * 1_000_000)
    offsets = rng.sample(range(span), n)
    return [{"event_id": first_id + i, "user_id": rng.choice(users),
             "amount": None if rng.random() < 0.1 else round(rng.uniform(-5, 50), 2),
             "kind": rng.choice(["a", "b", "b", "test", None]),
             "ts": lo + dt.timedelta(microseconds=off)} for i, off in enumerate(offsets)]


def as_json(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "ts": e["ts"].isoformat()} for e in events]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def check(root: Path, manifest: Manifest, events: list[dict[str, Any]],
          times: list[dt.datetime], online: bool = True, users: tuple[int, ...] = USERS) -> int:
    """Lookups of service `aggs` at `times` for every user (when `online`) and a training set
    at the same rows equal the oracle over `events` (each event once); values checked. (The
    oracle's APPROX_PERCENTILE is exact while a window holds fewer items than KLL's k = 200.)"""
    config = load_config(root, "featql.toml", Diagnostics())
    rows: list[dict[str, Any] | None] = []
    spine_users, at = [], []
    store = open_store(config, root, "dev")
    try:
        service = OnlineService(manifest, store, root)
        for t in times:
            for u in users:
                got = service.lookup("aggs", [{"user_id": u}], None, codec.to_micros(t))[0][0] \
                    if online else None
                rows.append(got)
                spine_users.append(u)
                at.append(t)
    finally:
        store.close()
    spine = pa.table({"user_id": pa.array(spine_users, pa.int64()),
                      "ts": pa.array(at, pa.timestamp("us"))})
    train = training_set(root, manifest, config, "aggs", spine, workspace="dev",
                         use_store=False)
    view = manifest.view("user_aggs")
    assert view is not None
    checked = 0
    for r, (u, t, got) in enumerate(zip(spine_users, at, rows, strict=True)):
        for w in WINDOWS:
            evs = window_events(events, u, t, SECONDS[w], SLIDE)
            for a in view.aggregations:
                column = "kind" if a.function in ("top_k", "approx_count_distinct") else "amount"
                values = [1 for _ in evs] if a.name == "n_events" else [e[column] for e in evs]
                name = "count_star" if a.name == "n_events" else a.function
                want = aggregate(name, values, tuple(getattr(a, "args", ())) or
                                 ((3,) if name.endswith("_n") else (2,)), a)
                feature = f"{a.name}_{w}"
                off = train.column(f"user_aggs__{feature}")[r].as_py()
                assert same(off, want), ("training", u, t, feature, off, want)
                if got is not None:
                    on = got[f"user_aggs.{feature}"]
                    assert same(on, want), ("online", u, t, feature, on, want)
                checked += 1
    return checked
